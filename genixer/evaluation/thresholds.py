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


def lowest_threshold(values: Sequence[float | None], correct: Sequence[bool], min_precision: float) -> dict | None:
    """The lowest threshold ``t`` whose kept rows (value >= t) are at least ``min_precision`` correct, with the
    kept count, precision and recall there (rows without a value are never kept; recall counts every correct
    row); None where no threshold reaches the precision. Tied values are kept or dropped together."""
    if len(values) != len(correct):
        raise ValueError(f"{len(values)} values for {len(correct)} verdicts")
    if not 0 < min_precision <= 1:
        raise ValueError(f"min_precision must be in (0, 1], got {min_precision}")
    ranked = sorted(((v, c) for v, c in zip(values, correct) if v is not None), key=lambda x: -x[0])
    total = sum(correct)
    best, kept, right = None, 0, 0
    for i, (value, ok) in enumerate(ranked):
        kept, right = kept + 1, right + ok
        if i + 1 < len(ranked) and ranked[i + 1][0] == value:
            continue   # a tie: the next row is kept with this one
        if right / kept >= min_precision:
            best = {"threshold": value, "kept": kept, "precision": right / kept, "recall": right / total if total else 0.0}
    return None if best is None else {**best, "rows": len(values), "correct": total, "min_precision": min_precision}
