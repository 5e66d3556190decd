"""Q→C^Box A and Referential Dialogue: question and reasoning with inline box groups `[b1;b2]`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import Parsed, Task, format_qa, require_text, single_pair
from .boxes import (
    Box,
    box_problem,
    find_box_groups,
    find_number_lists,
    format_box_group,
    normalized_target_box,
)

PH_ST, PH_ED = "<ph_st>", "<ph_ed>"


def fill_boxes(text: str, boxes_seq: Sequence[Sequence[int]], boxes: Sequence[Box]) -> str:
    """Drop `<ph_st>`; the k-th `<ph_ed>` becomes the box group of `boxes_seq[k]`."""
    parts = text.replace(PH_ST, "").split(PH_ED)
    if len(parts) - 1 != len(boxes_seq):
        raise ValueError(f"{len(parts) - 1} {PH_ED} marks but {len(boxes_seq)} box groups in {text!r}")
    out = [parts[0]]
    for group, part in zip(boxes_seq, parts[1:]):
        out += [format_box_group([boxes[i] for i in group]), part]
    return "".join(out).strip()


def box_groups(text: str) -> tuple[list[list[Box]] | None, str | None]:
    """(every box group of `text`, None) when each is well-formed and valid, else (None, reason)."""
    groups = find_box_groups(text)
    # A bracketed number list that is not a box group (3 numbers, a point, ...) is an error.
    if len(find_number_lists(text)) != len(groups):
        return None, "malformed box"
    for group in groups:
        for box in group:
            if problem := box_problem(box):
                return None, problem
    return groups, None


def parse_box_qa_pair(question: str, answer: str) -> Parsed:
    """Record from an already split pair -> {question, answer, question_boxes, answer_boxes}."""
    question_boxes, reason = box_groups(question)
    if question_boxes is None:
        return Parsed.reject(reason or "malformed box")
    answer_boxes, reason = box_groups(answer)
    if answer_boxes is None:
        return Parsed.reject(reason or "malformed box")
    if not question_boxes and not answer_boxes:
        return Parsed.reject("no box")
    return Parsed.accept({"question": question, "answer": answer,
                          "question_boxes": question_boxes, "answer_boxes": answer_boxes})


class BoxQA(Task):
    """Annotation {"question", "answer" with `<ph_st>..<ph_ed>` marks, "question_boxes_seq",
    "answer_boxes_seq", "boxes" (pixels), "width", "height"} <-> `Question: {q} Answer: {cot}`.

    One class for `qca_box` and `rd`: the formats are identical, only the suffix differs.
    """

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        w, h = annotation["width"], annotation["height"]
        boxes = [normalized_target_box(b, w, h) for b in annotation["boxes"]]
        texts = []
        for field in ("question", "answer"):
            text = require_text(annotation, field)
            if find_number_lists(text):
                raise ValueError(f"{field} already contains coordinates: {text!r}")
            texts.append(fill_boxes(text, annotation.get(f"{field}_boxes_seq") or [], boxes))
        if not find_box_groups(texts[0] + texts[1]):
            raise ValueError(f"{self.name} sample has no box at all: {annotation!r}")
        return format_qa(*texts)

    def parse_pair(self, question: str, answer: str) -> Parsed:
        return parse_box_qa_pair(question, answer)

    def recognizes(self, text: str) -> bool:
        """One pair with coordinates anywhere (the grounded catch-all of task-agnostic mode)."""
        pair = single_pair(text)
        return pair is not None and bool(find_number_lists(pair[0]) or find_number_lists(pair[1]))
