"""REC: Shikra's box parsing and IoU > 0.5 accuracy (docs/metrics.md §6)."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

from genixer.evaluation.metrics._common import check_lengths, require_str

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# A maximal run of unsigned numbers separated by a comma and/or whitespace; a number glued to a
# letter, a period or a sign ("x1", "bin_3", "-0.1") does not start a run.
_NUMBER_RUN = re.compile(rf"(?<![\w.+-]){_NUMBER}(?:(?:\s*,\s*|\s+){_NUMBER})*")


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The one box ``x1,y1,x2,y2`` in ``text`` (brackets optional) as :func:`rec_accuracy` reads it, or None."""
    runs = [run for run in _NUMBER_RUN.findall(text) if len(re.findall(_NUMBER, run)) == 4]
    if len(runs) != 1:
        return None
    x1, y1, x2, y2 = (float(v) for v in re.findall(_NUMBER, runs[0]))
    return x1, y1, x2, y2


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _check_target(target: Sequence[float], i: int) -> tuple[float, float, float, float]:
    if isinstance(target, str) or not isinstance(target, Sequence) or len(target) != 4:
        raise ValueError(f"targets[{i}] must be 4 numbers [x1, y1, x2, y2], got {target!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in target):
        raise ValueError(f"targets[{i}] must hold finite numbers, got {target!r}")
    x1, y1, x2, y2 = (float(v) for v in target)
    if not (0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0):
        raise ValueError(f"targets[{i}] must be a normalized box with 0 <= x1 <= x2 <= 1 and "
                         f"0 <= y1 <= y2 <= 1, got {target!r}")
    return x1, y1, x2, y2


def rec_accuracy(predictions: Sequence[str], targets: Sequence[Sequence[float]]) -> dict:
    """Referring-expression comprehension: Acc@0.5, mean IoU and the count of unparseable answers.

    Matches ``RECComputeMetrics.calculate_metric`` of Shikra
    ``mllm/dataset/single_image_dataset/rec.py``. Boxes are normalized ``[x1, y1, x2, y2]``. A
    prediction is correct when its IoU with the target is *strictly* greater than 0.5 (Shikra's
    ``ious > 0.5``: IoU exactly 0.5 is a miss). A prediction with no box, or with more than one
    box, is ``failed`` and counts as IoU 0 in both ``accuracy`` and ``miou`` (Shikra substitutes
    ``[0, 0, 0, 0]``); both are means over *all* predictions.

    Differences, all on inputs Shikra cannot score: Shikra only reads ``[d.ddd,d.ddd,d.ddd,d.ddd]``
    (brackets, no spaces); we read the one run of exactly four unsigned numbers separated by
    commas and/or spaces, brackets optional (``"[0.1, 0.2, 0.3, 0.4]"``, ``"0.1 0.2 0.3 0.4"``),
    and a run of 3 or 5 numbers is not a box. IoU is computed in float64 without Shikra's x1000
    scaling; a degenerate or inverted box has area 0, and a zero union gives IoU 0 (torchvision
    gives NaN). Targets must be valid normalized boxes.

    Returns ``accuracy``, ``miou`` (floats) and ``failed`` (int).
    """
    check_lengths(predictions, targets, "targets")
    ious, failed = [], 0
    for i, (prediction, target) in enumerate(zip(predictions, targets)):
        box = _check_target(target, i)
        parsed = parse_box(require_str(prediction, f"predictions[{i}]"))
        if parsed is None:
            failed += 1
            ious.append(0.0)
        else:
            ious.append(_iou(parsed, box))
    return {"accuracy": sum(iou > 0.5 for iou in ious) / len(ious), "miou": sum(ious) / len(ious),
            "failed": failed}
