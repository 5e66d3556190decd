"""RefCOCO-style REC jsonl (Shikra ``REC_*.jsonl``): {img_path, expression, bbox, height, width}."""
from __future__ import annotations

from genixer.data.sources.boxes import as_box, as_size, clamp_box
from genixer.data.sources.files import field
from genixer.data.sources.jsonl import JsonlSource


class RECJsonl(JsonlSource):
    """One record per line; ``bbox`` is ``[x1, y1, x2, y2]`` in pixels of the original image.

    Boxes are clamped to the image; degenerate ones are counted in ``skipped``.
    """

    def record(self, row: dict, where: str) -> dict | None:
        width, height = as_size(row, where)
        box = clamp_box(as_box(field(row, "bbox", where), where, "bbox"), width, height)
        if box is None:
            self.skipped["degenerate box"] += 1
            return None
        return {
            "image": str(self.image_root / field(row, "img_path", where)),
            "expression": field(row, "expression", where),
            "bbox": box, "width": width, "height": height,
        }
