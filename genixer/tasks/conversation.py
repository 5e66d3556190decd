"""Conversations as they stand: what a downstream MLLM (not a generator) trains on."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .dialogue import dialogue_conversation


class Conversation:
    """A record {"turns": [{"question", "answer"}, ...]} (``LLaVAInstruct``, any ``min_turns``) trains as a
    chat: each question a human turn, each answer a supervised gpt turn. No instruction, no suffix: the
    file's prompts are the prompts (LLaVA's data, a study's mixed annotated + synthetic files)."""

    def __init__(self, name: str = "conversation") -> None:
        self.name = self.family = name

    def corpus(self) -> Iterator[str]:
        return iter(())

    def turns(self, annotation: Mapping[str, Any], key: object = None) -> list[tuple[str, str]]:
        turns = annotation.get("turns")
        if not turns:
            raise ValueError(f"a conversation needs 'turns' [{{question, answer}}, ...], got {turns!r}")
        return dialogue_conversation(annotation)

    def __repr__(self) -> str:
        return f"Conversation(name={self.name!r})"
