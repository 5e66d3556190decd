"""Thumbnails with a row's boxes and points drawn in, as base64 JPEG data URIs (no file leaves the page).

Geometry is read from the typed fields every task writes: ``regions[].box`` (with its expression) and
any box (4 numbers) or point (2 numbers) inside ``parsed`` (PointQA boxes / points, V7W candidates,
grounded-CoT box groups), all normalized xyxy to the original image.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]
Mark = tuple[str, list[float], str]   # ("box" | "point", normalized coordinates, label)


def _numbers(value: object, size: int) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == size
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def _walk(value: object, label: str, out: list[Mark]) -> None:
    if _numbers(value, 4):
        out.append(("box", [float(v) for v in value], label))
    elif _numbers(value, 2):
        out.append(("point", [float(v) for v in value], label))
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, key, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, label, out)


def marks(row: dict) -> list[Mark]:
    """Distinct boxes and points of a row, each labelled (its expression, or the ``parsed`` key it came from)."""
    found: list[Mark] = []
    for region in row.get("regions") or []:
        if _numbers(region.get("box"), 4):
            found.append(("box", [float(v) for v in region["box"]], region.get("expression") or "region"))
    _walk(row.get("parsed") or {}, "parsed", found)
    unique: dict[tuple, Mark] = {}
    for kind, coords, label in found:
        unique.setdefault((kind, tuple(round(c, 4) for c in coords)), (kind, coords, label))
    return list(unique.values())


def _placeholder(side: int, text: str) -> Image.Image:
    image = Image.new("RGB", (side, side * 3 // 4), "#d9d9d9")
    ImageDraw.Draw(image).text((8, 8), text, fill="#555555")
    return image


def load_image(path: Path, side: int) -> tuple[Image.Image, str | None]:
    """The image scaled so its longer side is ``side`` px, or a grey placeholder and why."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (side, side))   # JPEGs decode at reduced scale
            image = ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        return _placeholder(side, "no image"), f"{type(e).__name__}: {e}"[:160]
    scale = side / max(image.size)
    resample = Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.BICUBIC
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample), None


def draw(image: Image.Image, found: list[Mark]) -> Image.Image:
    """Boxes as outlines and points as ringed dots, numbered in the order of ``found``."""
    canvas = ImageDraw.Draw(image)
    w, h = image.size
    for k, (kind, c, _) in enumerate(found):
        colour = PALETTE[k % len(PALETTE)]
        if kind == "box":
            x1, y1, x2, y2 = c[0] * w, c[1] * h, c[2] * w, c[3] * h
            canvas.rectangle([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], outline=colour, width=3)
            tx, ty = min(x1, x2) + 2, min(y1, y2) + 1
        else:
            x, y = c[0] * w, c[1] * h
            canvas.ellipse([x - 6, y - 6, x + 6, y + 6], outline="white", width=2, fill=colour)
            tx, ty = x + 7, y - 6
        canvas.rectangle([tx - 1, ty, tx + 7, ty + 11], fill=colour)
        canvas.text((tx, ty), str(k + 1), fill="white")
    return image


def data_uri(image: Image.Image, quality: int = 80) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail(image_root: Path, row: dict, side: int = 224) -> tuple[str, list[Mark], str | None]:
    """(data URI of the image with the row's marks, the marks, why the image could not be read or None)."""
    found = marks(row) if row.get("status") == "ok" else []
    image, problem = load_image(image_root / str(row.get("image", "")), side) if row.get("image") else (
        _placeholder(side, "no image"), "row names no image")
    return data_uri(draw(image, found) if problem is None else image), found, problem
