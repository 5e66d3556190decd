"""Decode attention (one query per row) that reads only the key/value columns its mask lets through.

The engine's decode step attends over every slot's whole cache width under a per-row boolean mask. The engine keeps
SDPA off cuDNN's kernel (it once failed on a mini generator's masks on an H200), and the memory-efficient one then
ran at half the copy bandwidth (743 us per layer at 128 slots x 768 columns, three quarters of the step). This Triton
kernel runs one program per (row, head): it finds the row's last kept column from the mask, walks the keys up to
there in blocks, loads only the columns the mask keeps (a short row costs its own length, not the width), and keeps
the softmax online in float32. The result equals SDPA's with the same mask up to float rounding
(``tests/test_decode_attention.py``).
"""
from __future__ import annotations

import inspect

import torch

from genixer.generation.kernels import kernel_enabled, kernel_matches

try:
    import triton
    import triton.language as tl
except ImportError:  # a CPU-only install: SDPA serves
    triton = None

BLOCK = 64   # key columns per step of a program's walk in the interpreter (tuned on a GPU)


def decode_attention(query, key, value, mask, scale: float) -> torch.Tensor:
    """``softmax(q k^T * scale, masked) v`` for ``query (b, heads, 1, d)``, ``key``/``value (b, kv_heads, width, d)``
    (kv_heads dividing heads) and a boolean ``mask (b, 1, 1, width)``; returns ``(b, heads, 1, d)``. Every row needs
    at least one true column (SDPA would give NaN there)."""
    b, heads, _, d = query.shape
    out = torch.empty_like(query)
    if b:
        rows = mask[:, 0, 0]
        args = (query, key, value, rows.view(torch.uint8), out, key.shape[2], scale, query.stride(0), query.stride(1),
                key.stride(0), key.stride(1), key.stride(2), value.stride(0), value.stride(1), value.stride(2),
                rows.stride(0), rows.stride(1), out.stride(0), out.stride(1))
        if query.device.type == "cuda":
            _tuned_kernel[(b, heads)](*args, GROUP=heads // key.shape[1], D=d)
        else:   # Triton's interpreter
            _decode_kernel[(b, heads)](*args, GROUP=heads // key.shape[1], D=d, BLOCK=BLOCK)
    return out


def usable(query, key, value, mask) -> bool:
    """Whether ``decode_attention`` serves these inputs: one query, a boolean (b, 1, 1, width) mask, a power-of-two
    head size, unit stride along it, and the kernel enabled on their device (``kernel_enabled``)."""
    d = query.shape[-1]
    return (query.shape[2] == 1 and mask is not None and mask.dtype == torch.bool and mask.dim() == 4
            and mask.shape[1] == mask.shape[2] == 1 and mask.shape[-1] == key.shape[2] and d >= 16 and d & (d - 1) == 0
            and query.shape[1] % key.shape[1] == 0 and query.stride(-1) == key.stride(-1) == value.stride(-1) == 1
            and kernel_enabled("decode_attention", query.device, _kernel_matches))


def reference(query, key, value, mask, scale: float) -> torch.Tensor:
    group = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(group, 1), value.repeat_interleave(group, 1)
    return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale)


def _kernel_matches(device: torch.device) -> bool:
    """The kernel against SDPA on this device: random bf16 inputs, prefix masks of several lengths and one with holes."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(6, 4, n, 128, generator=gen).to(device, torch.bfloat16) for n in (1, 200, 200))
    mask = torch.arange(200)[None] < torch.tensor([1, 63, 64, 65, 130, 200])[:, None]
    mask[5, ::3] = False
    mask = mask[:, None, None].to(device)

    def compare():
        got, want = decode_attention(q, k, v, mask, 0.088), reference(q, k, v, mask, 0.088)
        return None if torch.allclose(got.float(), want.float(), atol=2e-2, rtol=2e-2) else \
            f"differs from SDPA by {float((got.float() - want.float()).abs().max()):.3g}"
    return kernel_matches("decode attention", device, compare, "decode steps use SDPA instead")


if triton is not None:
    @triton.jit
    def _decode_kernel(q_ptr, k_ptr, v_ptr, mask_ptr, out_ptr, width, scale, sqb, sqh, skb, skh, skn, svb, svh, svn,
                       smb, smn, sob, soh, GROUP: tl.constexpr, D: tl.constexpr, BLOCK: tl.constexpr):
        row, head = tl.program_id(0).to(tl.int64), tl.program_id(1)
        kv = head // GROUP
        d = tl.arange(0, D)
        q = tl.load(q_ptr + row * sqb + head * sqh + d).to(tl.float32) * scale
        keys, values, kept = k_ptr + row * skb + kv * skh, v_ptr + row * svb + kv * svh, mask_ptr + row * smb
        end = tl.max(tl.zeros([BLOCK], tl.int32), 0)   # one past the last kept column: the walk stops there
        for start in range(0, width, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            keep = tl.load(kept + cols * smn, mask=cols < width, other=0) != 0
            end = tl.maximum(end, tl.max(tl.where(keep, cols + 1, 0), 0))
        # running max (finite: a block with nothing kept then changes nothing), sum, and weighted values
        best = tl.max(tl.full([BLOCK], -1e30, tl.float32), 0)
        total = tl.sum(tl.zeros([BLOCK], tl.float32), 0)
        acc = tl.zeros([D], tl.float32)
        for start in range(0, end, BLOCK):   # masked-off columns are not loaded
            cols = start + tl.arange(0, BLOCK)
            keep = tl.load(kept + cols * smn, mask=cols < end, other=0) != 0
            k = tl.load(keys + cols[:, None] * skn + d[None, :], mask=keep[:, None], other=0.0).to(tl.float32)
            v = tl.load(values + cols[:, None] * svn + d[None, :], mask=keep[:, None], other=0.0).to(tl.float32)
            scores = tl.where(keep, tl.sum(k * q[None, :], 1), float("-inf"))
            new = tl.maximum(best, tl.max(scores, 0))
            p = tl.exp(scores - new)
            alpha = tl.exp(best - new)
            total = total * alpha + tl.sum(p, 0)
            acc = acc * alpha + tl.sum(p[:, None] * v, 0)
            best = new
        tl.store(out_ptr + row * sob + head * soh + d, (acc / total).to(out_ptr.dtype.element_ty))

    # On a GPU the block size, warps and pipeline depth are tuned per cache width, at the first call (the engine's
    # warm-up step, before its CUDA graphs are captured); the interpreter runs the plain kernel. The candidates
    # surround the best of 27 on an H200 at 7B shape (64 columns, 2 warps, 2 stages: 413 us against 391 for
    # cuDNN's SDPA and 743 for the memory-efficient one); all 27 cost a generation run ~20 s of start-up. The choice
    # is kept in Triton's cache directory: a machine tunes once per width.
    _tuned_kernel = triton.autotune(
        [triton.Config({"BLOCK": b}, num_warps=w, num_stages=s)
         for b, w, s in ((64, 2, 2), (64, 2, 3), (64, 4, 2), (32, 2, 2), (128, 4, 2), (128, 8, 2))],
        key=["width", "D", "GROUP"],
        **({"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}))(_decode_kernel)
