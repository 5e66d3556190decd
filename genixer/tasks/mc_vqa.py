"""Multi-choice VQA (A-OKVQA style): lettered options inside the question, a letter as answer."""

from __future__ import annotations

import numbers
import re
import string
from collections.abc import Iterator, Mapping
from typing import Any

from .base import Parsed, QAPair, Task, format_qa, require_text, single_pair

LETTERS = "ABCDEF"
MIN_CHOICES, MAX_CHOICES = 2, len(LETTERS)
# "B. football" (also "B) football"); the option text may be empty so that it can be rejected.
_OPTION_RE = re.compile(r"^\s*([A-Z])[.)](?:\s+(.*?))?\s*$")
_LETTER_RE = re.compile(r"([A-Z])\.?")


def has_options(question: str) -> bool:
    """True when some line of `question` looks like a lettered option."""
    return any(_OPTION_RE.match(line) for line in question.splitlines())


def format_mc_question(question: str, choices: list[str]) -> str:
    """`{question}\\nA. c0\\nB. c1...`."""
    return "\n".join([question, *(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))])


def parse_mc_pair(question_block: str, answer: str) -> Parsed:
    """MC record from an already split pair -> {question, choices, answer_index, answer}."""
    lines = question_block.strip().splitlines()
    first = next((i for i, line in enumerate(lines) if _OPTION_RE.match(line)), None)
    if first is None:
        return Parsed.reject("no options")
    question = "\n".join(lines[:first]).strip()
    if not question:
        return Parsed.reject("empty question")
    letters, choices = [], []
    for line in lines[first:]:
        m = _OPTION_RE.match(line)
        if m is None:
            return Parsed.reject("text after options")
        letters.append(m.group(1))
        choices.append(m.group(2) or "")
    if "".join(letters) != string.ascii_uppercase[:len(letters)]:
        return Parsed.reject("non-consecutive option letters")
    if not MIN_CHOICES <= len(choices) <= MAX_CHOICES:
        return Parsed.reject("wrong number of options")
    if not all(choices):
        return Parsed.reject("empty option")
    if len({c.casefold() for c in choices}) != len(choices):
        return Parsed.reject("duplicate options")
    m = _LETTER_RE.fullmatch(answer.strip())
    if m is None:
        return Parsed.reject("answer not a single letter")
    if m.group(1) not in letters:
        return Parsed.reject("answer not among options")
    index = letters.index(m.group(1))
    return Parsed.accept({"question": question, "choices": choices, "answer_index": index, "answer": m.group(1)})


def mc_conversation(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The question with its options, answered by the letter."""
    return [(format_mc_question(record["question"], record["choices"]), record["answer"])]


class MCVQA(Task):
    """Annotation {"question", "choices" (2-6), "answer_index"} <-> `Question: q\\nA. ..\\nAnswer: A`."""

    def corpus(self) -> Iterator[str]:
        yield from super().corpus()
        yield from (f"{letter}. " for letter in LETTERS)

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        question = require_text(annotation, "question")
        choices = annotation.get("choices")
        if not isinstance(choices, (list, tuple)) or not MIN_CHOICES <= len(choices) <= MAX_CHOICES:
            raise ValueError(f"mc_vqa needs {MIN_CHOICES}-{MAX_CHOICES} choices, got {choices!r}")
        if not all(isinstance(c, str) and c.strip() and "\n" not in c for c in choices):
            raise ValueError(f"mc_vqa choices must be non-empty single-line strings: {choices!r}")
        choices = [c.strip() for c in choices]
        if len({c.casefold() for c in choices}) != len(choices):
            raise ValueError(f"mc_vqa choices must be distinct: {choices!r}")
        index = annotation.get("answer_index")
        if not isinstance(index, numbers.Integral) or isinstance(index, bool) or not 0 <= index < len(choices):
            raise ValueError(f"answer_index {index!r} out of range for {len(choices)} choices")
        # The options sit inside the question part, so "Answer:" starts a new line.
        return format_qa(format_mc_question(question, choices), LETTERS[int(index)], sep="\n")

    def parse_pair(self, question: str, answer: str) -> Parsed:
        return parse_mc_pair(question, answer)

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        return mc_conversation(record)

    def qa_pairs(self, record: Mapping[str, Any]) -> list[QAPair]:
        """The question with its options as written, answered by the letter with its option text."""
        k = record["answer_index"]
        return [QAPair(format_mc_question(record["question"], record["choices"]), f"{LETTERS[k]}. {record['choices'][k]}")]

    def recognizes(self, text: str) -> bool:
        """One pair whose question has lettered option lines."""
        pair = single_pair(text)
        return pair is not None and has_options(pair[0])
