"""Choosing a filter threshold on data the reported tables never see: the lowest score whose kept rows reach a
precision (``evaluate.py ... choose_threshold={scorer, field, min_precision}``, on the val split), as measured or,
with ``confidence``, as the lower confidence bound of the precision (a measured 98% on 300 rows is no promise of
97% on the next 300)."""
from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist


def lower_bound(right: int, n: int, confidence: float) -> float:
    """The one-sided Wilson score lower bound of a proportion ``right / n`` at ``confidence``."""
    if n == 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    p, z2 = right / n, z * z
    return (p + z2 / (2 * n) - z * (p * (1 - p) / n + z2 / (4 * n * n)) ** 0.5) / (1 + z2 / n)


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
                     groups: Sequence[str] | None = None, confidence: float | None = None) -> dict | None:
    """The lowest threshold ``t`` whose kept rows (value >= t) are at least ``min_precision`` correct, in every
    group when ``groups`` names each row's (a filter run: one threshold serves them all, so a pooled precision
    could hide a run under it; a group that keeps nothing keeps nothing wrong); with the kept count, precision and
    recall there, pooled, and each group's precision. With ``confidence``, a group's precision counts by its
    ``lower_bound`` at that confidence (a few kept rows then prove little). Rows without a value are never kept;
    recall counts every correct row; tied values are kept or dropped together. None where no threshold reaches
    the precision."""
    if len(values) != len(correct) or (groups is not None and len(groups) != len(values)):
        raise ValueError(f"{len(values)} values for {len(correct)} verdicts"
                         + (f" and {len(groups)} groups" if groups is not None else ""))
    if not 0 < min_precision <= 1:
        raise ValueError(f"min_precision must be in (0, 1], got {min_precision}")
    if confidence is not None and not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
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
        judged = per_group if confidence is None else {g: lower_bound(right, n, confidence)
                                                       for g, (n, right) in kept.items() if n}
        if min(judged.values()) >= min_precision:
            n, right = i + 1, sum(r for _, r in kept.values())
            best = {"threshold": value, "kept": n, "precision": right / n,
                    "recall": right / sum(correct) if any(correct) else 0.0, "group_precision": per_group}
            if confidence is not None:
                best["group_lower_bound"] = judged
    if best is None:
        return None
    return {**best, "rows": len(values), "correct": sum(correct), "min_precision": min_precision,
            **({"confidence": confidence} if confidence is not None else {})}
