"""Base for one-record-per-line annotation files (the Shikra jsonl layouts)."""
from __future__ import annotations

from pathlib import Path

from genixer.data.sources.boxes import Skipped
from genixer.data.sources.files import read_jsonl


class JsonlSource:
    """``load()`` reads ``path`` line by line; subclasses turn one row into a record.

    ``record`` returns None to drop a row (after counting why in ``self.skipped``) and raises
    ``AnnotationError`` (naming ``where`` = ``file:line``) for structural problems.
    """

    def __init__(self, path: str, image_root: str) -> None:
        self.path, self.image_root = Path(path), Path(image_root)
        self.skipped = Skipped()

    def load(self) -> list[dict]:
        self.skipped = Skipped()
        records = []
        for n, row in read_jsonl(self.path):
            record = self.record(row, f"{self.path}:{n}")
            if record is not None:
                records.append(record)
        return records

    def record(self, row: dict, where: str) -> dict | None:
        raise NotImplementedError
