"""Counter-based sampling noise: Gumbel noise from a 32-bit hash of (seed, step, token), the same bits on CPU and GPU.

The reference is int64 tensor ops (``counter_gumbel_reference``): some forty passes over a (rows, vocabulary) tensor,
1.85 ms per decode step at 281 x 32,064 on an H200. On a GPU one Triton kernel computes the same hash per element
(``counter_gumbel``: 29 us there, the same bits; ``benchmarks/sampling.py``), used once it has matched the reference
on that device (``genixer.generation.kernels``).
"""
from __future__ import annotations

import torch

from genixer.generation.kernels import kernel_enabled, kernel_matches

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: the reference serves
    triton = None

_MASK32 = 0xFFFFFFFF
BLOCK = 1024   # tokens per kernel program


def counter_gumbel(seeds: torch.Tensor, steps: torch.Tensor, size: int) -> torch.Tensor:
    """Gumbel noise ``(rows, size)`` for int64 ``seeds`` and ``steps`` (one per row), on their device."""
    if uses_kernel(seeds.device):
        return _kernel_gumbel(seeds, steps, size)
    return counter_gumbel_reference(seeds, steps, size)


def counter_gumbel_reference(seeds: torch.Tensor, steps: torch.Tensor, size: int) -> torch.Tensor:
    """``counter_gumbel`` in int64 tensor ops (32-bit values), on any device."""
    low, high, step = seeds & _MASK32, (seeds >> 32) & _MASK32, steps & _MASK32
    key = _mix32(low ^ _mix32(high ^ _mix32(step)))[:, None]
    key2 = _mix32(key ^ 0x9E3779B9)
    tokens = torch.arange(size, device=seeds.device)[None]
    return -torch.log(-torch.log(bits_to_uniform(_mix32(_mix32(key ^ tokens) ^ key2))))


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c mod 2**32`` for ``0 <= x < 2**32`` without int64 overflow (products stay below 2**48)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit avalanche hash (Wellons' lowbias32), on int64 tensors holding 32-bit values."""
    x = _mul32(x ^ (x >> 16), 0x7FEB352D)
    x = _mul32(x ^ (x >> 15), 0x846CA68B)
    return x ^ (x >> 16)


def bits_to_uniform(bits: torch.Tensor) -> torch.Tensor:
    """32-bit hash values -> float32 uniforms strictly inside (0, 1): 23 bits, exact in float32 (24 would round
    the top value to 1.0, whose Gumbel noise is infinite)."""
    return ((bits >> 9).float() + 0.5) * 2.0**-23


def uses_kernel(device: torch.device) -> bool:
    return kernel_enabled("counter", device, _kernel_matches)


def _kernel_matches(device: torch.device) -> bool:
    seeds = torch.tensor([0, 5, 2**62 + 17, 2**63 - 1, -3])
    steps = torch.tensor([0, 7, 255, 2**33 + 1, 1])

    def compare():
        same = torch.equal(_kernel_gumbel(seeds.to(device), steps.to(device), 3000),
                           counter_gumbel_reference(seeds.to(device), steps.to(device), 3000))
        return None if same else "gave other bits than the reference"
    return kernel_matches("counter-noise", device, compare, "the reference's tensor ops serve instead")


def _kernel_gumbel(seeds: torch.Tensor, steps: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.empty(len(seeds), size, dtype=torch.float32, device=seeds.device)
    if len(seeds):
        seeds, steps = (t.to(torch.int64).contiguous() for t in (seeds, steps))   # the kernel reads them densely
        _gumbel_kernel[(len(seeds), triton.cdiv(size, BLOCK))](seeds, steps, out, size, BLOCK=BLOCK)
    return out


if triton is not None:
    @triton.jit
    def _mix32_kernel(x):
        x = (x ^ (x >> 16)) * tl.full((), 0x7FEB352D, tl.uint32)
        x = (x ^ (x >> 15)) * tl.full((), 0x846CA68B, tl.uint32)
        return x ^ (x >> 16)

    @triton.jit
    def _gumbel_kernel(seeds_ptr, steps_ptr, out_ptr, size, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        seed, step = tl.load(seeds_ptr + row), tl.load(steps_ptr + row)
        low, high = (seed & 0xFFFFFFFF).to(tl.uint32), ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32)
        key = _mix32_kernel(low ^ _mix32_kernel(high ^ _mix32_kernel((step & 0xFFFFFFFF).to(tl.uint32))))
        key2 = _mix32_kernel(key ^ tl.full((), 0x9E3779B9, tl.uint32))
        tokens = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        bits = _mix32_kernel(_mix32_kernel(key ^ tokens.to(tl.uint32)) ^ key2)
        uniform = ((bits >> 9).to(tl.float32) + 0.5) * 1.1920928955078125e-07   # 2**-23
        tl.store(out_ptr + row * size + tokens, -tl.log(-tl.log(uniform)), mask=tokens < size)
