"""Checking pixel boxes, points and image sizes read from annotation files."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from genixer.data.sources.files import AnnotationError, field


def _numbers(value: object, n: int) -> list[float] | None:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return [float(v) for v in value]


def as_box(value: object, where: str, name: str, xywh: bool = False) -> list[float]:
    """A structurally valid box as ``[x1, y1, x2, y2]`` (converted from ``[x, y, w, h]`` if ``xywh``)."""
    return as_boxes([value], [where], name, xywh)[0]


def as_boxes(values: Sequence[object], wheres: Sequence[str], name: str, xywh: bool = False) -> list[list[float]]:
    """``as_box`` of each value (``wheres[k]`` names ``values[k]``), converted in one batch."""
    boxes = []
    for value, where in zip(values, wheres):
        box = _numbers(value, 4)
        if box is None:
            layout = "[x, y, w, h]" if xywh else "[x1, y1, x2, y2]"
            raise AnnotationError(f"{where}: field '{name}' must be {layout} numbers, got {value!r}")
        boxes.append(box)
    return xywh_to_xyxy(boxes) if xywh else boxes


def xywh_to_xyxy(boxes: Sequence[Sequence[float]]) -> list[list[float]]:
    """``[x, y, w, h]`` boxes as ``[x1, y1, x2, y2]``, as torchvision's ``box_convert`` gives them (a test checks).

    Integer boxes stay integers; otherwise every value is a float64 (Python's float), so ``x + w`` is exact as a
    double. Plain Python: a source converts one box at a time, and a tensor per box cost a minute per 20,000 images.
    """
    exact = all(isinstance(v, int) for box in boxes for v in box)
    return [[x, y, x + w, y + h] for x, y, w, h in (box if exact else map(float, box) for box in boxes)]


def as_point(value: object, where: str, name: str) -> list[float]:
    point = _numbers(value, 2)
    if point is None:
        raise AnnotationError(f"{where}: field '{name}' must be [x, y] numbers, got {value!r}")
    return point


def as_size(row: dict, where: str, width: str = "width", height: str = "height") -> tuple[int, int]:
    """Positive integer (width, height) from the named fields."""
    size = []
    for name in (width, height):
        v = field(row, name, where)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 or v != int(v):
            raise AnnotationError(f"{where}: field '{name}' must be a positive integer, got {v!r}")
        size.append(int(v))
    return size[0], size[1]


def clamp_box(box: list[float], width: int, height: int) -> list[float] | None:
    """The box clamped into the image, or None when nothing of positive area is left."""
    return clamp_boxes([box], width, height)[0]


def clamp_boxes(boxes: Sequence[list[float]], width: int, height: int) -> list[list[float] | None]:
    """Boxes of one image clamped into it, in float64, as torchvision's ``clip_boxes_to_image`` gives them (a test
    checks); None where no area is left. Plain Python, as ``xywh_to_xyxy``."""
    limits = (float(width), float(height)) * 2
    clamped = [[min(max(float(v), 0.0), limit) for v, limit in zip(box, limits)] for box in boxes]
    return [box if box[2] > box[0] and box[3] > box[1] else None for box in clamped]


def clamp_point(point: list[float], width: int, height: int) -> list[float]:
    return [min(max(point[0], 0.0), float(width)), min(max(point[1], 0.0), float(height))]


class Skipped(Counter):
    """Per-reason counts of records a converter left out (e.g. degenerate boxes); reset by each load."""
