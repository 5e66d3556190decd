"""Filtering pipeline: a finished generation run -> scored rows -> selection -> kept exports + manifest.

Scores are annotations of the generated data: they live beside it (``<run>/scores/<scorer>/shards``,
one line per item, keyed by item id) and are reused by every later selection, so thresholds change
without re-scoring. Scoring resumes like generation (torn line dropped, written ids skipped;
``retry_errors=true`` scores error items again) and shards over processes; each scorer's settings
are stored with its scores and a mismatch is an error. Inputs come from the generation run's
manifest, never from its Hydra config.
"""
from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from genixer.data.decontamination import Decontamination
from genixer.data.exports import export
from genixer.filtering.module import FilterModule
from genixer.filtering.scorer import ContiguousShards, ItemCollator, ItemDataset, Scorer
from genixer.filtering.selection import select
from genixer.pipelines.checks import check_config
from genixer.pipelines.common import RunFailed, failure, keep_nothing_on_error, log_outcome, prepare
from genixer.runs.files import write_jsonl
from genixer.runs.layout import RunDir, claim, write_config, write_manifest
from genixer.runs.progress import SampleProgress
from genixer.runs.shards import SHARD_DIR, ShardWriter, read_shards, repair_shards, written_ids

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    out = Path(cfg.paths.output_dir)
    with keep_nothing_on_error(cfg):
        check_config(cfg)
        if not cfg.get("run"):
            raise ValueError("filter.py needs run=<generation run dir>")
        source = RunDir(cfg.run)
        rows = source.rows("generate")  # a finished generation run, all the rows its manifest promises
        image_root = Path(cfg.image_root or source.read_manifest()["inputs"]["image_root"])
        specs = cfg.filter.scorers
        scorers: dict[str, Scorer] = {name: instantiate(spec.scorer, name=name) for name, spec in specs.items()}
        rules = {name: instantiate(rule) for name, rule in cfg.filter.rules.items()}
        unknown = {r.scorer for r in rules.values()} - set(scorers)
        if unknown:
            raise ValueError(f"selection rules name scorers {sorted(unknown)} that this filter does not run ({sorted(scorers)})")
        decontamination = Decontamination.from_config(cfg.decontamination, cfg.paths) if cfg.get("decontamination") else None
        if decontamination and decontamination.drop:  # first: a contaminated row is dropped for that, whatever it scores
            rules = {"decontamination": decontamination.rule(), **rules}
        for scorer in scorers.values():
            scorer.check()
        prepare(cfg)
        scores_dir = Path(cfg.scores_dir)
        for name, scorer in scorers.items():
            claim(scores_dir / name, {**scorer.config(), "batch_size": specs[name].batch_size,  # padding moves P(Yes)
                                      "precision": str(cfg.trainer.precision)},
                  results=scores_dir / name / SHARD_DIR)
        write_config(out, cfg)

    loaders, todo_counts = [], {}
    for name, scorer in scorers.items():
        shards = scores_dir / name / SHARD_DIR
        repair_shards(shards)
        done = written_ids(shards, retry_errors=cfg.retry_errors)
        todo = [item for row in rows for item in scorer.items(row) if item["id"] not in done]
        todo_counts[name] = len(todo)
        if todo:
            loaders.append((name, DataLoader(ItemDataset(scorer, todo, image_root), batch_size=specs[name].batch_size,
                                             sampler=ContiguousShards(len(todo)), num_workers=cfg.num_workers,
                                             collate_fn=ItemCollator(scorer))))
    writer = ShardWriter(*(scores_dir / name / SHARD_DIR for name, _ in loaders))
    trainer = instantiate(cfg.trainer, callbacks=[writer, SampleProgress("filter")], logger=False,
                          enable_progress_bar=False, default_root_dir=str(out))
    started = time.time()
    flops = 0.0
    if loaders:
        module = FilterModule([scorers[name] for name, _ in loaders])
        trainer.predict(module, [loader for _, loader in loaders], return_predictions=False)
        trainer.strategy.barrier("filter:select")  # every rank's shards are complete before rank 0 selects
        flops = module.total_flops
    seconds = time.time() - started
    if not trainer.is_global_zero:
        return {}

    scored = {name: annotations(scorer, scores_dir / name / SHARD_DIR) for name, scorer in scorers.items()}
    if decontamination:  # an annotation like a score: row["scores"]["decontamination"] = {exact, near, match, distance}
        scored["decontamination"], flagged = decontamination.annotate(rows, image_root, scores_dir / "decontamination")
    selected, counts = select_rows(rows, scored, rules)
    if decontamination:
        flagged["dropped"] = sum(any(d["rule"] == "decontamination" for d in r["drops"]) for r in selected)
    write_jsonl(out / "selected.jsonl", selected)
    outputs = {"selected": str(out / "selected.jsonl"),
               **export([r for r in selected if r["kept"]], out, cfg.filter.get("rec_columns"))}
    items = sum(todo_counts.values())
    speed = {"seconds": round(seconds, 2), "items_scored": items, "items_per_s": round(items / seconds, 2) if seconds > 0 else 0.0}
    if loaders and items and flops and trainer.strategy.root_device.type == "cuda":  # the hardware's limit for these forwards
        from genixer.runs.roofline import device_limits, forward_limit, fraction
        limit = forward_limit(flops / items, device_limits(trainer.strategy.root_device.index or 0), trainer.world_size)
        speed.update(limit=limit, fraction_of_limit=fraction(speed["items_per_s"], limit["limit_items_per_s"]))
    failed = failure("candidate rows", Counter(counts["scorer_errors"]), counts["candidates"], cfg.error_ceiling)
    write_manifest(out, cfg, "filter", rows=len(selected), status="failed" if failed else "ok", failure=failed,
                   inputs={"run": str(source.path.resolve()), "filter": cfg.filter.name, "image_root": str(image_root),
                           "scores": str(scores_dir), "scorers": {n: s.config() for n, s in scorers.items()},
                           "rules": {n: OmegaConf.to_container(r) for n, r in cfg.filter.rules.items()}},
                   counts=counts, throughput=speed, outputs=outputs,
                   **({"decontamination": flagged} if decontamination else {}))
    log_outcome(cfg, {"counts": counts, "throughput": speed})
    if cfg.get("report"):
        from genixer.report import write_report  # the HTML data report (docs/report.md)
        log.info("report: %s", write_report(out))
    if failed:
        raise RunFailed(f"{out}: {failed}")
    log.info("filter %s: %s -> %s", cfg.filter.name, counts, out)
    return {**counts, **speed}


def item_index(line: dict) -> int:
    """k of an item id ``<row id>#<k>``."""
    return int(line["id"].rsplit("#", 1)[1])


def annotations(scorer: Scorer, shards: Path) -> dict[str, dict]:
    """Each row's annotation, folded from its item lines in item order."""
    by_row = defaultdict(list)
    for line in read_shards(shards).values():
        by_row[line["row_id"]].append(line)
    return {row_id: scorer.summarize(sorted(lines, key=item_index)) for row_id, lines in by_row.items()}


def select_rows(rows: list[dict], scored: dict[str, dict], rules: dict) -> tuple[list[dict], dict]:
    """Attach scores and the decision to every generated row; count kept / dropped per reason."""
    selected, dropped, upstream, errors = [], Counter(), Counter(), Counter()
    for row in rows:
        if row.get("status") != "ok":
            upstream[row.get("status", "unknown")] += 1
            continue
        scores = {name: by_row[row["id"]] for name, by_row in scored.items() if by_row.get(row["id"])}
        drops = select(scores, rules)
        dropped.update(d["reason"] for d in drops[:1])  # the first failing rule is the row's reason
        errors.update(f"{n}: {s['reason']}" for n, s in scores.items() if s.get("status") == "error")
        selected.append({**row, "scores": scores, "kept": not drops, "drops": drops})
    kept = sum(r["kept"] for r in selected)
    counts = {"rows": len(rows), "candidates": len(selected), "kept": kept, "dropped": len(selected) - kept,
              "dropped_by_reason": dict(dropped), "scorer_errors": dict(errors), "not_ok_upstream": dict(upstream),
              "scored": {name: len(by_row) for name, by_row in scored.items()}}
    return selected, counts
