"""Large released jsonl files read leniently: a malformed row is counted by reason and left out, never fatal.

A release of hundreds of thousands of rows may hold a few broken ones (a torn line, a missing field, a
degenerate box); one of them must not stop a training run, and none may vanish unreported. Each load
counts the rows it left out per reason in ``skipped`` and logs them; it fails only when no row at all
could be read, or when the first images are not under ``image_root``.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

from genixer.data.sources.boxes import Skipped
from genixer.data.sources.files import AnnotationError, check_image_root, progress

log = logging.getLogger(__name__)


class Malformed(ValueError):
    """A row that cannot be read; the message is the countable reason (no row-specific detail)."""


def text(row: dict, name: str, empty: bool = False) -> str:
    """A string field (stripped); ``Malformed`` when missing, not a string, or empty (unless ``empty``)."""
    if name not in row:
        raise Malformed(f"missing field '{name}'")
    value = row[name]
    if not isinstance(value, str) or not (empty or value.strip()):
        raise Malformed(f"field '{name}' not a {'' if empty else 'non-empty '}string")
    return value.strip()


def is_finite(value: object) -> bool:
    """A real JSON number (not a bool, not NaN or infinite; a string like "0.7" is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(row: dict, name: str) -> float:
    """A finite number field; ``Malformed`` otherwise."""
    if name not in row:
        raise Malformed(f"missing field '{name}'")
    if not is_finite(row[name]):
        raise Malformed(f"field '{name}' not a finite number")
    return float(row[name])


def identifier(row: dict, name: str) -> str:
    """An id field (string or integer) as a string."""
    if name not in row:
        raise Malformed(f"missing field '{name}'")
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise Malformed(f"field '{name}' not a string or integer id")
    return str(value).strip()


class LenientJsonl:
    """``load()`` reads ``path`` line by line; a subclass's ``record(row)`` turns one row into a record,
    returns None to leave it out (after counting why in ``self.skipped``), or raises ``Malformed``.

    ``image_key``: the record field holding the image path (relative to ``image_root``) whose first few
    values must exist (None: no check).
    """

    image_key: str | None = "image"

    def __init__(self, path: str, image_root: str) -> None:
        self.path, self.image_root = Path(path), Path(image_root)
        self.skipped = Skipped()

    def rows(self) -> Iterator[dict]:
        """Each line's JSON object; blank lines are ignored, anything else unreadable is counted."""
        if not self.path.is_file():
            raise AnnotationError(f"{self.path}: file not found")
        with self.path.open("rb") as f:
            for raw in progress(f, self.path):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    self.skipped["bad JSON line"] += 1
                    continue
                if isinstance(row, dict):
                    yield row
                else:
                    self.skipped["not a JSON object"] += 1

    def load(self) -> list[dict]:
        self.skipped = Skipped()
        records = []
        for row in self.rows():
            try:
                record = self.record(row)
            except Malformed as err:
                self.skipped[str(err)] += 1
                continue
            if record is not None:
                records.append(record)
        self.report(records)
        if self.image_key:
            images = (self.relative(r[self.image_key]) for r in records if r.get(self.image_key))
            check_image_root(images, self.image_root, self.path)
        return records

    def relative(self, image: str) -> str:
        """A record's image path as the file wrote it (records may hold it joined to ``image_root``)."""
        path = Path(image)
        return str(path.relative_to(self.image_root)) if path.is_relative_to(self.image_root) else image

    def report(self, records: list[dict]) -> None:
        """Log what was left out; fail when nothing could be read."""
        reasons = ", ".join(f"{n} x {reason}" for reason, n in self.skipped.most_common())
        if not records:
            raise AnnotationError(f"{self.path}: no usable row" + (f" ({reasons})" if reasons else " (empty file)"))
        if self.skipped:
            log.warning("%s: %d records, %d rows left out: %s", self.path, len(records), self.skipped.total(), reasons)

    def record(self, row: dict) -> dict | None:
        raise NotImplementedError
