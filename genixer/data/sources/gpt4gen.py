"""Shikra GPT4Gen BoxCoT / RD jsonl -> qca_box / rd records with checked phrase-box alignment."""
from __future__ import annotations

from genixer.data.sources.boxes import as_boxes, as_size, clamp_boxes
from genixer.data.sources.files import AnnotationError, field
from genixer.data.sources.jsonl import JsonlSource

PH_ST, PH_ED = "<ph_st>", "<ph_ed>"


def check_boxes_seq(
    text: str, seq: object, n_boxes: int, where: str, text_field: str, seq_field: str,
) -> list[list[int]]:
    """Each ``<ph_ed>`` in ``text`` takes the next group of ``seq``; groups index into ``boxes``."""
    seq = [] if seq is None else seq  # Shikra writes null for texts without marks
    if not isinstance(seq, list) or not all(isinstance(g, list) and g for g in seq):
        raise AnnotationError(f"{where}: field '{seq_field}' must be a list of non-empty index lists, got {seq!r}")
    marks = text.count(PH_ED)
    if marks != len(seq):
        raise AnnotationError(f"{where}: field '{seq_field}' has {len(seq)} box groups but '{text_field}' "
                              f"has {marks} {PH_ED} marks")
    for group in seq:
        for k in group:
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n_boxes:
                raise AnnotationError(f"{where}: field '{seq_field}' index {k!r} is outside 'boxes' ({n_boxes} boxes)")
    return [list(g) for g in seq]


class GPT4GenBoxCoT(JsonlSource):
    """One record per line of ``GPT4GEN_BoxCoT_*.jsonl`` / ``GPT4GEN_RD_BoxCoT_*.jsonl``.

    {question, answer (= cot_with_ans), question_boxes_seq, answer_boxes_seq, boxes (pixel xyxy)}.
    Misaligned marks or indices raise; a record with a degenerate box is counted in ``skipped``
    (dropping the box alone would shift every index after it).
    """

    def record(self, row: dict, where: str) -> dict | None:
        width, height = as_size(row, where)
        raw = field(row, "boxes", where)
        if not isinstance(raw, list) or not raw:
            raise AnnotationError(f"{where}: field 'boxes' must be a non-empty list of boxes")
        boxes = as_boxes(raw, [f"{where}: boxes[{k}]" for k in range(len(raw))], "boxes")
        question, answer = field(row, "question", where), field(row, "cot_with_ans", where)
        for name, text in (("question", question), ("cot_with_ans", answer)):
            if not isinstance(text, str):
                raise AnnotationError(f"{where}: field '{name}' must be a string")
        q_seq = check_boxes_seq(question, field(row, "question_boxes_seq", where), len(boxes), where,
                                "question", "question_boxes_seq")
        a_seq = check_boxes_seq(answer, field(row, "answer_boxes_seq", where), len(boxes), where,
                                "cot_with_ans", "answer_boxes_seq")
        clamped = clamp_boxes(boxes, width, height)
        if any(b is None for b in clamped):
            self.skipped["degenerate box"] += 1
            return None
        return {
            "image": str(self.image_root / field(row, "img_path", where)), "width": width, "height": height,
            "question": question, "answer": answer,
            "question_boxes_seq": q_seq, "answer_boxes_seq": a_seq, "boxes": clamped,
        }
