"""Synthetic calibration images and the copies a near match must find (``COPIES``)."""
from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image


def synthetic_image(seed: int) -> Image.Image:
    """A calibration image, distinct for every seed: even seeds Gaussian noise on a random colour with 3-8 large
    shapes (structure everywhere, like photos); odd seeds a flat or gradient background with 1-4 small shapes
    (little structure, like the mini world: the hard case for a perceptual hash). 96-319 px a side."""
    from PIL import ImageDraw

    r = np.random.default_rng(seed)
    w, h = int(r.integers(96, 320)), int(r.integers(96, 320))
    if seed % 2 == 0:
        pixels = np.clip(r.integers(0, 256, 3) + r.normal(0, 40, (h, w, 3)), 0, 255)
        shapes, small = int(r.integers(3, 9)), False
    else:
        a, b = r.integers(0, 256, 3), r.integers(0, 256, 3) if r.random() < 0.5 else None
        ramp = np.linspace(0, 1, w if r.random() < 0.5 else h)
        ramp = ramp[None, :, None] if ramp.size == w else ramp[:, None, None]
        pixels = np.broadcast_to(a if b is None else a + (b - a) * ramp, (h, w, 3))
        shapes, small = int(r.integers(1, 5)), True
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(shapes):
        s = int(r.integers(8, max(9, min(w, h) // 4))) if small else int(r.integers(10, max(11, min(w, h) // 2)))
        x, y = int(r.integers(0, w - s)), int(r.integers(0, h - s))
        colour = tuple(int(v) for v in r.integers(0, 256, 3))
        kind = int(r.integers(3))
        if kind == 0:
            draw.rectangle((x, y, x + s, y + s * 0.8), fill=colour)
        elif kind == 1:
            draw.ellipse((x, y, x + s, y + s), fill=colour)
        else:
            draw.polygon([(x + s / 2, y), (x + s, y + s), (x, y + s)], fill=colour)
    return image


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def resized(image: Image.Image, scale: float) -> Image.Image:
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BICUBIC)


# The copies a near match must find (what docs/decontamination.md claims): name -> transform.
COPIES: dict[str, Callable[[Image.Image], Image.Image]] = {
    **{f"jpeg q{q}": (lambda im, q=q: jpeg(im, q)) for q in (50, 60, 75, 85, 95)},
    **{f"resize {s}x": (lambda im, s=s: resized(im, s)) for s in (0.5, 0.75, 1.5, 2.0)},
    "resize 0.5x + jpeg q75": lambda im: jpeg(resized(im, 0.5), 75),
    "resize 1.5x + jpeg q60": lambda im: jpeg(resized(im, 1.5), 60),
}
