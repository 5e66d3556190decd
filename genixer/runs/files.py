"""Files another stage reads are written atomically: a reader sees the old file or the whole new one."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


def atomic_write(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temp file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, obj: object) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """One JSON object per line, atomically; returns the row count."""
    lines = [json.dumps(row) + "\n" for row in rows]
    atomic_write(path, "".join(lines))
    return len(lines)


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
