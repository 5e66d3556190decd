"""Adversarial VQA (POPE-style existence questions): answers are only "yes" or "no"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Parsed, format_qa, require_text
from .common_vqa import CommonVQA, parse_qa_text

YES_NO = ("yes", "no")


def yes_no(answer: str) -> str | None:
    """"yes"/"no" for `Yes`, `no.` and the like; None for anything else."""
    word = answer.strip().rstrip(".!").strip().lower()
    return word if word in YES_NO else None


class AdvVQA(CommonVQA):
    """Annotation {"question", "answer" yes/no} <-> `Question: {q} Answer: yes|no`."""

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        answer = yes_no(require_text(annotation, "answer"))
        if answer is None:
            raise ValueError(f"adv_vqa answer must be yes or no, got {annotation['answer']!r}")
        return format_qa(require_text(annotation, "question"), answer)

    def parse(self, text: str) -> Parsed:
        parsed = parse_qa_text(text)
        if not parsed.ok:
            return parsed
        answer = yes_no(parsed.record["answer"])  # type: ignore[index]
        if answer is None:
            return Parsed.reject("answer not yes/no")
        # Canonical lower-case word: the existence label is all that matters downstream.
        return Parsed.accept({**parsed.record, "answer": answer})  # type: ignore[dict-item]
