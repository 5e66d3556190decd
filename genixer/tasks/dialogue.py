"""Multi-turn dialogue (MD / MD_Long): several `Question: ...\\nAnswer: ...` pairs, one per line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Parsed, QAPair, Task, format_qa, parse_qa_pairs, require_text
from .templates import TemplatePool

_Q, _A = "Question:", "Answer:"


def parse_dialogue(text: str, min_turns: int = 2) -> Parsed:
    """MD text -> {"turns": [{"question", "answer"}, ...]} with at least `min_turns` pairs."""
    # Checked first: a generation cut off after its last question is the common failure.
    if text.count(_Q) > text.count(_A):
        return Parsed.reject("question without answer")
    parsed = parse_qa_pairs(text)
    if not parsed.ok:
        return parsed
    turns = parsed.record["pairs"]  # type: ignore[index]
    if len(turns) < min_turns:
        return Parsed.reject("too few turns")
    return Parsed.accept({"turns": turns})


def dialogue_conversation(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """One (question, answer) turn per pair."""
    return [(t["question"], t["answer"]) for t in record["turns"]]


class MultiTurnDialogue(Task):
    """Annotation {"turns": [{"question", "answer"}, ...]} <-> `Question: q1\\nAnswer: a1\\nQuestion: q2...`.

    The instruction pool is the fixed MD string (a one-entry pool); `md_long` only adds a suffix.
    """

    def __init__(self, name: str, suffix: str, instructions: TemplatePool, min_turns: int = 2,
                 family: str | None = None) -> None:
        super().__init__(name, suffix, instructions, family)
        if min_turns < 1:
            raise ValueError(f"min_turns must be >= 1, got {min_turns}")
        self.min_turns = min_turns

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        turns = annotation.get("turns")
        if not isinstance(turns, (list, tuple)) or len(turns) < self.min_turns:
            raise ValueError(f"md needs >= {self.min_turns} turns, got {turns!r}")
        lines = []
        for turn in turns:
            question, answer = require_text(turn, "question"), require_text(turn, "answer")
            if any(m in part for part in (question, answer) for m in (_Q, _A)):
                # A marker inside a turn would split it differently on parsing.
                raise ValueError(f"md turn contains a Question:/Answer: marker: {turn!r}")
            lines.append(format_qa(question, answer, sep="\n"))
        return "\n".join(lines)

    def parse(self, text: str) -> Parsed:
        return parse_dialogue(text, self.min_turns)

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        return dialogue_conversation(record)

    def qa_pairs(self, record: Mapping[str, Any]) -> list[QAPair]:
        return [QAPair(t["question"], t["answer"]) for t in record["turns"]]

    def recognizes(self, text: str) -> bool:
        """More than one question."""
        return text.count(_Q) > 1
