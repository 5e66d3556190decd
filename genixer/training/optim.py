"""Optimizer and schedule helpers shared by the LightningModules."""
from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import get_cosine_schedule_with_warmup


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.03):
    """Linear warm-up then cosine decay to 0 (the LLaVA / Shikra schedule), stepped per batch:
    transformers' own schedule, with the warm-up given as a share of the run."""
    return get_cosine_schedule_with_warmup(optimizer, max(1, int(total_steps * warmup_ratio)), total_steps)


def configure(module, optimizer: Callable, scheduler: Callable | None, weight_decay: float = 0.0):
    """AdamW-style param groups (no decay on biases and norms) + a per-step schedule."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt = optimizer(groups)
    if scheduler is None:
        return opt
    total = module.trainer.estimated_stepping_batches
    return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler(opt, total_steps=total), "interval": "step"}}
