"""Shape geometry: anti-aliased masks whose non-zero pixels define each object's tight box."""

from __future__ import annotations

import math
from functools import lru_cache

from PIL import Image, ImageDraw

_SUPERSAMPLE = 4  # draw at 4x and box-filter down for smooth edges


def _outline(shape: str, s: float) -> list[tuple[float, float]]:
    """Polygon vertices of `shape` inside an s x s square (supersampled coordinates)."""
    if shape == "triangle":
        return [(0.0, s - 1), (s - 1, s - 1), ((s - 1) / 2, 0.0)]
    if shape == "diamond":
        h = (s - 1) / 2
        return [(h, 0.0), (s - 1, h), (h, s - 1), (0.0, h)]
    if shape == "star":
        c, outer = (s - 1) / 2, (s - 1) / 2
        inner = 0.45 * outer  # fat enough to stay recognisable at ~16 px
        pts = []
        for k in range(10):
            r = outer if k % 2 == 0 else inner
            a = math.radians(-90 + 36 * k)
            pts.append((c + r * math.cos(a), c + r * math.sin(a)))
        return pts
    raise ValueError(f"no polygon for shape {shape!r}")


@lru_cache(maxsize=2048)
def shape_mask(shape: str, side: int) -> Image.Image:
    """Greyscale coverage mask (side x side); callers must not mutate the cached image."""
    s = side * _SUPERSAMPLE
    img = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse([0, 0, s - 1, s - 1], fill=255)
    elif shape == "square":
        inset = round(0.08 * s)  # a full-side square looks much bigger than a circle of the same side
        draw.rectangle([inset, inset, s - 1 - inset, s - 1 - inset], fill=255)
    else:
        draw.polygon(_outline(shape, s), fill=255)
    return img.resize((side, side), Image.Resampling.BOX)


@lru_cache(maxsize=2048)
def mask_bbox(shape: str, side: int) -> tuple[int, int, int, int]:
    """Tight box (x1, y1, x2, y2; x2/y2 exclusive) of the drawn pixels within the mask."""
    box = shape_mask(shape, side).getbbox()
    assert box is not None, (shape, side)
    return box
