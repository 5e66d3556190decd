"""A global batch size independent of the GPU count: the gradient accumulation that reaches it.

``global_batch_size`` (conf/train.yaml) is the number of samples per optimizer step over all devices.
With ``data.batch_size`` samples per device and step, ``devices`` processes per node and ``num_nodes``
nodes, each optimizer step accumulates ``global_batch_size / (batch_size * devices * num_nodes)`` batches.
"""
from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig, ListConfig


def accumulation(global_batch_size: int, micro_batch: int, devices: int, num_nodes: int = 1) -> int:
    """The ``accumulate_grad_batches`` that makes ``global_batch_size`` samples per optimizer step.

    ``micro_batch`` samples per device and forward pass, on ``devices`` devices per node and ``num_nodes``
    nodes: one pass over all of them sees ``micro_batch * devices * num_nodes`` samples. Raises
    ``ValueError`` unless that divides ``global_batch_size`` exactly (the message names the numbers and
    the global batch sizes that would divide).
    """
    for name, value in {"global_batch_size": global_batch_size, "micro_batch": micro_batch, "devices": devices,
                        "num_nodes": num_nodes}.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    per_pass = micro_batch * devices * num_nodes
    steps, rest = divmod(global_batch_size, per_pass)
    if rest or not steps:
        near = sorted({max(per_pass, global_batch_size - rest), global_batch_size - rest + per_pass})
        raise ValueError(
            f"global_batch_size={global_batch_size} is not a multiple of data.batch_size={micro_batch} x "
            f"devices={devices} x num_nodes={num_nodes} = {per_pass} samples per step over all devices; "
            f"pass a multiple of {per_pass} (e.g. global_batch_size={' or '.join(map(str, near))}), or a "
            f"data.batch_size / device count whose product divides {global_batch_size}")
    return steps


def device_count(trainer: DictConfig) -> int:
    """The processes per node that ``trainer`` (a ``lightning.Trainer`` config) runs: ``devices`` as an int,
    a list of device ids (its length), a string (``"2"`` or ``"0,1"``), or ``"auto"`` / ``-1`` (every
    visible CUDA device when the accelerator is gpu/cuda/auto and CUDA is available, else 1)."""
    devices = trainer.get("devices", "auto")
    if isinstance(devices, str):
        text = devices.strip()
        if text.isdigit():
            devices = int(text)
        elif text not in ("auto", "-1"):
            devices = [d for d in text.split(",") if d.strip()]
        else:
            devices = -1
    if isinstance(devices, (ListConfig, Sequence)):
        if not len(devices):
            raise ValueError("trainer.devices is an empty list")
        return len(devices)
    if devices is None or devices == -1:
        if str(trainer.get("accelerator", "auto")).lower() in ("gpu", "cuda", "auto"):
            import torch

            if torch.cuda.is_available():
                return torch.cuda.device_count()
        return 1
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"trainer.devices={devices!r}: expected a positive int, a list of ids, or 'auto'")
    return devices


def trainer_accumulation(cfg: DictConfig) -> int | None:
    """``accumulate_grad_batches`` for a train config's ``global_batch_size``; None when that is null
    (the trainer config's own accumulation applies). Raises ``ValueError`` when it does not divide, or
    when ``trainer.accumulate_grad_batches`` is set too (two ways of saying the same thing)."""
    global_batch_size = cfg.get("global_batch_size")
    if global_batch_size is None:
        return None
    own = cfg.trainer.get("accumulate_grad_batches", 1)
    if own not in (None, 1):
        raise ValueError(
            f"global_batch_size={global_batch_size} and trainer.accumulate_grad_batches={own} both set the "
            "accumulation: set one (global_batch_size derives accumulate_grad_batches from the device count)")
    return accumulation(global_batch_size, cfg.data.batch_size, device_count(cfg.trainer),
                        cfg.trainer.get("num_nodes", 1) or 1)
