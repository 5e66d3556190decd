"""PointQA-V7W: a question with candidate boxes; the answer is one candidate box (or a point)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .base import Parsed, Task, format_qa, require_text, single_pair
from .boxes import (
    Box,
    find_number_lists,
    format_box,
    format_coordinate,
    parse_coordinate,
)
from .keyed import keyed_rng
from .pointqa_local import check_version, normalized_coordinate, pick_kind
from .templates import TemplatePool

CANDIDATES = "Candidates:"
MIN_CANDIDATES = 2


def parse_candidates(text: str) -> tuple[list[Box] | None, str | None]:
    """(boxes, None) for a whitespace-separated run of single boxes, else (None, reason)."""
    lists = find_number_lists(text)
    rest = text
    for raw in lists:
        rest = rest.replace(raw, " ", 1)
    if rest.strip():
        return None, "text among candidates"
    boxes: list[Box] = []
    for raw in lists:
        value, reason = parse_coordinate(raw)
        if value is None:
            return None, reason
        if len(value) != 4:
            return None, "malformed candidate"
        boxes.append(value)  # type: ignore[arg-type]
    if len(boxes) < MIN_CANDIDATES:
        return None, "too few candidates"
    if len(set(boxes)) != len(boxes):
        return None, "duplicate candidates"
    return boxes, None


def parse_v7w_pair(question_block: str, answer: str) -> Parsed:
    """Record from an already split pair -> {question, candidates, answer (box or point)}."""
    if question_block.count(CANDIDATES) != 1:
        return Parsed.reject("no candidates" if CANDIDATES not in question_block else "more than one candidates list")
    question, tail = (part.strip() for part in question_block.split(CANDIDATES))
    if not question:
        return Parsed.reject("empty question")
    if find_number_lists(question):
        return Parsed.reject("box in question")
    candidates, reason = parse_candidates(tail)
    if candidates is None:
        return Parsed.reject(reason or "malformed candidates")
    lists = find_number_lists(answer)
    if not lists:
        return Parsed.reject("no box or point in answer")
    if len(lists) > 1:
        return Parsed.reject("more than one box in answer")
    if answer.strip().removesuffix(".").strip() != lists[0]:
        return Parsed.reject("text beyond box")
    value, reason = parse_coordinate(lists[0])
    if value is None:
        return Parsed.reject((reason or "malformed box").replace("more than one box", "more than one box in answer"))
    if len(value) == 4 and value not in candidates:
        return Parsed.reject("answer not among candidates")
    return Parsed.accept({"question": question, "candidates": candidates, "answer": value})


def candidates_text(question: str, candidates: list[Box]) -> str:
    """`{question} Candidates: [b] [b] ...`."""
    return f"{question} {CANDIDATES} " + " ".join(format_box(b) for b in candidates)


def v7w_conversation(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The question with its candidates, answered by the box or point."""
    return [(candidates_text(record["question"], record["candidates"]), format_coordinate(record["answer"]))]


class PointQAV7W(Task):
    """Annotation {"question", "candidates", "answer_box", "point"?, "width", "height"} <->
    `Question: {q} Candidates: [b] [b] ... Answer: [b]` (or `[x,y]` for a point answer)."""

    def __init__(self, name: str, suffix: str, instructions: TemplatePool, version: str = "b",
                 family: str | None = None) -> None:
        super().__init__(name, suffix, instructions, family)
        self.version = check_version(version)

    def corpus(self) -> Iterator[str]:
        yield from super().corpus()
        yield CANDIDATES

    def candidate_order(self, n: int, key: object) -> list[int]:
        """The shown order of `n` candidates: a shuffle seeded by the sample key."""
        order = list(range(n))
        keyed_rng(key, f"{self.name}:candidates").shuffle(order)
        return order

    def target(self, annotation: Mapping[str, Any], key: object) -> str:
        question = require_text(annotation, "question")
        if CANDIDATES in question or find_number_lists(question):
            raise ValueError(f"pointqa_v7w question already holds candidates or coordinates: {question!r}")
        raw = annotation.get("candidates")
        if not isinstance(raw, (list, tuple)) or len(raw) < MIN_CANDIDATES:
            raise ValueError(f"pointqa_v7w needs >= {MIN_CANDIDATES} candidates, got {raw!r}")
        if any(len(c) != 4 for c in raw):
            raise ValueError(f"pointqa_v7w candidates must be xyxy boxes: {raw!r}")
        w, h = annotation["width"], annotation["height"]
        candidates = [normalized_coordinate(c, w, h) for c in raw]
        if len(set(candidates)) != len(candidates):
            raise ValueError(f"candidates collide after normalization: {candidates}")
        answer_box = annotation.get("answer_box")
        if answer_box is not None and normalized_coordinate(answer_box, w, h) not in candidates:
            raise ValueError(f"answer_box {answer_box!r} is not one of the candidates")
        kind = pick_kind(self.version, answer_box is not None, annotation.get("point") is not None,
                         key, f"{self.name}:version")
        answer = normalized_coordinate(answer_box if kind == "b" else annotation["point"], w, h)
        shown = [candidates[i] for i in self.candidate_order(len(candidates), key)]
        return format_qa(candidates_text(question, shown), format_coordinate(answer))  # type: ignore[arg-type]

    def parse_pair(self, question: str, answer: str) -> Parsed:
        return parse_v7w_pair(question, answer)

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        return v7w_conversation(record)

    def recognizes(self, text: str) -> bool:
        """One pair with a candidates list in the question."""
        pair = single_pair(text)
        return pair is not None and CANDIDATES in pair[0]
