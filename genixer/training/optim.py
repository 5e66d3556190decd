"""Optimizer and schedule helpers shared by the LightningModules."""
from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from transformers import get_cosine_schedule_with_warmup


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float = 0.03):
    """Linear warm-up then cosine decay to 0 (the LLaVA / Shikra schedule), stepped per batch:
    transformers' own schedule, with the warm-up given as a share of the run."""
    return get_cosine_schedule_with_warmup(optimizer, max(1, int(total_steps * warmup_ratio)), total_steps)


def offloaded(optimizer: Callable, strategy) -> Callable:
    """``optimizer`` as a DeepSpeed strategy that keeps optimizer states on the CPU needs it: DeepSpeed's own CPU
    Adam (AdamW mode) with the same hyper-parameters (DeepSpeed refuses a torch optimizer there, and a torch step
    on the host would be slow); ``fused`` / ``foreach`` are dropped. Any other strategy: ``optimizer`` unchanged."""
    zero = (getattr(strategy, "config", None) or {}).get("zero_optimization", {})
    if zero.get("offload_optimizer", {}).get("device", "none") == "none":
        return optimizer
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    keywords = dict(getattr(optimizer, "keywords", {}))
    if getattr(optimizer, "func", optimizer) is not torch.optim.AdamW or getattr(optimizer, "args", ()):
        raise ValueError(f"optimizer offload takes torch.optim.AdamW given by keywords, not {optimizer!r}")
    for key in ("fused", "foreach"):   # torch's kernels choices; any other keyword DeepSpeed's Adam lacks raises
        keywords.pop(key, None)
    return functools.partial(DeepSpeedCPUAdam, adamw_mode=True, **keywords)


def configure(module, optimizer: Callable, scheduler: Callable | None, weight_decay: float = 0.0):
    """AdamW-style param groups (no decay on biases and norms) + a per-step schedule; the optimizer is DeepSpeed's
    CPU Adam where the strategy offloads optimizer states (``offloaded``)."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    trainer = getattr(module, "_trainer", None)
    opt = offloaded(optimizer, trainer.strategy if trainer is not None else None)(groups)
    if scheduler is None:
        return opt
    total = module.trainer.estimated_stepping_batches
    return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler(opt, total_steps=total), "interval": "step"}}
