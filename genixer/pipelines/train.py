"""Training pipeline: any LightningModule with ``bind`` / ``export`` on its datamodule."""
from __future__ import annotations

import logging
import time

from hydra.utils import instantiate
from omegaconf import DictConfig

from genixer.backbones.llava import CHECKPOINT_DIR
from genixer.runs import layout as rundir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Build everything from config, fit, export a HF checkpoint, write the manifest."""
    out = rundir.start(cfg)
    datamodule = instantiate(cfg.data)
    module = instantiate(cfg.module)
    module.bind(datamodule)
    callbacks = [instantiate(c) for c in cfg.get("callbacks", {}).values()]
    loggers = [instantiate(c) for c in cfg.get("logger", {}).values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, default_root_dir=str(out))
    started = time.time()
    trainer.fit(module, datamodule=datamodule)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics.update(steps=trainer.global_step, seconds=round(time.time() - started, 1))
    if trainer.is_global_zero:
        module.export(out / CHECKPOINT_DIR, dtype=cfg.get("save_dtype"))
        rundir.write_manifest(out, cfg, "train", metrics=metrics, checkpoint=str(out / CHECKPOINT_DIR))
        log.info("checkpoint: %s  metrics: %s", out / CHECKPOINT_DIR, metrics)
    return metrics
