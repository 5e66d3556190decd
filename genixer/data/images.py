"""Image helpers shared by training, generation and filtering."""
from __future__ import annotations

from pathlib import Path

from PIL import Image


def pad_to_square(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """Centre the image on a square canvas of ``colour`` (LLaVA-1.5 / Shikra ``expand2square``)."""
    w, h = image.size
    if w == h:
        return image
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), colour)
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    return canvas


def load_rgb(path: str | Path) -> Image.Image:
    """Decode an image fully and convert it to RGB (grayscale, palette, RGBA, CMYK...)."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")
