"""Compiled decoder layers: a Llama layer as two ``torch.compile``d functions around its attention.

Eagerly, a decoder layer is some thirty kernels beside its matmuls (the RMSNorms' fp32 round trips, the rotary
embedding's ``cat``/``neg``/products, the transposes, the SiLU product, the residual adds); over a chunk of
~625-token prompts they cost a third of the prefill, and in a decode step they are most of its launches. Here each
layer runs as ``attention_inputs`` (input norm, q/k/v projections, rotary embedding), the cache write and the
attention (eager: ``attend``), then ``attention_output`` (output projection, residual, norm, MLP, residual), the
elementwise work fused around the matmuls. The functions take the weights as arguments and the batch's tokens
flattened into one dimension, so one compile (dynamic shapes) serves every layer, batch and length, prefill chunks
and decode steps alike (three graphs per process, not nine: a batch or a length of 1 would each compile apart, as
sizes of 1 are specialized). Only the token count is dynamic: the weights, the head size and the attention output's
heads are marked static (``mark_static``). Left symbolic (``dynamic=True`` makes every argument's size symbolic),
they put runtime integer divisions by the head size into every element's index in the generated kernels.

``CompiledLayers`` swaps them in as the modules' instance ``forward`` only inside its context, which the engine
enters for its prefill forwards (and, with ``compile_decode``, around its decode step before the CUDA graphs are
captured). Layers it cannot take (biases, another MLP) keep theirs with compiled norms and MLP; another
architecture gets nothing swapped.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``LlamaRMSNorm``'s arithmetic: normalized in fp32, cast back, then scaled."""
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _gated_mlp(x: torch.Tensor, gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """``LlamaMLP`` with SiLU and no biases: down(silu(gate(x)) * up(x))."""
    return F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The rotary embedding on (b, heads, n, d): x cos + rotate_half(x) sin."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin


rms_norm = torch.compile(_rms_norm, dynamic=True)
gated_mlp = torch.compile(_gated_mlp, dynamic=True)


@torch.compile(dynamic=True)
def attention_inputs(x, norm, eps: float, wq, wk, wv, cos, sin):
    """A layer's input norm, q/k/v projections and rotary embedding over tokens ``x`` (tokens, hidden) (``cos``/
    ``sin``: (tokens, head_dim), head_dim static): q, k, v as (tokens, heads, head_dim)."""
    h = _rms_norm(x, norm, eps)
    q, k, v = (F.linear(h, w).view(len(x), -1, cos.shape[-1]) for w in (wq, wk, wv))
    cos, sin = cos[:, None], sin[:, None]
    return _rotate(q, cos, sin), _rotate(k, cos, sin), v


@torch.compile(dynamic=True)
def attention_output(x, attended, wo, norm, eps: float, gate, up, down):
    """The rest of a layer after attention over tokens ``x`` (tokens, hidden) (``attended``: (tokens, heads,
    head_dim)): output projection, residual, post-attention norm, MLP, residual."""
    h = x + F.linear(attended.flatten(1), wo)
    return h + _gated_mlp(_rms_norm(h, norm, eps), gate, up, down)


def _static_last(*tensors: torch.Tensor, dims: int) -> None:
    """Mark the last ``dims`` sizes of each tensor static for the compiled functions (the rest stay dynamic)."""
    for t in tensors:
        for d in range(t.dim() - dims, t.dim()):
            torch._dynamo.mark_static(t, d)


def _plain_mlp(module: nn.Module) -> bool:
    return (type(module).__name__ == "LlamaMLP" and getattr(module.config, "hidden_act", None) == "silu"
            and all(getattr(module, p).bias is None for p in ("gate_proj", "up_proj", "down_proj")))


def _plain_layer(layer: nn.Module) -> bool:
    attn = getattr(layer, "self_attn", None)
    return (type(layer).__name__ == "LlamaDecoderLayer" and _plain_mlp(layer.mlp)
            and all(getattr(attn, p).bias is None for p in ("q_proj", "k_proj", "v_proj", "o_proj")))


def _layer_forward(layer: nn.Module, attend: Callable):
    """``LlamaDecoderLayer.forward`` through the compiled halves, attending with ``attend``."""
    attn, pre, post, mlp = layer.self_attn, layer.input_layernorm, layer.post_attention_layernorm, layer.mlp

    def forward(hidden_states, attention_mask=None, *args, position_embeddings=None, cache=None, past_key_values=None,
                **kwargs):
        b, n, _ = hidden_states.shape
        x = hidden_states.flatten(0, 1)
        cos, sin = (e.expand(b, n, -1).flatten(0, 1) for e in position_embeddings)
        _static_last(cos, sin, dims=1)
        q, k, v = (t.unflatten(0, (b, n)).transpose(1, 2) for t in attention_inputs(
            x, pre.weight, pre.variance_epsilon, attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, cos, sin))
        cache = cache if cache is not None else past_key_values
        if cache is not None:
            k, v = cache.update(k, v, attn.layer_idx)
        attended, _ = attend(attn, q, k, v, attention_mask, dropout=0.0, scaling=attn.scaling)
        attended = attended.flatten(0, 1)
        _static_last(attended, dims=2)
        return attention_output(x, attended, attn.o_proj.weight, post.weight, post.variance_epsilon,
                                mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight).unflatten(0, (b, n))
    return forward


def _tokens(fn: Callable) -> Callable:
    """``fn`` over ``x``'s tokens flattened into one dimension (see the module's doc), shaped back like ``x``."""
    return lambda x: fn(x.flatten(0, -2)).view_as(x)


class CompiledLayers:
    """The compiled forwards for ``decoder``'s plain ``LlamaDecoderLayer``s and for its other ``LlamaRMSNorm`` and
    plain ``LlamaMLP`` modules; ``pieces`` counts them (0: nothing to swap). ``attend``: the layers' attention, with
    the signature of HF's attention interface (``module, q, k, v, mask, **kwargs -> (b, n, heads, d), weights``)."""

    def __init__(self, decoder: nn.Module, attend: Callable) -> None:
        layers = [m for m in decoder.modules() if _plain_layer(m)]
        inside = {id(m) for layer in layers for m in layer.modules()}
        rest = [m for m in decoder.modules() if id(m) not in inside]
        self.forwards = [(m, _layer_forward(m, attend)) for m in layers]
        self.forwards += [(m, _tokens(lambda x, m=m: rms_norm(x, m.weight, m.variance_epsilon)))
                          for m in rest if type(m).__name__ == "LlamaRMSNorm"]
        self.forwards += [(m, _tokens(lambda x, m=m: gated_mlp(x, m.gate_proj.weight, m.up_proj.weight, m.down_proj.weight)))
                          for m in rest if _plain_mlp(m)]
        self.pieces, self.layers = len(self.forwards), len(layers)
        for module, _ in self.forwards:   # weight sizes are the same in every call: static (see the module's doc)
            for weight in module.parameters():
                torch._dynamo.mark_static(weight)

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
