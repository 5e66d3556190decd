"""Choosing a threshold on val: the lowest score whose kept rows reach a precision (genixer.evaluation.thresholds)."""
from __future__ import annotations

import pytest

from genixer.evaluation.thresholds import lower_bound, lowest_threshold, row_value


def test_the_lowest_threshold_reaching_the_precision_not_the_first():
    # sorted high to low: 0.9 ok, 0.8 wrong, 0.7 ok, 0.6 ok, 0.5 ok, 0.4 wrong, 0.3 wrong
    values = [0.4, 0.9, 0.6, 0.8, 0.3, 0.5, 0.7]
    correct = [False, True, True, False, False, True, True]
    # precision at each cut: 1/1, 1/2, 2/3, 3/4, 4/5, 4/6, 4/7: 0.75 is first reached again at 0.6, then 0.8 at 0.5
    assert lowest_threshold(values, correct, 0.75) == {"threshold": 0.5, "kept": 5, "precision": 0.8, "recall": 1.0,
                                                       "group_precision": {"all": 0.8}, "rows": 7, "correct": 4,
                                                       "min_precision": 0.75}
    assert lowest_threshold(values, correct, 0.95)["threshold"] == 0.9   # only the top row
    assert lowest_threshold(values, correct, 0.6)["threshold"] == 0.4    # 4 of 6 (4 of 7 is under)
    assert lowest_threshold(values, correct, 0.5)["threshold"] == 0.3    # 4 of 7
    assert lowest_threshold([0.9, 0.8], [False, True], 0.9) is None   # 0.8 keeps the wrong 0.9 row too


def test_ties_go_together_rows_without_a_value_are_never_kept_and_none_when_unreachable():
    # a tie at 0.7 of a right and a wrong row: 0.7 keeps both (2 of 3), so 100% is only reached at 0.9
    assert lowest_threshold([0.9, 0.7, 0.7], [True, True, False], 1.0)["threshold"] == 0.9
    chosen = lowest_threshold([0.9, None, 0.2], [True, True, False], 1.0)
    assert chosen["threshold"] == 0.9 and chosen["recall"] == 0.5   # the unscored correct row is lost
    assert lowest_threshold([0.9, 0.8], [False, False], 0.5) is None
    assert lowest_threshold([None], [True], 0.5) is None
    with pytest.raises(ValueError, match="min_precision"):
        lowest_threshold([0.5], [True], 0.0)
    with pytest.raises(ValueError, match="verdicts"):
        lowest_threshold([0.5, 0.6], [True], 0.9)


def test_row_value_is_what_a_min_rule_compares():
    assert row_value({"clip": {"cosine": [0.9, 0.7]}}, "clip", "cosine") == 0.7   # every item must pass
    assert row_value({"clip": {"cosine": 0.8}}, "clip", "cosine") == 0.8
    assert row_value({"clip": {"status": "rejected", "reason": "small"}}, "clip", "cosine") is None
    assert row_value({"clip": {"cosine": [0.9, None]}}, "clip", "cosine") is None
    assert row_value({}, "clip", "cosine") is None


def test_every_group_must_reach_the_precision_not_only_the_pool():
    # run a: 0.9 ok, 0.6 ok, 0.5 ok; run b: 0.8 ok, 0.7 wrong, 0.4 wrong. Pooled, 0.5 keeps 4 of 5 right (80%),
    # but run b keeps 1 of 2 there; b reaches 80% only at 0.8
    values, correct = [0.9, 0.6, 0.5, 0.8, 0.7, 0.4], [True, True, True, True, False, False]
    groups = ["a", "a", "a", "b", "b", "b"]
    assert lowest_threshold(values, correct, 0.8)["threshold"] == 0.5
    chosen = lowest_threshold(values, correct, 0.8, groups)
    assert chosen["threshold"] == 0.8 and chosen["group_precision"] == {"a": 1.0, "b": 1.0} and chosen["kept"] == 2
    assert lowest_threshold(values, correct, 0.5, groups)["threshold"] == 0.5   # b: 1 of 2 (0.4: 1 of 3)
    assert lowest_threshold([0.9, 0.3], [True, False], 0.9, ["a", "b"])["group_precision"] == {"a": 1.0}  # b keeps none
    with pytest.raises(ValueError, match="groups"):
        lowest_threshold(values, correct, 0.8, groups[:2])


def test_the_wilson_lower_bound_and_choosing_by_it():
    z = 1.959963984540054   # the 97.5% normal quantile
    assert lower_bound(10, 10, 0.975) == pytest.approx(10 / (10 + z * z))   # all right: n / (n + z^2)
    assert lower_bound(0, 10, 0.975) == pytest.approx(0.0, abs=1e-12) and lower_bound(0, 0, 0.95) == 0.0
    assert lower_bound(98, 100, 0.95) < lower_bound(980, 1000, 0.95) < 0.98   # more rows, a tighter bound, still under
    # ranked high to low: 100 right, 1 wrong, 20 right, 5 wrong
    values, correct = [1 - i / 1000 for i in range(126)], [True] * 100 + [False] + [True] * 20 + [False] * 5
    measured = lowest_threshold(values, correct, 0.97)
    assert (measured["kept"], measured["precision"]) == (123, 120 / 123)   # 97.6% measured
    bounded = lowest_threshold(values, correct, 0.97, confidence=0.95)
    assert bounded["kept"] == 100 and bounded["group_lower_bound"]["all"] == pytest.approx(100 / (100 + 1.6448536269514722 ** 2))
    assert bounded["threshold"] > measured["threshold"] and bounded["confidence"] == 0.95
    assert lowest_threshold(values[:5], correct[:5], 0.97, confidence=0.95) is None   # 5 of 5 prove only 62%
    with pytest.raises(ValueError, match="confidence"):
        lowest_threshold(values, correct, 0.97, confidence=1.0)


def test_the_threshold_line_states_the_bound():
    from omegaconf import OmegaConf

    from genixer.pipelines.evaluate import threshold_line
    spec = OmegaConf.create({"scorer": "clip", "field": "cosine", "min_precision": 0.97, "confidence": 0.95})
    chosen = lowest_threshold([1 - i / 1000 for i in range(100)], [True] * 100, 0.97, confidence=0.95)
    line = threshold_line(spec, chosen, "val")
    assert "target 97% (95% lower bound) in every run: all 100.0% (bound 97.4%)" in line and "on the val split" in line
    assert "no clip.cosine threshold keeps rows at >= 97% (95% lower bound)" in threshold_line(spec, None, "val")


def test_only_the_named_families_choose_the_threshold():
    """A REG run whose best-scored row is wrong can hold every threshold back; ``families=[rec]`` lets the REC rows
    alone choose it, and an unknown family is refused."""
    from genixer.miniworld.evaluator import MiniWorldOracle

    oracle = MiniWorldOracle.__new__(MiniWorldOracle)   # a stand-in check: the row says whether it is right
    oracle.check = lambda row: (row["ok"], False, "checked")
    row = lambda family, value, ok: {"family": family, "scores": {"clip": {"cosine": value}}, "ok": ok}
    runs = {"s_rec": [row("rec", 0.9, True), row("rec", 0.8, True), row("rec", 0.7, False)],
            "s_reg": [row("reg", 0.95, False), row("reg", 0.85, True)]}
    assert oracle.choose_threshold(runs, "clip", "cosine", 0.9) is None   # REG's top row is wrong
    chosen = oracle.choose_threshold(runs, "clip", "cosine", 0.9, families=["rec"])
    assert chosen["threshold"] == 0.8 and chosen["group_precision"] == {"s_rec": 1.0} and chosen["rows"] == 3
    with pytest.raises(ValueError, match="no oracle check"):
        oracle.choose_threshold(runs, "clip", "cosine", 0.9, families=["recc"])
