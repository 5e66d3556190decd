"""Optimizer and schedule helpers shared by the LightningModules."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.03, min_ratio: float = 0.0):
    """Linear warm-up then cosine decay (the LLaVA / Shikra schedule), stepped per batch."""
    warmup = max(1, int(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


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
