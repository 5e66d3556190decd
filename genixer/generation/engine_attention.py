"""The engine's attention: HF's SDPA attention, except where the engine knows better (registered with HF as
``ENGINE_ATTENTION``; ``attending_as_engine`` switches a model on SDPA to it)."""
from __future__ import annotations

from contextlib import contextmanager

from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from genixer.generation.decode_attention import decode_attention, usable

# Attention kernels for the engine's forwards: not cuDNN's, which recent torch prefers on SM90 with a recent cuDNN
# and which failed there on the engine's broadcast boolean masks ("mha_graph.execute(...).is_good()", a mini-world
# generator in bf16, torch 2.11 on an H200); with a mask SDPA then takes the memory-efficient kernel.
ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
ENGINE_ATTENTION = "genixer_engine"


def engine_attention(module, query, key, value, attention_mask, **kwargs):
    """HF's SDPA attention, except that prompts (several query positions, right-padded by the engine) go without
    their mask: causal attention gives their real tokens the same result, and takes the flash kernel; and decode
    steps take ``decode_attention`` where it serves (a GPU): it reads each row's own columns only."""
    if query.shape[2] > 1:
        return sdpa_attention_forward(module, query, key, value, None, **kwargs)
    if not kwargs.get("dropout") and not kwargs.get("softcap") and usable(query, key, value, attention_mask):
        scale = kwargs.get("scaling") or query.shape[-1] ** -0.5
        return decode_attention(query, key, value, attention_mask, scale).transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register(ENGINE_ATTENTION, engine_attention)
AttentionMaskInterface.register(ENGINE_ATTENTION, sdpa_mask)   # masks built, where HF builds any, as for SDPA


@contextmanager
def attending_as_engine(config):
    """Inside: a model on SDPA (``config``: its text config) uses ``engine_attention`` (others keep theirs), with
    the SDPA kernels of ``ATTENTION_BACKENDS``."""
    before = config._attn_implementation
    if before == "sdpa":
        config._attn_implementation = ENGINE_ATTENTION
    try:
        with sdpa_kernel(ATTENTION_BACKENDS):
            yield
    finally:
        config._attn_implementation = before
