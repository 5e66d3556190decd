"""CLI: python -m genixer.miniworld --root DIR [--seed 0 --num-train 2000 --num-heldout 200 --num-val 0 --workers 0]."""

import argparse
from pathlib import Path

from .build import build_world
from .family_files import FamilyOptions

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--root", type=Path, required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--num-train", type=int, default=2000)
p.add_argument("--num-heldout", type=int, default=200)
p.add_argument("--num-val", type=int, default=0)
p.add_argument("--workers", type=int, default=0)
p.add_argument("--boxcot-per-image", type=int, default=1, help="Q->C^Box A samples per train image (distinct types)")
p.add_argument("--rd-per-image", type=int, default=1, help="referential dialogues per train image (distinct types)")
p.add_argument("--rd-reasoning-first", action="store_true", help="RD relation answers: the relation, then yes / no")
a = p.parse_args()
family = FamilyOptions(a.boxcot_per_image, a.rd_per_image, a.rd_reasoning_first)
for k, v in build_world(a.root, a.seed, a.num_train, a.num_heldout, a.workers, a.num_val, family=family).items():
    print(f"{k}: {v}")
