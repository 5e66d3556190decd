"""Evaluation pipeline: check finished generation and filter runs with the configured oracle; with
``benchmark=<name>``, evaluate a model on a benchmark instead (genixer.pipelines.benchmark).

Run dirs are found and named through their manifests: a generation run is ``<generator>:<task>``,
a filter run ``<generator>:<task>:<filter>``; a folder above run dirs (a sweep) stands for them.
"""
from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from genixer.filtering.selection import Rule
from genixer.evaluation.tables import coverage_table, filter_table, generation_table
from genixer.pipelines import benchmark
from genixer.pipelines.checks import check_config
from genixer.pipelines.common import keep_nothing_on_error, prepare
from genixer.runs.files import atomic_write, write_json
from genixer.runs.layout import MANIFEST, RunDir, write_config, write_manifest


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    with keep_nothing_on_error(cfg):
        check_config(cfg)
        if cfg.get("benchmark"):
            return benchmark.run(cfg, out)   # a model benchmark, not generated data
        if not cfg.get("runs") and not cfg.get("filters"):
            raise ValueError("evaluate.py needs runs=[<generation run dir>, ...] and/or filters=[<filter run dir>, ...], "
                             "or benchmark=<name> with model=<dir> or answers=<file>")
        generation, filters = find_runs(cfg.get("runs") or [], "generate"), find_runs(cfg.get("filters") or [], "filter")
        prepare(cfg)
        oracle = instantiate(cfg.oracle)
        coverage = instantiate(cfg.coverage) if cfg.get("coverage") else None   # kinds vs training data
        write_config(out, cfg)
    results, tables = {}, []
    names = unique_names(generation + filters)
    generated = {names[r]: r.rows("generate") for r in generation}
    if generated:
        results["generation"] = {name: oracle.evaluate_run(rows) for name, rows in generated.items()}
        split = getattr(oracle, "split", None)  # which images the oracle grades (never the ones settings were chosen on)
        tables.append(generation_table(results["generation"]) + (f"\n(graded on the {split} split)" if split else ""))
    if generated and coverage is not None:
        check = getattr(oracle, "check", None)   # per-kind accuracy where the oracle grades single rows
        results["coverage"] = {name: coverage.evaluate_run(rows, name.rpartition(":")[0], check)
                               for name, rows in generated.items()}
        tables.append(coverage_table(results["coverage"]))
    if filters:
        results["filters"] = {names[r]: oracle.evaluate_selection(r.rows("filter")) for r in filters}
        tables.append(filter_table(results["filters"], threshold_notes(filters)))
    if filters and cfg.get("choose_threshold"):
        results["threshold"] = chosen = choose_threshold(oracle, {names[r]: r.rows("filter") for r in filters},
                                                         cfg.choose_threshold)
        tables.append(threshold_line(cfg.choose_threshold, chosen, getattr(oracle, "split", None)))
    print(*examples(generated), *tables, sep="\n", flush=True)
    write_json(out / "metrics.json", results)
    atomic_write(out / "table.txt", "\n".join(tables) + "\n")
    write_manifest(out, cfg, "evaluate", rows=0, status="ok",
                   inputs={"runs": [str(r.path) for r in generation], "filters": [str(r.path) for r in filters]},
                   results=results)
    return results


def choose_threshold(oracle, runs: dict[str, list[dict]], spec) -> dict | None:
    """The lowest ``spec.scorer.field`` threshold reaching ``spec.min_precision`` in every filter run (its lower
    bound at ``spec.confidence``, when given), over the rows of ``spec.families`` when given."""
    if not hasattr(oracle, "choose_threshold"):
        raise ValueError(f"choose_threshold needs an oracle that checks single rows; {type(oracle).__name__} does not")
    families = spec.get("families")
    return oracle.choose_threshold(runs, spec.scorer, spec.field, spec.min_precision, spec.get("confidence"),
                                   list(families) if families else None)


def threshold_line(spec, chosen: dict | None, split: str | None) -> str:
    where = f"on the {split} split" if split else "on these runs"
    confidence = spec.get("confidence")
    target = f"{spec.min_precision:.0%}" + (f" ({confidence:.0%} lower bound)" if confidence else "")
    if spec.get("families"):
        target += f" on {' / '.join(spec.families)} rows"
    if chosen is None:
        return f"no {spec.scorer}.{spec.field} threshold keeps rows at >= {target} precision {where}"
    bounds = chosen.get("group_lower_bound", {})
    runs = ", ".join(f"{name} {p:.1%}" + (f" (bound {bounds[name]:.1%})" if name in bounds else "")
                     for name, p in chosen["group_precision"].items())
    return (f"chosen {where}: {spec.scorer}.{spec.field} >= {chosen['threshold']:.4f} keeps {chosen['kept']} of "
            f"{chosen['rows']} rows at {chosen['precision']:.1%} precision, recall {chosen['recall']:.1%} "
            f"(target {target} in every run: {runs})")


def find_runs(paths: list[str], stage: str) -> list[RunDir]:
    """The finished runs of ``stage`` at or below each path (a sweep dir stands for the runs inside it)."""
    found = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such run dir")
        runs = [RunDir(m.parent) for m in sorted(path.rglob(MANIFEST)) if json.loads(m.read_text()).get("stage") == stage]
        if not runs:
            raise FileNotFoundError(f"{path}: no finished {stage} run at or below it")
        found += runs
    return found


def threshold_notes(filters: list[RunDir]) -> list[str]:
    """'threshold <rule>: <scorer.field> >= v (where it was chosen)', once per distinct rule of the filter runs."""
    notes: dict[str, None] = {}
    for r in filters:
        for name, rule in r.read_manifest()["inputs"].get("rules", {}).items():
            rule = Rule(**{k: v for k, v in rule.items() if k != "_target_"})
            notes[f"threshold {name}: {rule.describe()}"] = None
    return list(notes)


def unique_names(runs: list[RunDir]) -> dict[RunDir, str]:
    """Each run's name (read from its manifest once); results are keyed by it, so two runs of one
    name, which would overwrite each other, are an error."""
    names = {r: run_name(r) for r in runs}
    by_name: dict[str, list[str]] = {}
    for r in runs:  # a run listed twice clashes with itself too
        by_name.setdefault(names[r], []).append(str(r.path))
    clashes = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    if clashes:
        lines = "\n".join(f"  {name}: {', '.join(paths)}" for name, paths in clashes.items())
        raise ValueError(f"runs share a name (<generator dir name>:<task>); evaluate them separately:\n{lines}")
    return names


def run_name(run: RunDir) -> str:
    """``<generator>:<task>`` of a generation run, ``<generator>:<task>:<filter>`` of a filter run."""
    inputs = run.read_manifest()["inputs"]
    if "filter" in inputs:
        return f"{run_name(RunDir(inputs['run']))}:{inputs['filter']}"
    return f"{Path(inputs['generator']).name}:{inputs['task']}"


def examples(generated: dict[str, list[dict]]) -> list[str]:
    """One accepted sample per generation run, as generated, so a reader sees what the numbers count."""
    lines = []
    for name, rows in generated.items():
        ok = next((r for r in rows if r["status"] == "ok"), None)
        if ok:
            lines.append(f"[{name}] {ok['image']}: {ok['text']!r}")
    return lines
