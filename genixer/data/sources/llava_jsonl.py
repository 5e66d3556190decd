"""LLaVA conversation jsonl (the released Genixer files, LLaVA-665K mixes) -> conversation records.

One object per line: ``{"id", "image", "conversations": [{"from": "human"|"gpt", "value"}, ...]}``,
``image`` relative to one data root (LLaVA's ``--image_folder``: ``coco/train2017/...``,
``gqa/images/...``, ``ocr_vqa/images/...``, ``textvqa/train_images/...``, ``vg/VG_100K/...``). LLaVA-665K
also holds text-only rows (no ``image``). Read as LLaVA's trainer reads them: a leading gpt message is
dropped (LLaVA skips it), then messages must alternate human, gpt.
"""
from __future__ import annotations

from collections import Counter

from genixer.data.sources.lenient import LenientJsonl, Malformed, identifier
from genixer.data.sources.llava_instruct import strip_image_token


class LLaVAJsonl(LenientJsonl):
    """Records ``{"id", "image", "turns": [{"question", "answer"}]}`` for ``tasks.Conversation`` (a downstream
    model trains on the file as it stands) or ``md`` (at least ``min_turns`` pairs).

    ``keep_text_only``: keep rows without an image as records with ``image`` None (our training data
    module needs an image, so by default they are counted in ``skipped`` and left out).
    ``trimmed`` counts rows kept after dropping a message LLaVA would not supervise.
    """

    def __init__(self, path: str, image_root: str, min_turns: int = 1, keep_text_only: bool = False) -> None:
        super().__init__(path, image_root)
        self.min_turns, self.keep_text_only = min_turns, keep_text_only
        self.trimmed: Counter = Counter()

    def load(self) -> list[dict]:
        self.trimmed = Counter()
        return super().load()

    def record(self, row: dict) -> dict | None:
        row_id = identifier(row, "id")
        turns, trims = self.turns(row.get("conversations"))
        image = row.get("image")
        if image is None:
            if not self.keep_text_only:
                self.skipped["text-only (no image)"] += 1
                return None
        elif not isinstance(image, str) or not image.strip():
            raise Malformed("field 'image' not a non-empty string")
        if len(turns) < self.min_turns:
            self.skipped["fewer than min_turns"] += 1
            return None
        self.trimmed.update(trims)
        return {"id": row_id, "image": str(self.image_root / image) if image else None, "turns": turns}

    @staticmethod
    def turns(messages: object) -> tuple[list[dict[str, str]], list[str]]:
        """Alternating human / gpt messages -> ([{question, answer}], messages dropped as LLaVA would)."""
        if not isinstance(messages, list) or not messages:
            raise Malformed("field 'conversations' not a non-empty list")
        if not all(isinstance(m, dict) and isinstance(m.get("value"), str) for m in messages):
            raise Malformed("message without a string 'value'")
        trims = []
        if messages[0].get("from") == "gpt":
            messages, trims = messages[1:], ["leading gpt message dropped"]
        if len(messages) % 2 and messages[-1].get("from") == "human":
            messages, trims = messages[:-1], [*trims, "unanswered last human message dropped"]
        roles = [m.get("from") for m in messages]
        if not messages or roles != ["human", "gpt"] * (len(messages) // 2):
            raise Malformed("roles not alternating human, gpt")
        turns = [{"question": strip_image_token(h["value"]), "answer": g["value"].strip()}
                 for h, g in zip(messages[::2], messages[1::2])]
        return turns, trims
