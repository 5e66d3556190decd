"""Compiled prefill pieces: a Llama decoder's RMSNorms and gated SiLU MLPs as ``torch.compile``d functions.

The eager RMSNorm is six kernels over the prompt's hidden states (fp32 cast, square, mean, rsqrt, scale, cast
back) and the MLP's SiLU and product two more; compiled, each is one kernel around the matmuls. The functions
take the weights as arguments, so one compile (dynamic shapes) serves every layer, chunk size and prompt length.
``CompiledPrefill`` swaps them in for the modules' forwards only inside its context, which the engine enters for
its prefill forwards; decode steps keep replaying CUDA graphs of the eager layers. Modules of other classes
(another architecture) are left as they are.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F


@torch.compile(dynamic=True)
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``LlamaRMSNorm``'s arithmetic: normalized in fp32, cast back, then scaled."""
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


@torch.compile(dynamic=True)
def gated_mlp(x: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """``LlamaMLP`` with SiLU and no biases: down(silu(gate(x)) * up(x))."""
    return F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down)


def _norm_forward(module: nn.Module):
    return lambda x: rms_norm(x, module.weight, module.variance_epsilon)


def _mlp_forward(module: nn.Module):
    return lambda x: gated_mlp(x, module.gate_proj.weight, module.up_proj.weight, module.down_proj.weight)


def _plain_mlp(module: nn.Module) -> bool:
    return (type(module).__name__ == "LlamaMLP" and getattr(module.config, "hidden_act", None) == "silu"
            and all(getattr(module, p).bias is None for p in ("gate_proj", "up_proj", "down_proj")))


class CompiledPrefill:
    """The compiled pieces for ``decoder``'s ``LlamaRMSNorm`` and plain ``LlamaMLP`` modules (``pieces`` counts
    them; 0: nothing to swap)."""

    def __init__(self, decoder: nn.Module) -> None:
        self.forwards = [(m, _norm_forward(m)) for m in decoder.modules() if type(m).__name__ == "LlamaRMSNorm"]
        self.forwards += [(m, _mlp_forward(m)) for m in decoder.modules() if _plain_mlp(m)]
        self.pieces = len(self.forwards)

    @contextmanager
    def __call__(self):
        """Inside: the modules run the compiled functions (an instance ``forward`` shadows the class's)."""
        for module, forward in self.forwards:
            module.forward = forward
        try:
            yield
        finally:
            for module, _ in self.forwards:
                module.__dict__.pop("forward", None)
