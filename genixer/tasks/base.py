"""Task abstraction: instruction building, target rendering, output parsing, and the typed fields
every accepted sample carries for later stages (family, QA pairs, regions, LLaVA conversation)."""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .templates import TemplatePool

QA_PAIR_RE = re.compile(r"(?s)^\s*Question:\s*(.*?)\s*Answer:\s*(.*?)\s*$")
# One pair per match; an answer runs until the next "Question:" or the end.
QA_PAIRS_RE = re.compile(r"(?s)Question:\s*(.*?)\s*Answer:\s*(.*?)\s*(?=Question:|\Z)")
_Q, _A = "Question:", "Answer:"


@dataclass(frozen=True)
class Parsed:
    """Result of parsing one generated sample: a record, or a short reject reason.

    ``task`` is the task whose format the record is in, when it is not the parsing task itself
    (a ``OneOf`` hands the text to one of its tasks).
    """

    ok: bool
    record: dict[str, Any] | None = None
    reason: str | None = None
    task: Task | None = None

    @classmethod
    def accept(cls, record: dict[str, Any], task: Task | None = None) -> Parsed:
        return cls(True, record, None, task)

    @classmethod
    def reject(cls, reason: str) -> Parsed:
        return cls(False, None, reason)


@dataclass(frozen=True)
class QAPair:
    """A question and its text answer, as a judge reads them (``Question: {q} Answer: {a}``)."""

    question: str
    answer: str


@dataclass(frozen=True)
class Region:
    """A referring expression and its box (normalized xyxy, original image): what a crop scorer reads.

    ``expression`` is None when the generated question matched no known template.
    """

    expression: str | None
    box: tuple[float, float, float, float]


def llava_turns(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    """(human, gpt) turns in LLaVA's training format: the image placeholder opens the first human turn."""
    out = []
    for i, (human, gpt) in enumerate(turns):
        out += [{"from": "human", "value": f"<image>\n{human}" if i == 0 else human}, {"from": "gpt", "value": gpt}]
    return out


def single_pair(text: str) -> tuple[str, str] | None:
    """(question, answer) of a text that is exactly one well-formed pair, else None."""
    parsed = parse_qa_pair(text)
    return (parsed.record["question"], parsed.record["answer"]) if parsed.ok else None  # type: ignore[index]


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
    """A generator task: generic instruction + protocol suffix -> one synthetic sample.

    A task owns its records: ``parse`` gives the family's record, and ``fields`` the typed fields
    later stages read (``family`` names the record's shape and its oracle check; ``qa_pairs`` feed
    a judge, ``regions`` a crop scorer and the Shikra REC export, ``conversations`` the LLaVA one).
    """

    def __init__(self, name: str, suffix: str, instructions: TemplatePool, family: str | None = None) -> None:
        self.name = name
        self.suffix = suffix  # protocol text, leading space/newline included
        self.instructions = instructions
        self.family = family or name

    def instruction(self, key: object) -> tuple[int, str]:
        """(template id, generic template + task suffix) for a stable key."""
        index, template = self.instructions.pick(key)
        return index, template + self.suffix

    def corpus(self) -> Iterator[str]:
        """Every fixed text this task can put in a prompt or target (for training tokenizers)."""
        yield self.suffix
        yield from self.instructions.templates

    def turns(self, annotation: Mapping[str, Any], key: object) -> list[tuple[str, str]]:
        """What a generator trains on for an annotation: one (instruction, target) turn."""
        return [(self.instruction(key)[1], self.target(annotation, key))]

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

    def qa_pairs(self, record: Mapping[str, Any]) -> list[QAPair]:
        """The record's question / text-answer pairs a judge can check from the image alone."""
        return []

    def regions(self, record: Mapping[str, Any]) -> list[Region]:
        """The record's (expression, box) pairs."""
        return []

    def recognizes(self, text: str) -> bool:
        """Whether ``text`` has this task's shape, so a ``OneOf`` (task-agnostic mode) hands it here."""
        return False

    def fields(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """What an accepted sample carries for later stages (JSON-ready)."""
        return {
            "family": self.family,
            "parsed": dict(record),
            "qa_pairs": [asdict(p) for p in self.qa_pairs(record)],
            "regions": [{"expression": r.expression, "box": list(r.box)} for r in self.regions(record)],
            "conversations": llava_turns(self.conversation(record)),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, suffix={self.suffix!r}, n_instructions={len(self.instructions)})"
