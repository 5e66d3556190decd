"""Synthetic data in the formats downstream trainers read, and back.

LLaVA: a JSON list (or JSONL) of ``{"id", "image", "conversations"}`` as LLaVA's
``LazySupervisedDataset`` loads it. Shikra REC: jsonl rows ``{img_path, bbox, expression,
height, width}`` with integer pixel boxes, like the released ``syn_*_filtered60.jsonl``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from genixer.data.sources.files import AnnotationError, field, read_json, read_jsonl

LLAVA_KEYS = ("id", "image", "conversations")
SHIKRA_REC_KEYS = ("img_path", "bbox", "expression", "height", "width")


def write_llava(records: Iterable[dict], path: str | Path) -> int:
    """``.jsonl`` -> one record per line; anything else -> one JSON list. Returns the count."""
    rows = [{k: r[k] for k in LLAVA_KEYS} for r in records]
    path = Path(path)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows, indent=1))
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
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def read_shikra_rec(path: str | Path) -> list[dict]:
    rows = []
    for n, row in read_jsonl(path):
        for key in SHIKRA_REC_KEYS:
            field(row, key, f"{path}:{n}")
        rows.append(row)
    return rows
