"""Make sure the embedded mini world exists (build it when missing or built differently)."""
from __future__ import annotations

import json
from pathlib import Path

from genixer.data.mini_world import build_world


def ensure_world(root: str, seed: int, num_train: int, num_heldout: int, workers: int = 0, fresh: bool = False) -> Path:
    """Build unless ``root/world.json`` already records the same seed and counts."""
    root = Path(root)
    stamp = root / "world.json"
    if stamp.exists() and not fresh:
        info = json.loads(stamp.read_text())
        if (info.get("seed"), info.get("num_train"), info.get("num_heldout")) == (seed, num_train, num_heldout):
            return root
    build_world(root, seed=seed, num_train=num_train, num_heldout=num_heldout, workers=workers)
    return root
