"""Choosing a filter threshold on data the reported tables never see: the lowest score whose kept rows reach a
precision (``evaluate.py ... choose_threshold={scorer, field, min_precision}``, on the val split)."""
from __future__ import annotations

from collections.abc import Sequence


def row_value(scores: dict, scorer: str, field: str) -> float | None:
    """What a ``min`` rule on ``scorer.field`` compares for a row (``genixer.filtering.selection.Rule``): the value,
    or the smallest of a per-item list (every item must pass); None where the scorer failed or left a value
    missing (such a row is dropped at any threshold)."""
    annotation = scores.get(scorer) or {}
    if annotation.get("status"):
        return None
    value = annotation.get(field)
    values = value if isinstance(value, list) else [value]
    return None if not values or any(v is None for v in values) else min(values)


def lowest_threshold(values: Sequence[float | None], correct: Sequence[bool], min_precision: float,
                     groups: Sequence[str] | None = None) -> dict | None:
    """The lowest threshold ``t`` whose kept rows (value >= t) are at least ``min_precision`` correct, in every
    group when ``groups`` names each row's (a filter run: one threshold serves them all, so a pooled precision
    could hide a run under it; a group that keeps nothing keeps nothing wrong); with the kept count, precision and
    recall there, pooled, and each group's precision. Rows without a value are never kept; recall counts every
    correct row; tied values are kept or dropped together. None where no threshold reaches the precision."""
    if len(values) != len(correct) or (groups is not None and len(groups) != len(values)):
        raise ValueError(f"{len(values)} values for {len(correct)} verdicts"
                         + (f" and {len(groups)} groups" if groups is not None else ""))
    if not 0 < min_precision <= 1:
        raise ValueError(f"min_precision must be in (0, 1], got {min_precision}")
    groups = list(groups) if groups is not None else ["all"] * len(values)
    ranked = sorted(((v, c, g) for v, c, g in zip(values, correct, groups) if v is not None), key=lambda x: -x[0])
    kept = {g: [0, 0] for g in dict.fromkeys(groups)}   # group -> [kept, right], lowering the threshold row by row
    best = None
    for i, (value, ok, group) in enumerate(ranked):
        kept[group][0] += 1
        kept[group][1] += ok
        if i + 1 < len(ranked) and ranked[i + 1][0] == value:
            continue   # a tie: the next row is kept with this one
        per_group = {g: right / n for g, (n, right) in kept.items() if n}
        if min(per_group.values()) >= min_precision:
            n, right = i + 1, sum(r for _, r in kept.values())
            best = {"threshold": value, "kept": n, "precision": right / n,
                    "recall": right / sum(correct) if any(correct) else 0.0, "group_precision": per_group}
    return None if best is None else {**best, "rows": len(values), "correct": sum(correct), "min_precision": min_precision}
