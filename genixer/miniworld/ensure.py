"""Make sure the embedded mini world exists (build it when missing or built differently)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genixer.miniworld import VERSION, build_world
from genixer.miniworld.family_files import FamilyOptions


def ensure_world(root: str, seed: int, num_train: int, num_heldout: int, workers: int = 0, fresh: bool = False,
                 num_val: int = 0, num_pool: int = 0, **family: Any) -> Path:
    """Build unless ``root/world.json`` already records the same version, seed, image counts and family options
    (``family``: ``FamilyOptions`` fields; a world without pool counts has no pool: 0; one without a family option
    has the released value)."""
    root = Path(root)
    options = FamilyOptions(**family)
    stamp = root / "world.json"
    if stamp.exists() and not fresh:
        info = json.loads(stamp.read_text())
        counts = info.get("counts", {})
        built = (info.get("version"), info.get("seed"), counts.get("train_images"), counts.get("heldout_images"),
                 counts.get("val_images"), counts.get("pool_images", 0), FamilyOptions.recorded(info))
        if built == (VERSION, seed, num_train, num_heldout, num_val, num_pool, options):
            return root
    build_world(root, seed=seed, num_train=num_train, num_heldout=num_heldout, workers=workers, num_val=num_val,
                num_pool=num_pool, family=options)
    return root
