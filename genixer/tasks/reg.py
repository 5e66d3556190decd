"""REG: the generator writes an item question about a box and the expression describing it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .base import Parsed, Region, Task, format_qa, require_text, single_pair
from .boxes import (
    attached,
    find_number_lists,
    is_point_text,
    format_box,
    normalized_target_box,
)
from .rec import parse_box_answer
from .templates import TemplatePool

OBJS = "<objs>"
_END_PUNCT = (".", "!", "?")


def terminated(expression: str) -> str:
    """The expression as written in a target: a "." is added only when no end punctuation is there."""
    # The original always appended "." and wrote ".." after expressions that had one.
    return expression if expression.endswith(_END_PUNCT) else expression + "."


def parse_reg_pair(question: str, answer: str) -> Parsed:
    """REG record from an already split pair -> {question, box, expression}."""
    lists = find_number_lists(question)
    if not lists:
        return Parsed.reject("no box in question")
    if len(lists) > 1:
        return Parsed.reject("more than one box in question")
    box, reason = parse_box_answer(lists[0])
    if box is None:
        return Parsed.reject((reason or "malformed box").replace("in answer", "in question"))
    if find_number_lists(answer):
        return Parsed.reject("box in answer")
    # Trailing periods terminate the sample (also the ".." of original checkpoints).
    expression = answer.strip().rstrip(".").strip()
    if not expression:
        return Parsed.reject("empty answer")
    return Parsed.accept({"question": question, "box": box, "expression": expression})


def reg_conversation(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The question holding the box, answered by the expression."""
    return [(record["question"], terminated(record["expression"]))]


class REG(Task):
    """Annotation {"expression", "bbox" (pixels), "width", "height"} <-> `Question: ...[box]... Answer: expr.`."""

    def __init__(self, name: str, suffix: str, instructions: TemplatePool, questions: TemplatePool,
                 family: str | None = None) -> None:
        super().__init__(name, suffix, instructions, family)
        if any(t.count(OBJS) != 1 for t in questions.templates):
            raise ValueError(f"{questions.source}: every REG question needs {OBJS!r} exactly once")
        self.questions = questions

    def corpus(self) -> Iterator[str]:
        yield from super().corpus()
        yield from self.questions.templates

    def question(self, box_text: str, key: object) -> tuple[int, str]:
        """(template id, item question) with `<objs>` filled, stable per key."""
        index, template = self.questions.pick(key)
        return index, template.replace(OBJS, box_text)

    def target(self, annotation: Mapping[str, Any], key: object) -> str:
        expression = require_text(annotation, "expression")
        if not expression.rstrip(".").strip():
            raise ValueError(f"reg expression has no words: {expression!r}")
        if find_number_lists(expression):
            raise ValueError(f"reg expression contains coordinates: {expression!r}")
        box = normalized_target_box(annotation["bbox"], annotation["width"], annotation["height"])
        return format_qa(self.question(format_box(box), key)[1], terminated(expression))

    def parse_pair(self, question: str, answer: str) -> Parsed:
        return parse_reg_pair(question, answer)

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        return reg_conversation(record)

    def regions(self, record: Mapping[str, Any]) -> list[Region]:
        return [Region(record["expression"], tuple(record["box"]))]

    def recognizes(self, text: str) -> bool:
        """One box in the question after a space (PointQA glues its coordinate to a word), none in the answer."""
        pair = single_pair(text)
        if pair is None or find_number_lists(pair[1]):
            return False
        lists = find_number_lists(pair[0])
        return len(lists) == 1 and not is_point_text(lists[0]) and not attached(pair[0], lists[0])
