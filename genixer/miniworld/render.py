"""Rasterise a mini-world scene with PIL."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .scene import STREAM_NOISE, Background, Scene, rng_for
from .shapes import shape_mask


def render_background(bg: Background, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """H x W x 3 uint8 grey background."""
    if bg.kind == "gradient":
        n = height if bg.vertical else width
        ramp = np.linspace(bg.levels[0], bg.levels[1], n)
        grey = np.broadcast_to(ramp[:, None] if bg.vertical else ramp[None, :], (height, width))
    else:
        grey = np.full((height, width), float(bg.levels[0]))
        if bg.kind == "noise":
            grey = grey + rng.normal(0.0, bg.noise_sigma, size=(height, width))
    grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def render_scene(scene: Scene, seed: int = 0) -> Image.Image:
    """RGB image of `scene`; `seed` only feeds the background noise texture."""
    rng = rng_for(seed, scene.split, scene.index, STREAM_NOISE)
    img = Image.fromarray(render_background(scene.background, scene.width, scene.height, rng), "RGB")
    for obj in scene.objects:
        assert obj.rgb is not None, "objects loaded from ground truth cannot be rendered"
        img.paste(obj.rgb, (*obj.origin, obj.origin[0] + obj.side, obj.origin[1] + obj.side), shape_mask(obj.shape, obj.side))
    return img
