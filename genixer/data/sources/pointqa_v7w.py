"""Visual7W pointing (Shikra ``v7w_pointing_*.jsonl``) -> pointqa_v7w records."""
from __future__ import annotations

from genixer.data.sources.boxes import (
    as_box,
    as_boxes,
    as_point,
    as_size,
    clamp_boxes,
    clamp_point,
)
from genixer.data.sources.files import AnnotationError, field
from genixer.data.sources.jsonl import JsonlSource


class PointQAV7W(JsonlSource):
    """One record per line: {question, candidates, answer_box, answer_index, point}, pixels.

    ``answer`` must equal one of the ``candidates`` (Shikra looks it up by value). Boxes are
    clamped; a record with a degenerate candidate is counted in ``skipped``, since dropping the
    candidate alone would change the question.
    """

    def record(self, row: dict, where: str) -> dict | None:
        width, height = as_size(row, where, "img_w", "img_h")
        raw = field(row, "candidates", where)
        if not isinstance(raw, list) or len(raw) < 2:
            raise AnnotationError(f"{where}: field 'candidates' must be a list of at least 2 boxes")
        candidates = as_boxes(raw, [f"{where}: candidates[{k}]" for k in range(len(raw))], "candidates")
        answer = as_box(field(row, "answer", where), where, "answer")
        if answer not in candidates:
            raise AnnotationError(f"{where}: field 'answer' {answer} is not one of the candidates")
        index = candidates.index(answer)
        clamped = clamp_boxes(candidates, width, height)
        if any(b is None for b in clamped):
            self.skipped["degenerate candidate box"] += 1
            return None
        point = row.get("point")
        return {
            "image": str(self.image_root / field(row, "file_path", where)), "width": width, "height": height,
            "question": field(row, "question", where), "candidates": clamped,
            "answer_box": clamped[index], "answer_index": index,
            "point": None if point is None else clamp_point(as_point(point, where, "point"), width, height),
        }
