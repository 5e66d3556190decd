"""Re-pick a finished ``generation.best_of`` run's candidates under other settings, without generating again.

    python recipes/best_of_repick.py RUN OUT [--k 4] [--overall 0.5] [--shares mini_world_genixer_s --world W]

RUN: a generate run with candidates.jsonl. OUT gets samples.jsonl, manifest.json and config.yaml, a run that
evaluate.py grades as it grades RUN. --k keeps each sample's first k candidates (each candidate's seed is its own, so
they are what best_of=k draws), --overall is generation.best_of_overall, --shares a candidate_shares option built on
the mini world W (the world RUN was generated on). Session 41 chose the demo's pick settings this way on the 1,000
val images (recipes/best_of_val_gpu.sh).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from genixer.generation.best_of import ANNOTATIONS, pick, split_candidate
from genixer.miniworld.coverage import row_kind
from genixer.runs.files import write_jsonl


def shares_for(option: str, world: str) -> dict:
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("generate", overrides=["experiment=mini_world_demo", f"paths.mini_world={os.path.abspath(world)}",
                                             f"candidate_shares={option}"])
    return instantiate(cfg.candidate_shares)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--overall", type=float, default=0.0)
    ap.add_argument("--shares", default=None)
    ap.add_argument("--world", default=None)
    args = ap.parse_args()
    if args.shares and not args.world:
        ap.error("--shares needs --world, the mini world the run was generated on")
    candidates = [{k: v for k, v in json.loads(line).items() if k not in ANNOTATIONS}
                  for line in (args.run / "candidates.jsonl").open()]
    if args.k:
        candidates = [r for r in candidates if split_candidate(r["id"])[1] < args.k]
    shares = shares_for(args.shares, args.world) if args.shares else None
    rows, _ = pick(candidates, row_kind, args.overall, shares)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "samples.jsonl", rows)
    manifest = json.loads((args.run / "manifest.json").read_text())
    manifest.update(rows=len(rows), repicked={"from": str(args.run), "k": args.k, "overall": args.overall,
                                              "shares": args.shares})
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.copy(args.run / "config.yaml", args.out / "config.yaml")
    print(f"{args.out}: {len(rows)} samples from {len(candidates)} candidates")


if __name__ == "__main__":
    main()
