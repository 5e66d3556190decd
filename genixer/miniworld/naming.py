"""Image ids and file names of the mini world (COCO-like: the name carries the id)."""

from __future__ import annotations

HELDOUT_ID_OFFSET = 1_000_000


def file_name(split: str, index: int) -> str:
    """Image path relative to `root/images`, named by image id like COCO's files."""
    return f"{split}/mw_{split}_{image_id(split, index):012d}.png"


def image_id(split: str, index: int) -> int:
    return index + 1 + (HELDOUT_ID_OFFSET if split == "heldout" else 0)
