"""Generated rows -> records: each shard row is parsed by its task, which writes the typed fields."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from genixer.runs.shards import read_shards
from genixer.tasks.base import Task


def finish_row(row: dict, task: Task, provenance: dict) -> dict:
    """One generated row as a record: ``status`` ok (the task's fields), rejected or error (a ``reason``)."""
    row = {**row, "provenance": {**provenance, "task": row["task"], "template_id": row["template_id"], "seed": row.get("seed")}}
    if row.get("status") == "error":
        return row
    parsed = task.parse(row["text"])
    if not parsed.ok:
        return {**row, "status": "rejected", "reason": parsed.reason}
    return {**row, "status": "ok", **(parsed.task or task).fields(parsed.record)}


def merge(shards: str | Path, task: Task, provenance: dict) -> tuple[list[dict], dict]:
    """Every shard row, parsed once and sorted by sample id, with counts per status and reason.

    ``provenance`` (generator, generation settings, ...) is stamped on every row.
    """
    rows = [finish_row(r, task, provenance) for _, r in sorted(read_shards(shards).items())]
    status = Counter(r["status"] for r in rows)
    reasons = Counter(f"{r['status']}: {r['reason']}" for r in rows if r["status"] != "ok")
    return rows, {"samples": len(rows), "status": dict(status), "reasons": dict(reasons)}
