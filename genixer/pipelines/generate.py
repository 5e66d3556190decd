"""Generation pipeline: a generator checkpoint + query images -> parsed, exported samples.

Every input is checked before any heavy work or write: the task, the checkpoint dir, the generation
settings, then (after the mini world is built, when configured) the queries. Resumable: the sample
ids already in the run's shards are skipped (a torn last line is cut first), so re-running the same
command finishes an interrupted run; ``retry_errors=true`` generates the error rows again. The result
does not depend on the number of processes: every rank appends to its own shard and rank 0 merges
all shards, keyed by sample id, once every rank has finished writing.
"""
from __future__ import annotations

import hashlib

import logging
from collections import Counter
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from genixer.data.exports import export
from genixer.generation.best_of import pick
from genixer.generation.loop import pending, predict
from genixer.generation.module import GenerationModule
from genixer.generation.queries import PromptDataset, image_root_for, load_queries
from genixer.generation.records import merge
from genixer.generation.settings import Decoding
from genixer.pipelines.checks import check_config
from genixer.pipelines.common import RunFailed, failure, keep_nothing_on_error, log_outcome, prepare
from genixer.runs.files import write_jsonl
from genixer.runs.layout import RunDir, claim, config_hash, write_config, write_manifest
from genixer.runs.roofline import fraction

log = logging.getLogger(__name__)
CANDIDATES = "candidates.jsonl"   # generation.best_of > 1: every candidate, scored, with the one each sample kept


def candidate_shares(cfg: DictConfig, task, best_of: int) -> dict[str, dict[str, float]] | None:
    """``candidate_shares`` (family -> kind -> share) for ``generation.best_of``, checked: a share for every family
    the task writes; None when not set."""
    if not cfg.get("candidate_shares"):
        return None
    if best_of < 2:
        raise ValueError("candidate_shares keeps kinds among candidates: set generation.best_of > 1 with it")
    if not cfg.get("candidate_kinds"):
        raise ValueError("candidate_shares are shares of kinds: set candidate_kinds (the mini world's experiments do)")
    shares = instantiate(cfg.candidate_shares)
    shares = {str(f): {str(k): float(v) for k, v in kinds.items()} for f, kinds in dict(shares).items()}
    families = {t.family for t in getattr(task, "tasks", [task])}
    missing = sorted(f for f in families if not shares.get(f))
    if missing:
        raise ValueError(f"candidate_shares has no shares for {missing}, families of task {task.name} "
                         f"(it has {sorted(shares)})")
    return shares


def run(cfg: DictConfig) -> dict:
    out = RunDir(cfg.paths.output_dir)
    with keep_nothing_on_error(cfg):
        check_config(cfg)
        task = instantiate(cfg.task)
        backbone = instantiate(cfg.backbone)  # checks the checkpoint dir; no weights yet
        decoding = Decoding.from_config(OmegaConf.to_container(cfg.generation, resolve=True))
        # generation.best_of: what a candidate's kind is (checked here, not after the generation)
        kind = instantiate(cfg.candidate_kinds) if cfg.get("candidate_kinds") else lambda row: "all"
        prepare(cfg)
        shares = candidate_shares(cfg, task, decoding.best_of)
        queries = load_queries(cfg.queries)
        if not queries:
            raise ValueError(f"{cfg.queries} lists no images")
        image_root = image_root_for(cfg.queries, cfg.image_root)
        if not image_root.is_dir():
            raise FileNotFoundError(f"image_root {image_root} is not a folder")
        inputs = {"generator": str(Path(cfg.backbone.path).resolve()), "task": task.name,
                  "queries": str(Path(cfg.queries).resolve()), "image_root": str(image_root.resolve()),
                  "max_pixels": cfg.max_pixels, "seed": cfg.seed, "samples_per_image": cfg.samples_per_image,
                  "generation": decoding.settings(), **({"candidate_shares": shares} if shares else {})}
        # Shards only ever hold one configuration's samples (precision changes the tokens, the process count does not);
        # the task's texts by content, so an edited template file is another configuration, not a resume.
        texts = hashlib.sha256("\n".join(task.corpus()).encode()).hexdigest()[:16]
        claim(out.shards, {**inputs, "task": OmegaConf.to_container(cfg.task, resolve=True), "task_texts": texts,
                           "precision": str(cfg.trainer.precision)})
        write_config(out.path, cfg)

    codec = backbone.codec()
    dataset = PromptDataset(queries, image_root, task, codec, cfg.samples_per_image, cfg.seed, cfg.max_pixels,
                            decoding.best_of)
    work = pending(out.shards, dataset, cfg.retry_errors)
    todo = work.todo
    if not todo and out.finished:
        manifest = out.read_manifest("generate")
        if manifest.get("status") == "ok":  # a failed run goes on: its merge and ceiling check run again
            log.info("%s: already finished, nothing to generate", out.path)
            return {**manifest["counts"], **manifest["throughput"]}
    if work.resumed:
        log.info("resuming %s: %d of %d samples already written (%d torn bytes dropped)",
                 out.path, work.total - len(todo), work.total, work.torn)
    module = GenerationModule(backbone, codec, decoding)
    trainer, seconds = predict(cfg, out.shards, dataset, todo, module, task.name)
    if not trainer.is_global_zero:
        return {}

    provenance = {"generator": inputs["generator"], "generation": decoding.settings(), "config_hash": config_hash(cfg)}
    rows, counts = merge(out.shards, task, provenance)
    todo_ids = {dataset.sample_id(i) for i in todo}
    generated = sum(r["id"] in todo_ids for r in rows)
    counts.update(resumed=len(rows) - generated, generated=generated)
    tokens = sum(r.get("new_tokens", 0) for r in rows if r["id"] in todo_ids)
    speed = {"seconds": round(seconds, 2), "samples_per_s": round(generated / seconds, 2) if seconds > 0 else 0.0,
             "new_tokens_per_s": round(tokens / seconds, 1) if seconds > 0 else 0.0}
    if decoding.best_of > 1:   # the rates count candidates: samples_per_s / best_of samples kept per second
        speed["candidates_per_sample"] = decoding.best_of
    if module.engine_setup_s:   # rank 0's engine construction, inside ``seconds``
        speed.update(engine_setup_s=round(module.engine_setup_s, 2), engine_setup_parts_s=module.engine_setup_parts_s,
                     engine_setup_compile_s=module.engine_setup_compile_s, engine_run_s=round(module.engine_run_s, 2))
    device = trainer.strategy.root_device   # the run's device (predict's teardown moved the module to the CPU)
    if generated and seconds > 0 and device.type == "cuda":  # the hardware's limit, and where the run stands
        prompts = [len(codec.encode_prompt(dataset.instruction(i)[1])) for i in todo[:256]]
        limit = module.roofline(sum(prompts) / len(prompts), tokens / generated, cfg.batch_size, trainer.world_size,
                                device.index or 0, requests=-(-generated // trainer.world_size))
        speed.update(limit=limit, fraction_of_limit=fraction(speed["samples_per_s"], limit["limit_samples_per_s_serial"]))
    failed = failure("samples", Counter(r["reason"] for r in rows if r["status"] == "error"), len(rows), cfg.error_ceiling)
    outputs = {"samples": str(out.samples)}
    if decoding.best_of > 1:   # every candidate kept beside the samples; each sample's pick among them
        rows, candidates = pick(rows, kind, decoding.best_of_overall, shares)
        write_jsonl(out.path / CANDIDATES, candidates)
        outputs["candidates"] = str(out.path / CANDIDATES)
        counts["picked"] = dict(Counter(r["status"] for r in rows))
    write_jsonl(out.samples, rows)
    outputs.update(export([r for r in rows if r["status"] == "ok"], out.path))
    write_manifest(out.path, cfg, "generate", rows=len(rows), status="failed" if failed else "ok", failure=failed,
                   inputs=inputs, counts=counts, throughput=speed, outputs=outputs,
                   templates=dict(Counter(r["template_id"] for r in rows)))
    log_outcome(cfg, {"counts": counts, "throughput": speed})
    if cfg.get("report"):
        from genixer.report import write_report  # the HTML data report (docs/report.md)
        log.info("report: %s", write_report(out.path))
    if failed:
        raise RunFailed(f"{out.path}: {failed}")
    log.info("%s: %s -> %s", task.name, counts, out.path)
    return {**counts, **speed}

