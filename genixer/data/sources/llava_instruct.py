"""LLaVA-Instruct conversation JSON list -> md records (or one QA record per pair)."""
from __future__ import annotations

from pathlib import Path

from genixer.data.sources.boxes import Skipped
from genixer.data.sources.files import AnnotationError, ImageSizes, check_image_root, field, progress, read_json

IMAGE_TOKEN = "<image>"


def strip_image_token(text: str) -> str:
    """Drop ``<image>`` and the newline that joins it to the question (before or after)."""
    return text.replace(IMAGE_TOKEN + "\n", "").replace("\n" + IMAGE_TOKEN, "").replace(IMAGE_TOKEN, "").strip()


class LLaVAInstruct:
    """Reads ``llava_instruct_150k.json`` / ``conversation_58k.json``-style lists.

    Default: one md record {turns: [{question, answer}]} per conversation with at least
    ``min_turns`` pairs (shorter ones are counted in ``skipped``). ``as_pairs``: one
    {question, answer} record per pair instead (common_vqa / long_qa).
    """

    def __init__(self, path: str, image_root: str, min_turns: int = 2, as_pairs: bool = False) -> None:
        self.path, self.image_root = Path(path), Path(image_root)
        self.min_turns, self.as_pairs = min_turns, as_pairs
        self.skipped = Skipped()

    def load(self) -> list[dict]:
        data = read_json(self.path)
        if not isinstance(data, list):
            raise AnnotationError(f"{self.path}: expected a JSON list of conversations")
        self.skipped = Skipped()
        images = (row["image"] for row in data if isinstance(row, dict) and isinstance(row.get("image"), str))
        check_image_root(images, self.image_root, self.path)
        sizes, records = ImageSizes(), []
        for i, row in enumerate(progress(data, self.path)):
            where = f"{self.path}: [{i}]"
            turns = self._turns(field(row, "conversations", where), where)
            if not self.as_pairs and len(turns) < self.min_turns:
                self.skipped["fewer than min_turns"] += 1
                continue
            image = self.image_root / field(row, "image", where)
            width, height = sizes(image, where)
            base = {"image": str(image), "width": width, "height": height, "id": row.get("id")}
            if self.as_pairs:
                records += [{**base, "turn": k, **turn} for k, turn in enumerate(turns)]
            else:
                records.append({**base, "turns": turns})
        return records

    @staticmethod
    def _turns(conversation: object, where: str) -> list[dict[str, str]]:
        """Alternating human / gpt messages -> [{question, answer}]; anything else is malformed."""
        if not isinstance(conversation, list) or len(conversation) % 2:
            raise AnnotationError(f"{where}: field 'conversations' must be human/gpt message pairs")
        turns = []
        for k in range(0, len(conversation), 2):
            human, gpt = conversation[k], conversation[k + 1]
            for j, (msg, role) in enumerate(((human, "human"), (gpt, "gpt"))):
                at = f"{where}: conversations[{k + j}]"
                if field(msg, "from", at) != role:
                    raise AnnotationError(f"{at}: field 'from' must be '{role}', got {msg['from']!r}")
                if not isinstance(field(msg, "value", at), str):
                    raise AnnotationError(f"{at}: field 'value' must be a string")
            turns.append({"question": strip_image_token(human["value"]), "answer": gpt["value"].strip()})
        return turns
