"""RefCOCO-style REC jsonl (Shikra ``REC_*.jsonl``): {img_path, expression, bbox, height, width}."""
from __future__ import annotations

from pathlib import Path

from genixer.data.sources.boxes import Skipped, as_box, as_size, clamp_box
from genixer.data.sources.files import field, read_jsonl


class RECJsonl:
    """One record per line; ``bbox`` is ``[x1, y1, x2, y2]`` in pixels of the original image.

    Boxes are clamped to the image; degenerate ones are counted in ``skipped``.
    """

    def __init__(self, path: str, image_root: str) -> None:
        self.path, self.image_root = Path(path), Path(image_root)
        self.skipped = Skipped()

    def load(self) -> list[dict]:
        self.skipped = Skipped()
        records = []
        for n, row in read_jsonl(self.path):
            where = f"{self.path}:{n}"
            width, height = as_size(row, where)
            box = clamp_box(as_box(field(row, "bbox", where), where, "bbox"), width, height)
            if box is None:
                self.skipped["degenerate box"] += 1
                continue
            records.append({
                "image": str(self.image_root / field(row, "img_path", where)),
                "expression": field(row, "expression", where),
                "bbox": box, "width": width, "height": height,
            })
        return records
