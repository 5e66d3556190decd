"""Rotary embeddings stay fp32 under ``bf16-true``.

Lightning's ``bf16-true`` precision casts the whole module to bf16, buffers included, and so RoPE's inverse
frequencies too. Rounded to bf16 (8 significant bits) they move a token's angle at position 600 by up to about a
radian; HF's own bf16 inference (``from_pretrained(dtype=bfloat16)``) keeps them fp32, as every model here was
trained with them. ``fp32_rotary`` recomputes them in fp32 after the cast.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

FREQUENCIES = ("inv_freq", "original_inv_freq")


def fp32_rotary(model: nn.Module | None) -> int:
    """Recompute, in fp32, the inverse frequencies of every rotary module of ``model`` (an HF ``*RotaryEmbedding``
    built from its ``config``) whose buffers were cast below fp32; returns how many modules."""
    fixed = 0
    for module in model.modules() if model is not None else ():
        freq = getattr(module, "inv_freq", None)
        if not isinstance(freq, torch.Tensor) or freq.dtype == torch.float32 or not hasattr(module, "config"):
            continue
        try:
            fresh = type(module)(module.config)
        except TypeError as err:   # a rotary class built from something else: left as the cast made it
            log.warning("%s: cannot rebuild its rotary frequencies in fp32 (%s); they stay %s",
                        type(module).__name__, err, freq.dtype)
            continue
        for name in FREQUENCIES:
            if isinstance(getattr(module, name, None), torch.Tensor):
                setattr(module, name, getattr(fresh, name).to(device=freq.device, dtype=torch.float32))
        fixed += 1
    return fixed
