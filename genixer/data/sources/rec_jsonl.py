"""RefCOCO-style REC jsonl (Shikra ``REC_*.jsonl``): {img_path, expression, bbox, height, width}."""
from __future__ import annotations

from pathlib import Path

from genixer.data.sources.files import AnnotationError, field, read_jsonl


class RECJsonl:
    """One record per line; ``bbox`` is ``[x1, y1, x2, y2]`` in pixels of the original image."""

    def __init__(self, path: str, image_root: str) -> None:
        self.path, self.image_root = Path(path), Path(image_root)

    def load(self) -> list[dict]:
        records = []
        for n, row in read_jsonl(self.path):
            where = f"{self.path}:{n}"
            bbox = field(row, "bbox", where)
            if not (isinstance(bbox, list) and len(bbox) == 4):
                raise AnnotationError(f"{where}: field 'bbox' must be [x1, y1, x2, y2], got {bbox!r}")
            records.append({
                "image": str(self.image_root / field(row, "img_path", where)),
                "expression": field(row, "expression", where),
                "bbox": [float(v) for v in bbox],
                "width": int(field(row, "width", where)),
                "height": int(field(row, "height", where)),
            })
        return records
