"""COCO instances JSON -> a pycocotools ``COCO`` index, after checking the fields we rely on."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

from pycocotools.coco import COCO

from genixer.data.sources.files import AnnotationError, field, read_json

_REQUIRED = {
    "images": ("id", "file_name", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id", "name"),
}


def load_coco(path: str | Path) -> COCO:
    """Read and validate first so errors name the file, index and field; pycocotools would KeyError."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object with images/annotations/categories")
    for section, names in _REQUIRED.items():
        items = field(data, section, str(path))
        if not isinstance(items, list):
            raise AnnotationError(f"{path}: field '{section}' must be a list")
        for i, item in enumerate(items):
            for name in names:
                field(item, name, f"{path}: {section}[{i}]")
    image_ids = {img["id"] for img in data["images"]}
    category_ids = {c["id"] for c in data["categories"]}
    for i, ann in enumerate(data["annotations"]):
        if ann["image_id"] not in image_ids:
            raise AnnotationError(f"{path}: annotations[{i}]: field 'image_id' {ann['image_id']!r} is not an image")
        if ann["category_id"] not in category_ids:
            raise AnnotationError(
                f"{path}: annotations[{i}]: field 'category_id' {ann['category_id']!r} is not a category")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
        coco.createIndex()
    return coco
