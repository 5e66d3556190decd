"""The CPU ``torch.Generator``'s uniforms, computed on the GPU: one Mersenne Twister per row, in a Triton kernel.

``torch.rand(n, generator=torch.Generator().manual_seed(key))`` is MT19937 seeded with the low 32 bits of ``key``
(Matsumoto-Nishimura's ``init_genrand``), each float ``(word & 0xFFFFFF) / 2**24``. ``mt19937_uniform`` gives the same
floats, bit for bit, for a whole batch of keys, on the keys' device: on CUDA (or under ``TRITON_INTERPRET=1``) one
kernel program per row seeds the 624-word state, then twists and tempers it 624 words at a time; elsewhere the CPU
generator itself, row by row. The twist updates word k from words k+1 and k+397 (mod 624), so it runs in three
stretches of 227 words, each reading only words that earlier stretches have finished.
"""
from __future__ import annotations

import torch

from genixer.generation.kernels import kernel_enabled, kernel_matches

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: the CPU generator serves
    triton = None

STATE = 624   # words of state per row
BLOCK = 256   # words a program handles at once: one twist stretch (227) or a third of the state


def mt19937_uniform(keys: torch.Tensor, size: int) -> torch.Tensor:
    """``(rows, size)`` float32 uniforms in [0, 1): row i equals ``torch.rand(size)`` of a CPU generator seeded
    with ``keys[i]`` (int64; only its low 32 bits count, as in the CPU generator)."""
    keys = keys.to(torch.int64) & 0xFFFFFFFF
    return _kernel_uniform(keys, size) if uses_kernel(keys.device) else cpu_uniform(keys, size).to(keys.device)


def uses_kernel(device: torch.device) -> bool:
    """Whether uniforms on ``device`` come from the kernel: on a GPU once the kernel has given the CPU generator's
    bits there (``kernel_enabled``; otherwise a warning, and the CPU generator serves)."""
    return kernel_enabled("mt19937", device, _kernel_matches)


def _kernel_matches(device: torch.device) -> bool:
    keys = torch.tensor([0, 5489, 2**40 + 12345, 2**32 - 1])

    def compare():
        same = torch.equal(_kernel_uniform(keys.to(device), 1500).cpu(), cpu_uniform(keys, 1500))
        return None if same else "gave other bits than the CPU generator"
    return kernel_matches("MT19937", device, compare, "mt19937 sampling noise is drawn on the CPU instead")


def cpu_uniform(keys: torch.Tensor, size: int) -> torch.Tensor:
    """The reference: ``torch.rand(size)`` of a CPU generator seeded with each key, stacked."""
    # float32 whatever the default dtype (Lightning's bf16-true predict makes it bfloat16, which gave coarser draws)
    rows = [torch.rand(size, generator=torch.Generator().manual_seed(int(k)), dtype=torch.float32) for k in keys.tolist()]
    return torch.stack(rows) if rows else torch.empty(0, size, dtype=torch.float32)


def _kernel_uniform(keys: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.empty(len(keys), size, dtype=torch.float32, device=keys.device)
    if len(keys):
        state = torch.empty(len(keys), STATE, dtype=torch.int32, device=keys.device)
        _uniform_kernel[(len(keys),)](keys, state, out, size, BLOCK=BLOCK)
    return out


if triton is not None:
    @triton.jit
    def _uniform_kernel(keys_ptr, state_ptr, out_ptr, size, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        state, out = state_ptr + row * 624, out_ptr + row * size
        word = tl.load(keys_ptr + row).to(tl.uint32)   # init_genrand: word j from word j - 1
        tl.store(state, word.to(tl.int32, bitcast=True))
        for j in range(1, 624):
            word = (word ^ (word >> 30)) * 1812433253 + j
            tl.store(state + j, word.to(tl.int32, bitcast=True))
        tl.debug_barrier()
        offs = tl.arange(0, BLOCK)
        for start in range(0, size, 624):
            for stretch in tl.static_range(3):   # the twist
                k = stretch * 227 + offs
                live = (offs < 227) & (k < 624)
                a = tl.load(state + k, mask=live).to(tl.uint32, bitcast=True)
                b = tl.load(state + (k + 1) % 624, mask=live).to(tl.uint32, bitcast=True)
                m = tl.load(state + (k + 397) % 624, mask=live).to(tl.uint32, bitcast=True)
                y = (a & tl.full((), 0x80000000, tl.uint32)) | (b & tl.full((), 0x7FFFFFFF, tl.uint32))
                xor = tl.where((y & 1) != 0, tl.full((), 0x9908B0DF, tl.uint32), tl.full((), 0, tl.uint32))
                tl.debug_barrier()   # every read of this stretch before any write
                tl.store(state + k, (m ^ (y >> 1) ^ xor).to(tl.int32, bitcast=True), mask=live)
                tl.debug_barrier()
            for part in tl.static_range(3):   # temper, keep 24 bits
                k = part * BLOCK + offs
                live = (k < 624) & (start + k < size)
                y = tl.load(state + k, mask=live).to(tl.uint32, bitcast=True)
                y ^= y >> 11
                y ^= (y << 7) & tl.full((), 0x9D2C5680, tl.uint32)
                y ^= (y << 15) & tl.full((), 0xEFC60000, tl.uint32)
                y ^= y >> 18
                tl.store(out + start + k, (y & tl.full((), 0xFFFFFF, tl.uint32)).to(tl.float32) * 5.9604644775390625e-08,
                         mask=live)
            tl.debug_barrier()   # every temper read before the next twist writes
