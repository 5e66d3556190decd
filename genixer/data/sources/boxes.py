"""Checking pixel boxes, points and image sizes read from annotation files."""
from __future__ import annotations

import math
from collections import Counter

from genixer.data.sources.files import AnnotationError, field


def _numbers(value: object, n: int) -> list[float] | None:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return [float(v) for v in value]


def as_box(value: object, where: str, name: str, xywh: bool = False) -> list[float]:
    """A structurally valid box as ``[x1, y1, x2, y2]`` (converted from ``[x, y, w, h]`` if ``xywh``)."""
    box = _numbers(value, 4)
    if box is None:
        layout = "[x, y, w, h]" if xywh else "[x1, y1, x2, y2]"
        raise AnnotationError(f"{where}: field '{name}' must be {layout} numbers, got {value!r}")
    if xywh:
        x, y, w, h = box
        box = [x, y, x + w, y + h]
    return box


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
    x1, x2 = (min(max(v, 0.0), float(width)) for v in (box[0], box[2]))
    y1, y2 = (min(max(v, 0.0), float(height)) for v in (box[1], box[3]))
    return [x1, y1, x2, y2] if x2 > x1 and y2 > y1 else None


def clamp_point(point: list[float], width: int, height: int) -> list[float]:
    return [min(max(point[0], 0.0), float(width)), min(max(point[1], 0.0), float(height))]


class Skipped(Counter):
    """Per-reason counts of records a converter left out (e.g. degenerate boxes); reset by each load."""
