"""Common VQA: the generator writes one short `Question: ... Answer: ...` pair."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Parsed, Task, format_qa, parse_qa_pair, require_text
from .boxes import find_number_lists
from .templates import TemplatePool


class CommonVQA(Task):
    """Annotation {"question", "answer"} <-> `Question: {q} Answer: {a}`."""

    def __init__(self, name: str, suffix: str, instructions: TemplatePool) -> None:
        super().__init__(name, suffix, instructions)

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        # Stripped so that parse(target(...)) gives the fields back exactly.
        return format_qa(require_text(annotation, "question"), require_text(annotation, "answer"))

    def parse(self, text: str) -> Parsed:
        return parse_qa_text(text)


def parse_qa_text(text: str) -> Parsed:
    """A single plain QA pair; coordinates in the answer mean another task leaked in."""
    parsed = parse_qa_pair(text)
    if parsed.ok and find_number_lists(parsed.record["answer"]):  # type: ignore[index]
        return Parsed.reject("box in answer")
    return parsed
