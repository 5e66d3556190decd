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


class ImageTooLarge(ValueError):
    """An image whose decode would exceed the configured pixel budget."""


# What a missing, unreadable, truncated, non-image or oversized file raises while decoding: an input
# problem (an error row), unlike a code bug, which must stop the run.
IMAGE_ERRORS = (OSError, SyntaxError, EOFError, Image.DecompressionBombError, ImageTooLarge)


def load_rgb(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """``decode(path, max_pixels)``'s image."""
    return decode(path, max_pixels)[0]


def decode(path: str | Path, max_pixels: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode an image fully, as 8-bit RGB, with the file's own (width, height).

    Grayscale, palette, CMYK and 16-bit images are converted; transparency is composited on
    white. Over ``max_pixels`` a JPEG is decoded at a reduced scale (``draft``), so the image may
    be smaller than the size returned (normalized boxes hold in both); any other format raises
    ``ImageTooLarge`` before its pixels are decoded.
    """
    with Image.open(path) as im:
        size = im.size
        if max_pixels and im.width * im.height > max_pixels:
            # draft() picks the largest 1/2^k reduction that stays >= the requested size, so ask
            # for half the fitting size: the result then lands in (max_pixels / 4, max_pixels).
            scale = (max_pixels / (im.width * im.height)) ** 0.5 / 2
            if im.format == "JPEG":
                im.draft("RGB", (max(1, int(im.width * scale)), max(1, int(im.height * scale))))
            if im.width * im.height > max_pixels:
                raise ImageTooLarge(f"{im.width}x{im.height} exceeds max_pixels={max_pixels}")
        im.load()
        return to_rgb(im), size


def to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: keep the top 8 bits
        im = im.point(lambda v: v / 256).convert("L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
        return background
    return im.convert("RGB")
