"""Shards: each process appends finished rows to its own file; resume reads back what is complete.

A shard folder holds ``rank{R}.jsonl``, one JSON object per line keyed by ``id``. A crash can leave
a torn last line: ``repair`` cuts it before anyone appends again. Rows are merged by id, so the
result does not depend on how many processes wrote them; an error row is replaced by a later
non-error row of the same id (``retry_errors``).
"""
from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter

SHARD_DIR = "shards"


class ShardWriter(BasePredictionWriter):
    """Appends each finished predict batch to ``<folder>/rank{R}.jsonl`` (one row per id), flushed.

    With several folders, ``folders[k]`` receives predict dataloader ``k``'s rows; with one, every
    dataloader's rows go there.
    """

    def __init__(self, *folders: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.folders = [Path(d) for d in folders]

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        folder = self.folders[dataloader_idx if len(self.folders) > 1 else 0]
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"rank{trainer.global_rank}.jsonl").open("a", encoding="utf-8") as f:
            for row in prediction:
                f.write(json.dumps(row) + "\n")
            f.flush()


def shard_files(folder: str | Path) -> list[Path]:
    """The folder's shard files in rank order (``rank10`` after ``rank9``)."""
    files = Path(folder).glob("rank*.jsonl")
    return sorted(files, key=lambda p: (int(p.stem[4:]) if p.stem[4:].isdigit() else -1, p.name))


def complete_rows(data: bytes) -> list[dict]:
    """The rows of a shard's complete lines: newline-terminated, valid JSON objects with an id."""
    rows = []
    for line in data.split(b"\n")[:-1]:  # the text after the last newline is partial (or empty)
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # a line cut by a crash and appended to afterwards (older runs)
        if isinstance(row, dict) and "id" in row:
            rows.append(row)
    return rows


def is_error(row: dict) -> bool:
    return row.get("status") == "error"


def read_shards(folder: str | Path) -> dict[str, dict]:
    """All rows by id from complete lines: the first row of an id wins, unless it is an error row and a
    later one is not (a retried sample)."""
    rows: dict[str, dict] = {}
    for shard in shard_files(folder):
        for row in complete_rows(shard.read_bytes()):
            old = rows.get(row["id"])
            if old is None or (is_error(old) and not is_error(row)):
                rows[row["id"]] = row
    return rows


def repair_shards(folder: str | Path) -> int:
    """Truncate each shard after its last newline (a write torn by a crash); return the bytes removed.

    Idempotent, and safe to run from every rank at once before anyone appends.
    """
    removed = 0
    for shard in shard_files(folder):
        data = shard.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with shard.open("r+b") as f:
                f.truncate(end)
            removed += len(data) - end
    return removed


def written_ids(folder: str | Path, retry_errors: bool = False) -> set[str]:
    """Ids already written (complete lines only): what a resume skips; error rows too unless retried."""
    return {i for i, row in read_shards(folder).items() if not (retry_errors and is_error(row))}


def has_rows(folder: str | Path) -> bool:
    """Whether any shard of the folder holds a complete row."""
    return any(b"\n" in shard.read_bytes() for shard in shard_files(folder))
