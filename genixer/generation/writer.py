"""Shard writing during prediction and the merge into a keyed, parsed dataset."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter

from genixer.data.exports import write_llava, write_shikra_rec
from genixer.tasks.base import Task
from genixer.tasks.boxes import denormalize_box

SHARD_DIR = "shards"


class ShardWriter(BasePredictionWriter):
    """Appends each finished batch to ``<dir>/shards/rank{R}.jsonl`` (one row per id), flushed.

    With several output dirs, ``output_dirs[k]`` receives predict dataloader ``k``'s rows; with one,
    every dataloader's rows go there.
    """

    def __init__(self, *output_dirs: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.dirs = [Path(d) / SHARD_DIR for d in output_dirs]

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        folder = self.dirs[dataloader_idx if len(self.dirs) > 1 else 0]
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"rank{trainer.global_rank}.jsonl").open("a") as f:
            for row in prediction:
                f.write(json.dumps(row) + "\n")
            f.flush()


def shard_files(output_dir: str | Path) -> list[Path]:
    """The run's shard files in rank order (``rank10`` after ``rank9``)."""
    files = Path(output_dir, SHARD_DIR).glob("rank*.jsonl")
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


def read_shards(output_dir: str | Path) -> dict[str, dict]:
    """All rows by sample id from complete lines; the first row of an id wins, a partial line is dropped."""
    rows: dict[str, dict] = {}
    for shard in shard_files(output_dir):
        for row in complete_rows(shard.read_bytes()):
            rows.setdefault(row["id"], row)
    return rows


def repair_shards(output_dir: str | Path) -> int:
    """Truncate each shard after its last newline (a write torn by a crash); return the bytes removed.

    Idempotent, and safe to run from every rank at once before anyone appends.
    """
    removed = 0
    for shard in shard_files(output_dir):
        data = shard.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with shard.open("r+b") as f:
                f.truncate(end)
            removed += len(data) - end
    return removed


def written_ids(output_dir: str | Path) -> set[str]:
    """Sample ids already written to the run's shards (complete lines only): what a resume skips."""
    return set(read_shards(output_dir))


def finish_row(row: dict, task: Task, provenance: dict) -> dict:
    """Parse one generated text into a canonical record (LLaVA conversation + typed extras)."""
    row = {**row, "provenance": {**provenance, "task": row["task"], "template_id": row["template_id"], "seed": row.get("seed")}}
    if row.get("status") == "error":
        return row
    parsed = task.parse(row["text"])
    if not parsed.ok:
        return {**row, "status": "rejected", "reason": parsed.reason}
    record = dict(parsed.record)
    conversations = []
    for i, (human, gpt) in enumerate(task.conversation(record)):
        # LLaVA training format: the image placeholder opens the first human turn.
        conversations += [{"from": "human", "value": f"<image>\n{human}" if i == 0 else human}, {"from": "gpt", "value": gpt}]
    return {**row, "status": "ok", "parsed": record, "conversations": conversations}


def merge(output_dir: str | Path, task: Task, provenance: dict) -> tuple[list[dict], dict]:
    """Parse every shard row once, sorted by sample id; return the rows and their counts.

    ``provenance`` (generator, generation settings, ...) is stamped on every row.
    """
    rows = [finish_row(r, task, provenance) for _, r in sorted(read_shards(output_dir).items())]
    status = Counter(r["status"] for r in rows)
    reasons = Counter(f"{r['status']}: {r['reason']}" for r in rows if r["status"] != "ok")
    return rows, {"samples": len(rows), "status": dict(status), "reasons": dict(reasons)}


def write_exports(output_dir: str | Path, rows: list[dict]) -> dict[str, str]:
    """``samples.jsonl`` (every row), ``llava.json`` (accepted), ``rec_shikra.jsonl`` (accepted REC)."""
    out = Path(output_dir)
    with (out / "samples.jsonl").open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    ok = [r for r in rows if r["status"] == "ok"]
    write_llava(ok, out / "llava.json")
    paths = {"samples": str(out / "samples.jsonl"), "llava": str(out / "llava.json")}
    if write_rec(ok, out / "rec_shikra.jsonl"):
        paths["rec_shikra"] = str(out / "rec_shikra.jsonl")
    return paths


def write_rec(rows: list[dict], path: Path, extra=lambda row: {}) -> int:
    """Shikra REC jsonl of every (expression, box) pair among accepted rows: REC, REG, or REC-shaped
    task-agnostic output, with pixel boxes; ``extra(row)`` adds fields (e.g. a score). Nothing is
    written when there is none; returns the count."""
    rec = [r for r in rows if "box" in r["parsed"] and r["parsed"].get("expression")]
    if not rec:
        return 0
    return write_shikra_rec(({"img_path": r["image"], "bbox": list(denormalize_box(r["parsed"]["box"], r["width"], r["height"])),
                              "expression": r["parsed"]["expression"], "height": r["height"], "width": r["width"], **extra(r)}
                             for r in rec), path)
