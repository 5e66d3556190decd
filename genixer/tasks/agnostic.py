"""Task-agnostic mode: no suffix, the generator picks the task; parsing classifies it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Parsed, Task, parse_qa_pair
from .boxes import find_number_lists
from .rec import ExpressionMatcher, parse_rec_pair
from .templates import TemplatePool


class TaskAgnostic(Task):
    """Generic instruction only; output is classified as "rec" (box answer) or "common_vqa"."""

    def __init__(self, instructions: TemplatePool, questions: TemplatePool,
                 name: str = "agnostic", suffix: str = "") -> None:
        super().__init__(name, suffix, instructions)
        self.questions = questions
        self.matcher = ExpressionMatcher(questions)

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        raise NotImplementedError(
            "TaskAgnostic has no target format of its own: render the target with the "
            "specific task (CommonVQA, REC, ...) and take only the instruction from here")

    def parse(self, text: str) -> Parsed:
        pair = parse_qa_pair(text)
        if not pair.ok:
            return pair
        question, answer = pair.record["question"], pair.record["answer"]  # type: ignore[index]
        if not find_number_lists(answer):
            return Parsed.accept({"task": "common_vqa", "question": question, "answer": answer})
        # Coordinates in the answer: it must be a clean REC sample or it is dropped.
        rec = parse_rec_pair(question, answer, self.matcher)
        return Parsed.accept({"task": "rec", **rec.record}) if rec.ok else rec  # type: ignore[arg-type]
