"""Long-sentence VQA: one `Question: ... Answer: ...` pair whose answer is a sentence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Parsed, format_qa, require_text
from .common_vqa import CommonVQA, parse_qa_text
from .templates import TemplatePool


class LongQA(CommonVQA):
    """Common VQA whose answers have at least `min_answer_words` words (short ones are rejected)."""

    def __init__(self, name: str, suffix: str, instructions: TemplatePool, min_answer_words: int = 3,
                 family: str | None = None) -> None:
        super().__init__(name, suffix, instructions, family)
        if min_answer_words < 1:
            raise ValueError(f"min_answer_words must be >= 1, got {min_answer_words}")
        self.min_answer_words = min_answer_words

    def _too_short(self, answer: str) -> bool:
        return len(answer.split()) < self.min_answer_words

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        answer = require_text(annotation, "answer")
        if self._too_short(answer):
            # Fail loudly: such a sample would teach the short-answer task (filter on ingest).
            raise ValueError(f"long_qa answer needs >= {self.min_answer_words} words: {answer!r}")
        return format_qa(require_text(annotation, "question"), answer)

    def parse(self, text: str) -> Parsed:
        parsed = parse_qa_text(text)
        if parsed.ok and self._too_short(parsed.record["answer"]):  # type: ignore[index]
            return Parsed.reject("answer too short")
        return parsed
