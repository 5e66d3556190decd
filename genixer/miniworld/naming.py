"""Image ids and file names of the mini world (COCO-like: the name carries the id)."""

from __future__ import annotations

HELDOUT_ID_OFFSET = 1_000_000
# Image ids per split: train from 1, held-out from 1,000,001, validation from 2,000,001, pool from 3,000,001.
ID_OFFSETS = {"train": 0, "heldout": HELDOUT_ID_OFFSET, "val": 2 * HELDOUT_ID_OFFSET, "pool": 3 * HELDOUT_ID_OFFSET}


def file_name(split: str, index: int) -> str:
    """Image path relative to `root/images`, named by image id like COCO's files."""
    return f"{split}/mw_{split}_{image_id(split, index):012d}.png"


def image_id(split: str, index: int) -> int:
    return index + 1 + ID_OFFSETS[split]
