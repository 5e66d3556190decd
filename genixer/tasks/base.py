"""Task abstraction: instruction building, target rendering and output parsing."""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .templates import TemplatePool

QA_PAIR_RE = re.compile(r"(?s)^\s*Question:\s*(.*?)\s*Answer:\s*(.*?)\s*$")
# One pair per match; an answer runs until the next "Question:" or the end.
QA_PAIRS_RE = re.compile(r"(?s)Question:\s*(.*?)\s*Answer:\s*(.*?)\s*(?=Question:|\Z)")
_Q, _A = "Question:", "Answer:"


@dataclass(frozen=True)
class Parsed:
    """Result of parsing one generated sample: a record, or a short reject reason."""

    ok: bool
    record: dict[str, Any] | None = None
    reason: str | None = None

    @classmethod
    def accept(cls, record: dict[str, Any]) -> Parsed:
        return cls(True, record, None)

    @classmethod
    def reject(cls, reason: str) -> Parsed:
        return cls(False, None, reason)


def format_qa(question: str, answer: str, sep: str = " ") -> str:
    """`Question: {q}{sep}Answer: {a}`."""
    return f"{_Q} {question}{sep}{_A} {answer}"


def _shape_problem(text: str, max_pairs: int | None) -> str | None:
    """Reject reason for texts that cannot be a run of Question/Answer pairs."""
    n_q, n_a = text.count(_Q), text.count(_A)
    if n_q == 0:
        return "missing question"
    if n_a == 0:
        return "missing answer"
    if max_pairs is not None and max(n_q, n_a) > max_pairs:
        return "more than one pair"
    if n_q != n_a:
        return "unbalanced pairs"
    if not text.lstrip().startswith(_Q):
        return "text before question"
    return None


def parse_qa_pair(text: str) -> Parsed:
    """Exactly one `Question: ... Answer: ...` pair -> {"question", "answer"}."""
    if problem := _shape_problem(text, max_pairs=1):
        return Parsed.reject(problem)
    m = QA_PAIR_RE.match(text)
    if m is None:  # e.g. "Answer:" written before "Question:"
        return Parsed.reject("malformed pair")
    return _check_pair(m.group(1), m.group(2))


def parse_qa_pairs(text: str) -> Parsed:
    """One or more pairs (multi-turn dialogue) -> {"pairs": [{"question", "answer"}, ...]}."""
    if problem := _shape_problem(text, max_pairs=None):
        return Parsed.reject(problem)
    pairs = []
    for m in QA_PAIRS_RE.finditer(text):
        # Balanced counts + each match holding one marker of each means no marker
        # was swallowed inside a question or answer.
        if _Q in m.group(1) or _A in m.group(1) or _A in m.group(2):
            return Parsed.reject("malformed pair")
        one = _check_pair(m.group(1), m.group(2))
        if not one.ok:
            return one
        pairs.append(one.record)
    if len(pairs) != text.count(_Q):
        return Parsed.reject("malformed pair")
    return Parsed.accept({"pairs": pairs})


def _check_pair(question: str, answer: str) -> Parsed:
    question, answer = question.strip(), answer.strip()
    if not question:
        return Parsed.reject("empty question")
    if not answer:
        return Parsed.reject("empty answer")
    return Parsed.accept({"question": question, "answer": answer})


def require_text(annotation: Mapping[str, Any], field: str) -> str:
    """A stripped, non-empty string field of an annotation (clear error otherwise)."""
    value = annotation.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"annotation field {field!r} must be a non-empty string, got {value!r}")
    return value.strip()


class Task(abc.ABC):
    """A generator task: generic instruction + protocol suffix -> one synthetic sample."""

    def __init__(self, name: str, suffix: str, instructions: TemplatePool) -> None:
        self.name = name
        self.suffix = suffix  # protocol text, leading space/newline included
        self.instructions = instructions

    def instruction(self, key: object) -> tuple[int, str]:
        """(template id, generic template + task suffix) for a stable key."""
        index, template = self.instructions.pick(key)
        return index, template + self.suffix

    def corpus(self) -> Iterator[str]:
        """Every fixed text this task can put in a prompt or target (for training tokenizers)."""
        yield self.suffix
        yield from self.instructions.templates

    @abc.abstractmethod
    def target(self, annotation: Mapping[str, Any], key: object) -> str:
        """The full sample text the generator learns to write for this annotation."""

    def parse(self, text: str) -> Parsed:
        """Generated text -> a record for this task, or a reject reason.

        By default: exactly one ``Question: ... Answer: ...`` pair, then the family's own
        checks in ``parse_pair``; families with another shape override ``parse``.
        """
        pair = parse_qa_pair(text)
        if not pair.ok:
            return pair
        return self.parse_pair(pair.record["question"], pair.record["answer"])  # type: ignore[index]

    def parse_pair(self, question: str, answer: str) -> Parsed:
        raise NotImplementedError(f"{type(self).__name__} must override parse or parse_pair")

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(human, gpt) turns of a parsed record, as downstream training data."""
        return [(record["question"], record["answer"])]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, suffix={self.suffix!r}, n_instructions={len(self.instructions)})"
