"""Sharded training: the strategy a ``trainer=`` preset names, completed from the backbone, and the full weights
gathered from every rank for the HF export (a sharded run's rank 0 holds only its shard).

FSDP wraps each decoder layer the backbone declares (``decoder_layers``; ``module.activation_checkpointing`` is
HF's non-reentrant checkpointing inside them); DeepSpeed ZeRO-3 partitions parameters, which are gathered for
the export. DDP and one device need nothing.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from hydra.utils import get_class, instantiate
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
from omegaconf import DictConfig

from genixer.backbones.protocol import Backbone


def strategy(cfg: DictConfig, backbone: Backbone, accumulate: int = 1):
    """``cfg.trainer.strategy`` built: an FSDP one with the backbone's decoder layers to wrap; any other (a name
    such as ``ddp``, a DeepSpeed config) as it stands.

    FSDP accumulating gradients (``accumulate`` > 1) under a ``*-mixed`` precision gathers its parameters in fp32
    unless the preset names its own ``mixed_precision``: with Lightning's bf16 parameters, FSDP assigns each
    accumulated step's bf16 gradient to the fp32 parameter and torch 2.11 refuses ("assign a gradient with dtype
    BFloat16 to a tensor with grad_dtype Float", seen on an H200 with torch 2.11). Compute stays bf16 (autocast);
    the gathers move twice the bytes. Without accumulation they are Lightning's (bf16); buffers stay fp32 either way."""
    spec = cfg.trainer.get("strategy", "auto")
    if not isinstance(spec, DictConfig):
        return spec
    if not issubclass(get_class(spec._target_), FSDPStrategy):
        return instantiate(spec)
    extra = {}
    precision = str(cfg.trainer.get("precision"))
    if "mixed" in precision and spec.get("mixed_precision") is None:
        from torch.distributed.fsdp import MixedPrecision
        gathered = torch.float32 if accumulate > 1 else torch.float16 if precision.startswith("16") else torch.bfloat16
        # buffers stay fp32: Lightning's own config casts them, RoPE's frequencies too (genixer.runs.precision)
        extra["mixed_precision"] = MixedPrecision(param_dtype=gathered, reduce_dtype=gathered, buffer_dtype=torch.float32)
    return instantiate(spec, auto_wrap_policy=set(backbone.decoder_layers), **extra)


def full_state_dict(trainer, module) -> dict[str, torch.Tensor] | None:
    """For an FSDP or ZeRO-3 run, ``module.model``'s whole state dict gathered from the shards, on rank 0 (every
    rank must call it); None where the module's own model is whole (one device, DDP, ZeRO-2) and on other ranks."""
    wrapped = trainer.strategy.model
    if isinstance(trainer.strategy, FSDPStrategy):
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        config = FullStateDictConfig(offload_to_cpu=True, rank0_only=True)
        with FSDP.state_dict_type(wrapped, StateDictType.FULL_STATE_DICT, config):
            state = wrapped.state_dict()
        prefix = "model."   # the LightningModule's attribute holding the HF model
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        return state if trainer.is_global_zero else None
    if getattr(trainer.strategy, "zero_stage_3", False):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.model.parameters()), modifier_rank=None):
            if trainer.is_global_zero:
                return {k: v.detach().to("cpu", copy=True) for k, v in module.model.state_dict().items()}
    return None


class WholeInitDeepSpeed(DeepSpeedStrategy):
    """Lightning's DeepSpeed strategy, building the model whole: Lightning's ``zero.Init`` around
    ``configure_model`` partitions parameters while HF initialises them, which HF models do not survive (a
    padding row of an empty shard). ZeRO-3 partitions the whole model in ``deepspeed.initialize`` instead (peak
    memory: one full copy per rank, once)."""

    @contextmanager
    def model_sharded_context(self):
        yield
