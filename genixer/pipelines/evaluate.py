"""Evaluation pipeline: score generation runs with the configured benchmark."""
from __future__ import annotations

import json

from hydra.utils import instantiate
from omegaconf import DictConfig

from genixer.miniworld.evaluator import examples, format_filter_table, format_table
from genixer.runs import layout as rundir


def run(cfg: DictConfig) -> dict:
    """Generation runs -> per-family quality table; filter runs (``filters=[...]``) -> filter quality table."""
    if not cfg.get("runs") and not cfg.get("filters"):
        raise ValueError("evaluate.py needs runs=[<generation run dir>, ...] and/or filters=[<filter run dir>, ...]")
    out = rundir.start(cfg)
    benchmark = instantiate(cfg.benchmark)
    results, tables = {}, []
    if cfg.get("runs"):
        results["generation"] = benchmark.evaluate(list(cfg.runs))
        tables += [examples(list(cfg.runs)), format_table(results["generation"])]
    if cfg.get("filters"):
        results["filters"] = benchmark.evaluate_filters(list(cfg.filters))
        tables.append(format_filter_table(results["filters"]))
    print(*tables, sep="\n", flush=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    (out / "table.txt").write_text("\n".join(tables[1:] if cfg.get("runs") else tables) + "\n")
    rundir.write_manifest(out, cfg, "evaluate", runs=list(cfg.get("runs") or []), filters=list(cfg.get("filters") or []),
                          results=results)
    return results
