"""Make sure the embedded mini world exists (build it when missing or built differently)."""
from __future__ import annotations

import json
from pathlib import Path

from genixer.miniworld import VERSION, build_world


def ensure_world(root: str, seed: int, num_train: int, num_heldout: int, workers: int = 0, fresh: bool = False,
                 num_val: int = 0, num_pool: int = 0, boxcot_per_image: int = 1, rd_per_image: int = 1) -> Path:
    """Build unless ``root/world.json`` already records the same version, seed and image counts (a world
    without pool counts has no pool: 0; one without ``boxcot_per_image`` or ``rd_per_image`` has 1)."""
    root = Path(root)
    stamp = root / "world.json"
    if stamp.exists() and not fresh:
        info = json.loads(stamp.read_text())
        counts = info.get("counts", {})
        built = (info.get("version"), info.get("seed"), counts.get("train_images"), counts.get("heldout_images"),
                 counts.get("val_images"), counts.get("pool_images", 0), info.get("boxcot_per_image", 1),
                 info.get("rd_per_image", 1))
        if built == (VERSION, seed, num_train, num_heldout, num_val, num_pool, boxcot_per_image, rd_per_image):
            return root
    build_world(root, seed=seed, num_train=num_train, num_heldout=num_heldout, workers=workers, num_val=num_val,
                num_pool=num_pool, boxcot_per_image=boxcot_per_image, rd_per_image=rd_per_image)
    return root
