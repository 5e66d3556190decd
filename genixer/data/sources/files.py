"""Reading annotation files with errors that name the file and the field."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


class AnnotationError(ValueError):
    """A missing or malformed annotation file, naming the file and what is wrong."""


def read_json(path: str | Path) -> object:
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: not valid JSON ({err})") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: file not found")
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as err:
                    raise AnnotationError(f"{path}:{n}: not valid JSON ({err})") from None


def field(obj: dict, name: str, where: str):
    """``obj[name]`` or an AnnotationError naming ``where`` and the field."""
    try:
        return obj[name]
    except (KeyError, TypeError):
        raise AnnotationError(f"{where}: missing field '{name}'") from None
