"""Synthetic data in the formats downstream trainers read, and back.

LLaVA: a JSON list (or JSONL) of ``{"id", "image", "conversations"}`` as LLaVA's
``LazySupervisedDataset`` loads it. Shikra REC: jsonl rows ``{img_path, bbox, expression,
height, width}`` with integer pixel boxes, like the released ``syn_*_filtered60.jsonl``.
``export`` writes both from accepted rows, for generation and filter runs alike.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from genixer.data.sources.files import AnnotationError, field, read_json, read_jsonl
from genixer.runs.files import atomic_write
from genixer.tasks.boxes import denormalize_box

LLAVA_KEYS = ("id", "image", "conversations")
SHIKRA_REC_KEYS = ("img_path", "bbox", "expression", "height", "width")
LLAVA_FILE, REC_FILE = "llava.json", "rec_shikra.jsonl"


def export(rows: list[dict], out: str | Path, rec_columns: Mapping[str, str] | None = None) -> dict[str, str]:
    """``llava.json`` of the rows' conversations and, when any row has regions, ``rec_shikra.jsonl`` of
    every region with its box in the original image's pixels. ``rec_columns`` adds columns to the REC
    rows: name -> a dotted path into the row (e.g. ``clip_score: scores.clip.raw``); a list value holds
    one entry per region. Returns the written paths by name."""
    out = Path(out)
    write_llava(rows, out / LLAVA_FILE)
    paths = {"llava": str(out / LLAVA_FILE)}
    rec = [rec_row(row, k, region, rec_columns or {}) for row in rows for k, region in enumerate(row["regions"])
           if region["expression"]]
    if rec:
        write_shikra_rec(rec, out / REC_FILE)
        paths["rec_shikra"] = str(out / REC_FILE)
    return paths


def rec_row(row: dict, k: int, region: dict, columns: Mapping[str, str]) -> dict:
    """Region ``k`` of a row as a Shikra REC row (+ the named columns the row has)."""
    out = {"img_path": row["image"], "bbox": list(denormalize_box(region["box"], row["width"], row["height"])),
           "expression": region["expression"], "height": row["height"], "width": row["width"]}
    for name, path in columns.items():
        value = row
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        value = value[k] if isinstance(value, list) else value
        if value is not None:
            out[name] = value
    return out


def write_llava(records: Iterable[dict], path: str | Path) -> int:
    """``.jsonl`` -> one record per line; anything else -> one JSON list. Returns the count."""
    rows = [{k: r[k] for k in LLAVA_KEYS} for r in records]
    path = Path(path)
    if path.suffix == ".jsonl":
        atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
    else:
        atomic_write(path, json.dumps(rows, indent=1))
    return len(rows)


def read_llava(path: str | Path) -> list[dict]:
    path = Path(path)
    rows = [r for _, r in read_jsonl(path)] if path.suffix == ".jsonl" else read_json(path)
    if not isinstance(rows, list):
        raise AnnotationError(f"{path}: expected a list of LLaVA records")
    for i, row in enumerate(rows):
        for key in LLAVA_KEYS:
            field(row, key, f"{path}: record {i}")
        for turn in row["conversations"]:
            if turn.get("from") not in ("human", "gpt") or not isinstance(turn.get("value"), str):
                raise AnnotationError(f"{path}: record {i}: each turn needs 'from' (human|gpt) and a string 'value'")
    return rows


def write_shikra_rec(rows: Iterable[dict], path: str | Path) -> int:
    rows = [{k: r[k] for k in SHIKRA_REC_KEYS} | {k: r[k] for k in r if k not in SHIKRA_REC_KEYS} for r in rows]
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def read_shikra_rec(path: str | Path) -> list[dict]:
    rows = []
    for n, row in read_jsonl(path):
        for key in SHIKRA_REC_KEYS:
            field(row, key, f"{path}:{n}")
        rows.append(row)
    return rows
