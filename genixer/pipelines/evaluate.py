"""Evaluation pipeline: score generation runs with the configured benchmark."""
from __future__ import annotations

import json

from hydra.utils import instantiate
from omegaconf import DictConfig

from genixer.evaluation.mini_world import examples, format_table
from genixer.pipelines import rundir


def run(cfg: DictConfig) -> dict:
    if not cfg.get("runs"):
        raise ValueError("evaluate.py needs runs=[<generation run dir>, ...]")
    out = rundir.start(cfg)
    benchmark = instantiate(cfg.benchmark)
    results = benchmark.evaluate(list(cfg.runs))
    table = format_table(results)
    print(examples(list(cfg.runs)), table, sep="\n", flush=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    (out / "table.txt").write_text(table + "\n")
    rundir.write_manifest(out, cfg, "evaluate", runs=list(cfg.runs), results=results)
    return results
