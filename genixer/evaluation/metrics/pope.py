"""POPE: LLaVA-1.5's ``eval_pope.py`` (docs/metrics.md §3)."""
from __future__ import annotations

from collections.abc import Sequence

from genixer.evaluation.metrics._common import check_lengths, require_str


def _pope_answer(text: str) -> str:
    """LLaVA-1.5's POPE reading of a free-form answer: ``"yes"`` or ``"no"``."""
    first_sentence = text.split(".")[0]
    words = first_sentence.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"




def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict:
    """POPE accuracy, precision, recall, F1 and yes-ratio, "yes" being the positive class.

    Matches ``eval_pope`` of LLaVA ``llava/eval/eval_pope.py``. A prediction is read as "no" when,
    after cutting it at its first ``.`` and deleting commas, one of its *space-separated* words is
    exactly ``No``, ``no`` or ``not``; anything else is "yes". Quirks kept: ``"NO"``, ``"Nope"``
    and ``"No\\nthere is none"`` (newline, not space) read as "yes"; ``"Yes, there is no dog"``
    reads as "no"; an empty answer reads as "yes". Call once per POPE split (random / popular /
    adversarial): the official script reports each split separately.

    Labels must be ``"yes"`` or ``"no"`` (the official script maps anything but ``"no"`` to yes;
    we reject other values instead). Where the official script divides by zero (no "yes"
    predictions -> precision; no "yes" labels -> recall; precision + recall = 0 -> F1) the value
    is 0.0 here. With all-"yes" predictions precision is defined: the share of "yes" labels.

    Returns ``accuracy``, ``precision``, ``recall``, ``f1``, ``yes_ratio`` (floats) and the counts
    ``tp``, ``fp``, ``tn``, ``fn``.
    """
    check_lengths(predictions, labels, "labels")
    tp = fp = tn = fn = 0
    for i, (prediction, label) in enumerate(zip(predictions, labels)):
        said_yes = _pope_answer(require_str(prediction, f"predictions[{i}]")) == "yes"
        if label not in ("yes", "no"):
            raise ValueError(f"labels[{i}] is {label!r}: POPE labels are 'yes' or 'no'")
        is_yes = label == "yes"
        tp += said_yes and is_yes
        fp += said_yes and not is_yes
        tn += (not said_yes) and (not is_yes)
        fn += (not said_yes) and is_yes
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = tp + fp + tn + fn
    return {"accuracy": (tp + tn) / total, "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": (tp + fp) / total, "tp": tp, "fp": fp, "tn": tn, "fn": fn}
