"""Common VQA: the generator writes one short `Question: ... Answer: ...` pair."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Parsed, QAPair, Task, format_qa, parse_qa_pair, require_text, single_pair
from .boxes import find_number_lists


class CommonVQA(Task):
    """Annotation {"question", "answer"} <-> `Question: {q} Answer: {a}`."""

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        # Stripped so that parse(target(...)) gives the fields back exactly.
        return format_qa(require_text(annotation, "question"), require_text(annotation, "answer"))

    def parse(self, text: str) -> Parsed:
        return parse_qa_text(text)

    def qa_pairs(self, record: Mapping[str, Any]) -> list[QAPair]:
        return [QAPair(record["question"], record["answer"])]

    def recognizes(self, text: str) -> bool:
        """One pair without coordinates."""
        pair = single_pair(text)
        return pair is not None and not find_number_lists(pair[0]) and not find_number_lists(pair[1])


def parse_qa_text(text: str) -> Parsed:
    """A single plain QA pair; coordinates in the answer mean another task leaked in."""
    parsed = parse_qa_pair(text)
    if parsed.ok and find_number_lists(parsed.record["answer"]):  # type: ignore[index]
        return Parsed.reject("box in answer")
    return parsed
