"""PointQA Local (Shikra ``pointQA_local_*.jsonl``) -> pointqa_local records."""
from __future__ import annotations

from genixer.data.sources.boxes import (
    as_box,
    as_point,
    as_size,
    clamp_box,
    clamp_point,
)
from genixer.data.sources.files import AnnotationError, field
from genixer.data.sources.jsonl import JsonlSource


class PointQALocal(JsonlSource):
    """One record per line: {question, answer, bbox, point}, pixels of the original image.

    ``bbox`` (xyxy) and ``point`` may each be null but not both. Boxes are clamped; a degenerate
    box is dropped, and a record left with neither box nor point is counted in ``skipped``.
    """

    def record(self, row: dict, where: str) -> dict | None:
        width, height = as_size(row, where, "img_w", "img_h")
        raw_box, raw_point = field(row, "bbox", where), field(row, "point", where)
        if raw_box is None and raw_point is None:
            raise AnnotationError(f"{where}: fields 'bbox' and 'point' are both null")
        box = None if raw_box is None else clamp_box(as_box(raw_box, where, "bbox"), width, height)
        point = None if raw_point is None else clamp_point(as_point(raw_point, where, "point"), width, height)
        if raw_box is not None and box is None:
            self.skipped["degenerate box"] += 1
            if point is None:
                return None
        return {
            "image": str(self.image_root / field(row, "file_path", where)), "width": width, "height": height,
            "question": field(row, "question", where), "answer": field(row, "answer", where),
            "bbox": box, "point": point,
        }
