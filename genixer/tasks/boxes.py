"""Box and point text protocol: normalize, format and parse `[x1,y1,x2,y2]` coordinates."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

Box = tuple[float, float, float, float]
Point = tuple[float, float]

# A number as generators write it: "0.243", also "1", "0" or " 0.5" after a comma.
# The sign is accepted so that "-0.1" is rejected as out of range instead of unseen.
_NUM = r"-?[0-9]+(?:\.[0-9]+)?"
_SEP = r"\s*,\s*"
_BOX = rf"{_NUM}(?:{_SEP}{_NUM}){{3}}"
_POINT = rf"{_NUM}{_SEP}{_NUM}"
_BOX_GROUP_RE = re.compile(rf"\[\s*({_BOX}(?:\s*;\s*{_BOX})*)\s*\]")
_POINT_GROUP_RE = re.compile(rf"\[\s*({_POINT}(?:\s*;\s*{_POINT})*)\s*\]")
# Any bracketed run of 2+ numbers: catches malformed boxes (3 or 5 numbers, points).
_NUMBER_LIST_RE = re.compile(rf"\[\s*{_NUM}(?:\s*[,;]\s*{_NUM})+\s*\]")
_NUM_RE = re.compile(_NUM)


def _unit(value: float, size: float) -> float:
    """Divide by the image side, clamp to [0, 1], round to 3 decimals."""
    if size <= 0:
        raise ValueError(f"image side must be positive, got {size}")
    return round(min(max(value / size, 0.0), 1.0), 3)


def normalize_box(box_px: Sequence[float], width: float, height: float) -> Box:
    """Pixel xyxy box -> [0,1] box relative to the ORIGINAL (unpadded) image."""
    if len(box_px) != 4:
        raise ValueError(f"box needs 4 values, got {len(box_px)}: {box_px!r}")
    x1, y1, x2, y2 = box_px
    return (_unit(x1, width), _unit(y1, height), _unit(x2, width), _unit(y2, height))


def normalized_target_box(box_px: Sequence[float], width: float, height: float) -> Box:
    """``normalize_box`` for a training target: a box that collapses at 3 decimals raises,
    since the sample could never be parsed back (converters drop such boxes on ingest)."""
    box = normalize_box(box_px, width, height)
    if problem := box_problem(box):
        raise ValueError(f"{problem} after normalization: {list(box_px)!r} -> {box}")
    return box


def denormalize_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """[0,1] box -> pixel box, rounded to the nearest pixel (the original truncated)."""
    if len(box) != 4:
        raise ValueError(f"box needs 4 values, got {len(box)}: {box!r}")
    sizes = (width, height, width, height)
    # floor(v + 0.5) rather than round(): no banker's rounding on exact halves.
    return tuple(int(math.floor(v * s + 0.5)) for v, s in zip(box, sizes))  # type: ignore[return-value]


def normalize_point(point_px: Sequence[float], width: float, height: float) -> Point:
    """Pixel (x, y) -> [0,1] point relative to the original image."""
    if len(point_px) != 2:
        raise ValueError(f"point needs 2 values, got {len(point_px)}: {point_px!r}")
    return (_unit(point_px[0], width), _unit(point_px[1], height))


def _fmt(values: Sequence[float]) -> str:
    return ",".join(f"{v:.3f}" for v in values)


def format_box(box: Sequence[float]) -> str:
    """`[0.100,0.200,0.300,0.400]`: 3 decimals, no spaces."""
    if len(box) != 4:
        raise ValueError(f"box needs 4 values, got {len(box)}: {box!r}")
    return f"[{_fmt(box)}]"


def format_box_group(boxes: Sequence[Sequence[float]]) -> str:
    """Several boxes of one phrase in one bracket: `[b1;b2]`."""
    if not boxes:
        raise ValueError("a box group needs at least one box")
    return "[" + ";".join(format_box(b)[1:-1] for b in boxes) + "]"


def format_point(point: Sequence[float]) -> str:
    """`[0.512,0.333]`: 3 decimals, no spaces."""
    if len(point) != 2:
        raise ValueError(f"point needs 2 values, got {len(point)}: {point!r}")
    return f"[{_fmt(point)}]"


def _groups(regex: re.Pattern[str], text: str) -> list[list[tuple[float, ...]]]:
    return [
        [tuple(float(n) for n in _NUM_RE.findall(item)) for item in m.group(1).split(";")]
        for m in regex.finditer(text)
    ]


def find_box_groups(text: str) -> list[list[Box]]:
    """Every bracketed group of 4-number boxes in `text`, in order of appearance."""
    return _groups(_BOX_GROUP_RE, text)  # type: ignore[return-value]


def find_point_groups(text: str) -> list[list[Point]]:
    """Every bracketed group of 2-number points in `text`, in order of appearance."""
    return _groups(_POINT_GROUP_RE, text)  # type: ignore[return-value]


def find_number_lists(text: str) -> list[str]:
    """Raw text of every bracketed list of 2+ numbers (well-formed or not)."""
    return [m.group(0) for m in _NUMBER_LIST_RE.finditer(text)]


def attached(text: str, coordinate: str) -> bool:
    """True when `coordinate` (a substring of `text`) directly follows a non-space character."""
    before = text[: text.index(coordinate)][-1:]
    return bool(before) and not before.isspace()


def is_point_text(coordinate: str) -> bool:
    """True when a bracketed number list has two numbers (a point, not a box or box group)."""
    return ";" not in coordinate and coordinate.count(",") == 1


def box_group_fullmatch(text: str) -> list[Box] | None:
    """The boxes if `text` is exactly one box group (outer spaces allowed), else None."""
    m = _BOX_GROUP_RE.fullmatch(text.strip())
    return _groups(_BOX_GROUP_RE, m.group(0))[0] if m else None  # type: ignore[return-value]


def box_problem(box: Sequence[float]) -> str | None:
    """Why `box` is not a valid normalized xyxy box, or None when it is."""
    if len(box) != 4:
        return "wrong box arity"
    if any(not (0.0 <= v <= 1.0) for v in box):  # also catches NaN
        return "box out of range"
    x1, y1, x2, y2 = box
    if x1 >= x2 or y1 >= y2:
        return "degenerate box"
    return None


def point_problem(point: Sequence[float]) -> str | None:
    """Why `point` is not a valid normalized (x, y) point, or None when it is."""
    if len(point) != 2:
        return "wrong point arity"
    if any(not (0.0 <= v <= 1.0) for v in point):  # also catches NaN
        return "point out of range"
    return None


def parse_coordinate(text: str) -> tuple[Box | Point | None, str | None]:
    """(box or point, None) when `text` is exactly one valid `[...]` box or point, else (None, reason)."""
    text = text.strip()
    boxes = box_group_fullmatch(text)
    if boxes is not None:
        if len(boxes) > 1:
            return None, "more than one box"
        problem = box_problem(boxes[0])
        return (None, problem) if problem else (boxes[0], None)
    m = _POINT_GROUP_RE.fullmatch(text)
    if m is None:
        return None, "malformed box"
    points = _groups(_POINT_GROUP_RE, m.group(0))[0]
    if len(points) > 1:
        return None, "more than one point"
    problem = point_problem(points[0])
    return (None, problem) if problem else (points[0], None)  # type: ignore[return-value]


def format_coordinate(value: Sequence[float]) -> str:
    """A box (4 values) or a point (2 values) in protocol text."""
    return format_point(value) if len(value) == 2 else format_box(value)
