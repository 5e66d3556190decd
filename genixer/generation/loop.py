"""The sharded, resumable predict loop shared by generation and benchmark answering.

Every rank reads the same complete shard lines before any rank appends (children of the subprocess
launcher start inside predict, and nobody writes before the process group forms); each rank appends
finished rows to its own shard; rank 0 reads them back once every rank is done.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Subset

from genixer.generation.queries import PromptCollator, PromptDataset
from genixer.runs.progress import SampleProgress
from genixer.runs.shards import ShardWriter, repair_shards, written_ids


@dataclass(frozen=True)
class Pending:
    """What a (resumed) run still has to predict: dataset indices, longest prompt first."""

    todo: list[int]
    total: int
    torn: int  # bytes of torn last lines cut from the shards

    @property
    def resumed(self) -> bool:
        return len(self.todo) < self.total or self.torn > 0


def pending(shards: Path, dataset: PromptDataset, retry_errors: bool = False) -> Pending:
    """The samples whose ids no shard holds yet (error rows too, with ``retry_errors``)."""
    torn = repair_shards(shards)
    done = written_ids(shards, retry_errors=retry_errors)
    todo = dataset.by_prompt_length([i for i in range(len(dataset)) if dataset.sample_id(i) not in done])
    return Pending(todo, len(dataset), torn)


def predict(cfg: DictConfig, shards: Path, dataset: PromptDataset, todo: list[int], module: L.LightningModule,
            desc: str) -> tuple[L.Trainer, float]:
    """Predict ``todo`` with ``module`` into ``shards`` (``cfg.trainer``, ``cfg.batch_size``, ``cfg.num_workers``);
    returns the trainer (``is_global_zero`` tells who merges) and the seconds it took."""
    trainer = instantiate(cfg.trainer, callbacks=[ShardWriter(shards), SampleProgress(desc)], logger=False,
                          enable_progress_bar=False, default_root_dir=str(Path(shards).parent))
    started = time.time()
    if todo:
        loader = DataLoader(Subset(dataset, todo), batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                            collate_fn=PromptCollator(dataset.codec.tokenizer.pad_token_id),
                            pin_memory=torch.cuda.is_available())   # batches cross to the GPU without a host wait
        trainer.predict(module, loader, return_predictions=False)
        trainer.strategy.barrier("predict:merge")  # every rank's shard is complete before rank 0 reads them
    return trainer, time.time() - started
