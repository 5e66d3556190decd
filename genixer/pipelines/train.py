"""Training pipeline: backbone -> codec -> data module and LightningModule -> fit -> HF checkpoint.

The codec (tokenizer, image transform, conversation template) is built once, from the backbone
(a tiny backbone trains its tokenizer on the data's texts), and given to both the data module and
the LightningModule, which are complete when built.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from hydra.utils import instantiate
from omegaconf import DictConfig

from genixer.backbones.llava import CHECKPOINT_DIR
from genixer.backbones.protocol import Backbone
from genixer.data.instructions import instruction_texts
from genixer.pipelines.checks import check_config
from genixer.pipelines.common import keep_nothing_on_error, loggers, prepare
from genixer.runs.layout import RunDir, write_config, write_manifest
from genixer.training import sharding
from genixer.training.global_batch import trainer_accumulation
from genixer.training.throughput import Throughput

log = logging.getLogger(__name__)


def assemble(cfg: DictConfig, backbone: Backbone) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The data module and the LightningModule, sharing the backbone's codec."""
    mixture = instantiate(cfg.data.mixture) if cfg.data.get("mixture") else None
    # A tiny backbone's tokenizer learns the training texts, or a fixed mixture's (runs that must share a vocabulary).
    vocabulary = instantiate(cfg.tokenizer_mixture) if cfg.get("tokenizer_mixture") else mixture
    codec = backbone.codec(instruction_texts(vocabulary, cfg.data.seed) if vocabulary else ())
    # Built objects go to the partials, not through instantiate (which would turn a dataclass into a config).
    datamodule = instantiate(cfg.data, _partial_=True)(codec=codec, **({"mixture": mixture} if mixture else {}))
    return datamodule, instantiate(cfg.module, _partial_=True)(backbone=backbone, codec=codec)


def make_callbacks(cfg: DictConfig, logged: bool) -> list:
    """The configured callbacks; with no logger (``logger=none``) the learning-rate monitor is left out: it has
    nowhere to write, and Lightning refuses a run that has it."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    return callbacks if logged else [c for c in callbacks if not isinstance(c, LearningRateMonitor)]


def resume_from(ckpt_path: str | None, callbacks: list) -> str | None:
    """``ckpt_path=last``: the last.ckpt an earlier attempt of this run left (its ModelCheckpoint's dirpath), or
    nothing, so a fresh run or one without checkpoints starts over quietly; any other value as given."""
    if ckpt_path != "last":
        return ckpt_path
    dirs = [c.dirpath for c in callbacks if isinstance(c, ModelCheckpoint) and c.dirpath]
    last = [Path(d, "last.ckpt") for d in dirs if Path(d, "last.ckpt").exists()]
    return str(last[0]) if last else None


def run(cfg: DictConfig) -> dict:
    """Build everything from config, fit, export a HF checkpoint, write the manifest."""
    out = RunDir(cfg.paths.output_dir)
    if out.finished:
        log.info("%s: already trained (delete it, or pass hydra.run.dir=..., to train again)", out.path)
        return out.read_manifest("train")["metrics"]
    with keep_nothing_on_error(cfg):
        check_config(cfg)
        accumulate = trainer_accumulation(cfg)   # global_batch_size -> accumulate_grad_batches (None: the trainer's own)
        backbone = instantiate(cfg.backbone)
        prepare(cfg)
        write_config(out.path, cfg)
    datamodule, module = assemble(cfg, backbone)
    logger = loggers(cfg) or False
    callbacks = make_callbacks(cfg, logged=bool(logger))
    extra = {} if accumulate is None else {"accumulate_grad_batches": accumulate}
    batches_per_step = accumulate or cfg.trainer.get("accumulate_grad_batches", 1)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger, default_root_dir=str(out.path),
                          strategy=sharding.strategy(cfg, backbone, batches_per_step), **extra)
    global_batch = cfg.data.batch_size * trainer.world_size * trainer.accumulate_grad_batches
    log.info("global batch: %d samples per optimizer step = data.batch_size %d x %d device(s) x %d accumulated "
             "batch(es)", global_batch, cfg.data.batch_size, trainer.world_size, trainer.accumulate_grad_batches)
    started = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from(cfg.get("ckpt_path"), callbacks))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics.update(steps=trainer.global_step, seconds=round(time.time() - started, 1),
                   global_batch_size=global_batch, accumulate_grad_batches=trainer.accumulate_grad_batches)
    for callback in callbacks:   # this rank's tokens/s and MFU over the run (genixer.training.throughput)
        if isinstance(callback, Throughput) and callback.steps_measured:
            metrics["throughput"] = callback.summary()
    gathered = sharding.full_state_dict(trainer, module)   # a sharded run's weights, whole on rank 0 (every rank calls)
    if trainer.is_global_zero:
        checkpoint = Path(out.path, CHECKPOINT_DIR)
        module.export(checkpoint, dtype=cfg.get("save_dtype"), **({"state": gathered} if gathered is not None else {}))
        write_manifest(out.path, cfg, "train", rows=0, status="ok", metrics=metrics, outputs={"checkpoint": str(checkpoint)})
        log.info("checkpoint: %s  metrics: %s", checkpoint, metrics)
    return metrics
