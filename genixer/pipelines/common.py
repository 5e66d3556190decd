"""What every stage does around its own work: prepare inputs, keep a failed start from leaving a
run dir behind, log the outcome, and fail loudly when too many samples failed."""
from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from genixer.pipelines.checks import flatten

log = logging.getLogger(__name__)


class RunFailed(RuntimeError):
    """A run that finished its work but whose output is mostly failures (see ``error_ceiling``)."""


def prepare(cfg: DictConfig) -> None:
    """Seed everything and build what the run reads when it is configured to (the mini world)."""
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("world"):
        instantiate(cfg.world)()


@contextlib.contextmanager
def keep_nothing_on_error(cfg: DictConfig) -> Iterator[Path]:
    """The run dir; when the run fails before writing anything into it, the empty folders Hydra made
    for it (up to ``paths.runs``) are removed."""
    out, runs = Path(cfg.paths.output_dir).resolve(), Path(cfg.paths.runs).resolve()
    try:
        yield out
    except BaseException:
        folder = out
        while folder.is_dir() and not any(folder.iterdir()) and folder != runs and runs in folder.parents:
            folder.rmdir()
            folder = folder.parent
        if out.is_dir() and not any(out.iterdir()):  # a run dir outside paths.runs (hydra.run.dir=...)
            out.rmdir()
        raise


def loggers(cfg: DictConfig) -> list:
    """The configured experiment loggers (``logger=csv``, ``logger=wandb``, ...)."""
    return [instantiate(c) for c in (cfg.get("logger") or {}).values()]


def log_outcome(cfg: DictConfig, metrics: dict) -> None:
    """Numbers of a generation / filter run (counts, throughput) to the configured loggers."""
    flat = {k: float(v) for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for logger in loggers(cfg):
        logger.log_metrics(flat, step=0)
        logger.finalize("success")


def failure(what: str, errors: Counter, total: int, ceiling: float) -> str | None:
    """Why the run failed when ``errors`` make up ``ceiling`` or more of ``total`` (with the top reasons), else None."""
    failed = sum(errors.values())
    if not total or failed / total < ceiling:
        return None
    top = "; ".join(f"{n} x {reason}" for reason, n in errors.most_common(3))
    return f"{failed} of {total} {what} failed ({failed / total:.0%}, error_ceiling={ceiling}): {top}"
