"""Input checks shared by the metrics."""
from __future__ import annotations

from collections.abc import Sequence


def require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r}")
    return value


def check_lengths(predictions: Sequence, labels: Sequence, what: str) -> None:
    for name, seq in (("predictions", predictions), (what, labels)):
        if isinstance(seq, str) or not isinstance(seq, Sequence):
            raise TypeError(f"{name} must be a sequence, got {type(seq).__name__}")
    if len(predictions) != len(labels):
        raise ValueError(f"length mismatch: {len(predictions)} predictions but {len(labels)} {what}")
    if len(predictions) == 0:
        raise ValueError("no predictions: the metric is undefined on an empty set")
