"""The filter LightningModule: runs one or more scorers' models over their item loaders (predict only)."""
from __future__ import annotations

import lightning as L
import torch
from torch import nn

from genixer.filtering.scorer import Scorer, to_device
from genixer.runs.precision import fp32_rotary


class FilterModule(L.LightningModule):
    """``scorers`` in loader order: predict dataloader ``k`` feeds ``scorers[k]``.

    Models are built late (``configure_model``) so config tests never touch weights; the trainer's
    precision plugin casts them (``bf16-true`` on GPU).
    """

    def __init__(self, scorers: list[Scorer]) -> None:
        super().__init__()
        self.scorers = list(scorers)
        self.models = None
        self.flops = 0.0  # this rank's forward FLOPs, as the scorers count them (the run's hardware limit)
        self.total_flops = 0.0  # every rank's, once predict has ended

    def configure_model(self) -> None:
        if self.models is None:
            self.models = nn.ModuleList([scorer.build().eval().requires_grad_(False) for scorer in self.scorers])

    def on_predict_start(self) -> None:
        fp32_rotary(self.models)   # after the precision plugin's cast (bf16-true)

    @torch.no_grad()
    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> list[dict]:
        """Score the items that loaded; failed items pass through as error/rejected lines."""
        lines = list(batch["failed"])
        if batch["meta"]:
            model = self.models[dataloader_idx]
            dtype = next(model.parameters()).dtype
            inputs = to_device(batch["inputs"], self.device, dtype)
            lines += self.scorers[dataloader_idx].score(model, inputs, batch["meta"])
            self.flops += self.scorers[dataloader_idx].flops(model, inputs)
        return lines

    def on_predict_end(self) -> None:
        """Every rank's FLOPs summed (``total_flops``) while the ranks and the device are still up; then the models
        go, so that Lightning's teardown does not copy their weights back to the host (18.8 GB for Fuyu-8B)."""
        mine = torch.tensor(self.flops, dtype=torch.float64, device=self.device)
        self.total_flops = float(self.trainer.strategy.reduce(mine, reduce_op="sum"))
        self.models = None
