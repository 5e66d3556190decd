"""REC: the generator writes an item question about an expression and its box."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from .base import Parsed, Region, Task, format_qa, require_text, single_pair
from .boxes import (
    Box,
    attached,
    box_group_fullmatch,
    box_problem,
    find_box_groups,
    find_number_lists,
    format_box,
    normalized_target_box,
)
from .templates import TemplatePool

EXPR = "<expr>"


def _literal(text: str) -> str:
    """Escaped template text where any whitespace run matches any whitespace run."""
    return r"\s+".join(re.escape(word) for word in re.split(r"\s+", text))


class ExpressionMatcher:
    """Recovers `<expr>` from a question by matching it against the question templates."""

    def __init__(self, questions: TemplatePool, placeholder: str = EXPR) -> None:
        compiled = []
        for index, template in enumerate(questions.templates):
            if template.count(placeholder) != 1:
                raise ValueError(f"{questions.source}: template {index} must contain {placeholder!r} once: {template!r}")
            head, tail = template.split(placeholder)
            pattern = rf"\s*{_literal(head)}(.+?){_literal(tail)}\s*"
            literal = len(head.strip()) + len(tail.strip())
            compiled.append((-literal, index, re.compile(pattern, re.IGNORECASE | re.DOTALL)))
        # Most specific (longest literal text) first, ties by pool order.
        self._patterns = [(index, rx) for _, index, rx in sorted(compiled, key=lambda c: c[:2])]

    def match(self, question: str) -> tuple[int, str] | None:
        """(template id, expression) of the first matching template, or None."""
        for index, rx in self._patterns:
            m = rx.fullmatch(question)
            if m and m.group(1).strip():
                return index, m.group(1).strip()
        return None


def parse_box_answer(answer: str) -> tuple[Box | None, str | None]:
    """(box, None) when the answer is exactly one valid box, else (None, reason)."""
    groups = find_box_groups(answer)
    if not groups:
        return None, ("malformed box" if find_number_lists(answer) else "no box in answer")
    if len(groups) > 1 or len(groups[0]) > 1:
        return None, "more than one box in answer"
    # A trailing period is tolerated; any other text around the box is not.
    boxes = box_group_fullmatch(answer.strip().removesuffix("."))
    if boxes is None:
        return None, "text beyond box"
    if problem := box_problem(boxes[0]):
        return None, problem
    return boxes[0], None


def parse_rec_pair(question: str, answer: str, matcher: ExpressionMatcher) -> Parsed:
    """REC record from an already split pair: the question must be box-free."""
    if find_number_lists(question):
        return Parsed.reject("box in question")
    box, reason = parse_box_answer(answer)
    if box is None:
        return Parsed.reject(reason or "no box in answer")
    found = matcher.match(question)
    return Parsed.accept({"question": question, "expression": found[1] if found else None, "box": box})


def rec_conversation(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The item question, answered by the box text."""
    return [(record["question"], format_box(record["box"]))]


class REC(Task):
    """Annotation {"expression", "bbox" (pixels), "width", "height"} <-> `Question: ... Answer: [box]`."""

    def __init__(self, name: str, suffix: str, instructions: TemplatePool, questions: TemplatePool,
                 family: str | None = None) -> None:
        super().__init__(name, suffix, instructions, family)
        self.questions = questions
        self.matcher = ExpressionMatcher(questions)

    def corpus(self) -> Iterator[str]:
        yield from super().corpus()
        yield from self.questions.templates

    def question(self, expression: str, key: object) -> tuple[int, str]:
        """(template id, item question) with `<expr>` filled, stable per key."""
        index, template = self.questions.pick(key)
        return index, template.replace(EXPR, expression)

    def target(self, annotation: Mapping[str, Any], key: object) -> str:
        return format_qa(*self.listened(annotation, key))

    def listened(self, annotation: Mapping[str, Any], key: object) -> tuple[str, str]:
        """(item question, box text): the pair a REC model is asked and answers."""
        expression = require_text(annotation, "expression")
        box = normalized_target_box(annotation["bbox"], annotation["width"], annotation["height"])
        return self.question(expression, key)[1], format_box(box)

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        return rec_conversation(record)

    def parse_pair(self, question: str, answer: str) -> Parsed:
        return parse_rec_pair(question, answer, self.matcher)

    def regions(self, record: Mapping[str, Any]) -> list[Region]:
        return [Region(record["expression"], tuple(record["box"]))]

    def recognizes(self, text: str) -> bool:
        """A question without coordinates, an answer with one box standing on its own (not after a word)."""
        pair = single_pair(text)
        if pair is None or find_number_lists(pair[0]):
            return False
        lists = find_number_lists(pair[1])
        return len(lists) == 1 and ";" not in lists[0] and not attached(pair[1], lists[0])


class RECListener(REC):
    """REC the other way round, as a REC model is asked it: the item question is the human turn (no instruction,
    no suffix) and the box the answer. Beside a generator's REC rows it trains the step from written words to a
    box; a generator is never asked this task, so it has no generation protocol of its own."""

    def turns(self, annotation: Mapping[str, Any], key: object) -> list[tuple[str, str]]:
        return [self.listened(annotation, key)]
