"""Conversation templates: render chats to text and mark which characters are supervised."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "conversation.json"


@dataclass(frozen=True)
class Conversation:
    """A two-separator chat template (LLaVA ``vicuna_v1`` / Shikra ``vicuna_v1.1`` style).

    ``system + " " + USER: msg + sep + ASSISTANT: reply + sep2 + USER: ...``; the prompt for
    generation ends with ``"ASSISTANT:"`` and no trailing space (docs/original.md §3).
    """

    name: str
    system: str
    roles: tuple[str, str] = ("USER", "ASSISTANT")
    sep: str = " "
    sep2: str = "</s>"

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", tuple(self.roles))  # configs give lists

    def render(self, turns: list[tuple[str, str]]) -> tuple[str, list[tuple[int, int]]]:
        """Render (human, assistant) turns; return the text and the supervised char spans.

        Supervised: each assistant reply with the space before it and the ``sep2`` that closes it, nothing else.
        """
        text = self.system + self.sep
        spans = []
        for human, assistant in turns:
            text += f"{self.roles[0]}: {human}{self.sep}{self.roles[1]}:"
            # The prompt ends at "ASSISTANT:", so the model writes the space before its reply too: a token holding
            # only that space (before a digit-initial reply such as "1") must be supervised, or it is never learnt.
            start = len(text)
            text += " " + assistant + self.sep2
            spans.append((start, len(text)))
        return text, spans

    def prompt(self, history: list[tuple[str, str]], human: str) -> str:
        """The generation prompt: earlier turns, the new human message, then ``ASSISTANT:``."""
        text, _ = self.render(history)
        return f"{text}{self.roles[0]}: {human}{self.sep}{self.roles[1]}:"

    def save(self, directory: str | Path) -> None:
        Path(directory, FILE_NAME).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> "Conversation":
        data = json.loads(Path(directory, FILE_NAME).read_text())
        return cls(**{**data, "roles": tuple(data["roles"])})
