"""Filtering pipeline: a generation run dir -> scored rows -> selection -> kept exports + manifest.

Scores are annotations of the generated data: they live beside it (``<run>/scores/<scorer>/shards``,
one line per item, keyed by item id) and are reused by every later selection, so thresholds change
without re-scoring. Scoring resumes like generation (torn line dropped, written ids skipped) and
shards over processes; each scorer's settings are stored with its scores and a mismatch is an error.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from genixer.data.exports import write_llava
from genixer.filtering.scorer import ItemCollator, ItemDataset, Scorer
from genixer.filtering.selection import select
from genixer.runs.progress import SampleProgress
from genixer.generation.writer import (
    ShardWriter,
    read_shards,
    repair_shards,
    write_rec,
    written_ids,
)
from genixer.filtering.module import FilterModule
from genixer.runs import layout as rundir

log = logging.getLogger(__name__)
SCORER_FILE = "scorer.json"


def generation_rows(run: Path) -> list[dict]:
    """The generation run's merged rows (``samples.jsonl``), in id order."""
    path = run / "samples.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: filter.py run=<a finished generation run dir>")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def image_root(cfg: DictConfig, run: Path) -> Path:
    """``image_root`` from the command line, else the one the generation run used."""
    if cfg.get("image_root"):
        return Path(cfg.image_root)
    generated = OmegaConf.load(run / "config.yaml") if (run / "config.yaml").is_file() else {}
    if not generated.get("image_root"):
        raise ValueError(f"{run}/config.yaml names no image_root: pass image_root=<folder of the query images>")
    return Path(generated["image_root"])


def item_index(line: dict) -> int:
    """k of an item id ``<row id>#<k>``."""
    return int(line["id"].rsplit("#", 1)[1])


def clip_score(row: dict) -> dict:
    """The released Shikra rows' ``clip_score`` (raw dot product), when the CLIP scorer scored the row."""
    return {"clip_score": row["scores"]["clip"]["raw"]} if "raw" in row["scores"].get("clip", {}) else {}


def annotations(scorer: Scorer, folder: Path) -> dict[str, dict]:
    """Each row's annotation, folded from its item lines in item order."""
    by_row = defaultdict(list)
    for line in read_shards(folder).values():
        by_row[line["row_id"]].append(line)
    return {row_id: scorer.summarize(sorted(lines, key=item_index)) for row_id, lines in by_row.items()}


def run(cfg: DictConfig) -> dict:
    out = rundir.start(cfg)
    source = Path(cfg.run) if cfg.get("run") else None
    if source is None:
        raise ValueError("filter.py needs run=<generation run dir>")
    rows = generation_rows(source)
    images = image_root(cfg, source)
    scores_dir = Path(cfg.scores_dir)
    scorers, loaders, todo_counts = {}, [], {}
    for name, spec in cfg.filter.scorers.items():
        scorer = instantiate(spec.scorer)
        scorer.name = name
        folder = scores_dir / name
        rundir.claim(folder / SCORER_FILE, scorer.config())
        repair_shards(folder)
        done = written_ids(folder)
        todo = [item for row in rows for item in scorer.items(row) if item["id"] not in done]
        scorers[name], todo_counts[name] = scorer, len(todo)
        if todo:
            loaders.append((name, DataLoader(ItemDataset(scorer, todo, images), batch_size=spec.batch_size,
                                              num_workers=cfg.num_workers, collate_fn=ItemCollator(scorer))))
    progress = SampleProgress("filter")
    trainer = instantiate(cfg.trainer, callbacks=[ShardWriter(*(scores_dir / n for n, _ in loaders)), progress],
                          logger=False, enable_progress_bar=False, default_root_dir=str(out))
    started = time.time()
    if loaders:
        module = FilterModule([scorers[n] for n, _ in loaders])
        trainer.predict(module, [loader for _, loader in loaders], return_predictions=False)
        trainer.strategy.barrier("filter:select")  # every rank's shards are complete before rank 0 selects
    seconds = time.time() - started
    if not trainer.is_global_zero:
        return {}
    rules = {name: instantiate(rule) for name, rule in cfg.filter.rules.items()}
    unknown = {r.scorer for r in rules.values()} - set(scorers)
    if unknown:
        raise ValueError(f"selection rules name scorers {sorted(unknown)} that this filter does not run ({sorted(scorers)})")
    scored = {name: annotations(scorer, scores_dir / name) for name, scorer in scorers.items()}
    selected, counts = select_rows(rows, scored, rules)
    exports = write_selection(out, selected)
    speed = {"seconds": round(seconds, 2), "items_scored": sum(todo_counts.values()),
             "items_per_s": round(sum(todo_counts.values()) / seconds, 2) if seconds > 0 else 0.0}
    rundir.write_manifest(out, cfg, "filter", run=str(source), scores=str(scores_dir), counts=counts, throughput=speed,
                          scorers={n: s.config() for n, s in scorers.items()},
                          rules={n: OmegaConf.to_container(r) for n, r in cfg.filter.rules.items()}, exports=exports)
    log.info("filter %s: %s -> %s", cfg.filter.name, counts, out)
    return {**counts, **speed}


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


def write_selection(out: Path, selected: list[dict]) -> dict[str, str]:
    """``selected.jsonl`` (every candidate, scores + decision), ``llava.json`` and ``rec_shikra.jsonl`` (kept)."""
    with (out / "selected.jsonl").open("w") as f:
        for row in selected:
            f.write(json.dumps(row) + "\n")
    kept = [r for r in selected if r["kept"]]
    write_llava(kept, out / "llava.json")
    paths = {"selected": str(out / "selected.jsonl"), "llava": str(out / "llava.json")}
    if write_rec(kept, out / "rec_shikra.jsonl", clip_score):
        paths["rec_shikra"] = str(out / "rec_shikra.jsonl")
    return paths
