"""Generation pipeline: a generator checkpoint + query images -> parsed, exported samples.

Resumable: the sample ids already in the run dir's shards are skipped before predicting (a torn last
line is truncated away first), so re-running the same command finishes an interrupted run. The
result does not depend on the number of processes: every rank appends to its own shard and rank 0
merges all shards, keyed by sample id, once every rank has finished writing.
"""
from __future__ import annotations

import logging
import time
from collections import Counter

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Subset

from genixer.runs.progress import SampleProgress
from genixer.generation.queries import PromptCollator, PromptDataset, load_queries
from genixer.generation.writer import (
    SHARD_DIR,
    ShardWriter,
    merge,
    repair_shards,
    write_exports,
    written_ids,
)
from genixer.runs import layout as rundir

log = logging.getLogger(__name__)


def remaining(dataset: PromptDataset, done: set[str]) -> list[int]:
    """Dataset indices whose sample id is not yet written."""
    return [i for i in range(len(dataset)) if dataset.sample_id(i) not in done]


def run(cfg: DictConfig) -> dict:
    out = rundir.start(cfg)
    task = instantiate(cfg.task)
    module = instantiate(cfg.module, generation=OmegaConf.to_container(cfg.generation))
    module.codec = module.backbone.codec()
    queries = load_queries(cfg.queries)
    dataset = PromptDataset(queries, cfg.image_root, task, module.codec, cfg.samples_per_image, cfg.seed, cfg.max_pixels)
    # Shards only ever hold one configuration's samples (the cache is a speed option with the same tokens).
    rundir.claim(out / SHARD_DIR / "settings.json", {
        "generator": str(cfg.module.backbone.path), "task": OmegaConf.to_container(cfg.task, resolve=True),
        "queries": str(cfg.queries), "seed": cfg.seed, "samples_per_image": cfg.samples_per_image,
        "generation": {k: v for k, v in OmegaConf.to_container(cfg.generation).items() if k != "cache"}})
    # Resume: every rank reads the same complete lines before any rank appends (children of the
    # subprocess launcher start inside predict, and nobody writes before the process group forms).
    torn = repair_shards(out)
    done = written_ids(out)
    todo = dataset.by_prompt_length(remaining(dataset, done))
    resumed = len(dataset) - len(todo)
    if resumed or torn:
        log.info("resuming %s: %d of %d samples already written (%d torn bytes dropped)", out, resumed, len(dataset), torn)
    trainer = instantiate(cfg.trainer, callbacks=[ShardWriter(out), SampleProgress(task.name)], logger=False,
                          enable_progress_bar=False, default_root_dir=str(out))
    started = time.time()
    if todo:
        loader = DataLoader(
            Subset(dataset, todo), batch_size=cfg.batch_size, num_workers=cfg.num_workers,
            collate_fn=PromptCollator(module.codec.tokenizer.pad_token_id),
        )
        trainer.predict(module, loader, return_predictions=False)
        trainer.strategy.barrier("generate:merge")  # every rank's shard is complete before rank 0 merges
    seconds = time.time() - started
    if not trainer.is_global_zero:
        return {}
    provenance = {"generator": str(cfg.module.backbone.path), "generation": OmegaConf.to_container(cfg.generation),
                  "config_hash": rundir.config_hash(cfg)}
    rows, counts = merge(out, task, provenance)
    generated = sum(r["id"] not in done for r in rows)
    counts.update(resumed=resumed, generated=generated)
    exports = write_exports(out, rows)
    tokens = sum(r.get("new_tokens", 0) for r in rows if r["id"] not in done)
    per_s = 1 / seconds if seconds > 0 else 0.0
    speed = {"seconds": round(seconds, 2), "samples_per_s": round(generated * per_s, 2), "new_tokens_per_s": round(tokens * per_s, 1)}
    rundir.write_manifest(
        out, cfg, "generate", generator=str(cfg.module.backbone.path), task=task.name, queries=str(cfg.queries),
        counts=counts, throughput=speed, exports=exports, templates=dict(Counter(r["template_id"] for r in rows)),
    )
    log.info("%s: %s -> %s", task.name, counts, out)
    return {**counts, **speed}
