"""How far the decode attention kernel is from what its reads allow (issue 14: is a faster kernel left?).

One layer at 7B shape (32 heads of 128), ``--slots`` rows of a 768-column cache, each row's length drawn around 690:
the engine's tuned kernel (``genixer.generation.decode_attention``), its body with block size, warps and pipeline
stages set by hand (``plain_``), a kernel on the same grid that only reads the rows' keys and values (``read_ceiling_``: what this access pattern can
reach), and cuDNN's and the memory-efficient SDPA. Microseconds and TB/s of keys and values read.

    python -m benchmarks.decode_attention --out benchmarks/results/attn_variants.json
"""
import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch.nn.attention import SDPBackend, sdpa_kernel

from benchmarks.engine_checks import gpu_us
from genixer.generation.decode_attention import _decode_kernel, decode_attention


@triton.jit
def _read_kernel(k_ptr, v_ptr, out_ptr, end, skb, skh, skn, D: tl.constexpr, BLOCK: tl.constexpr):
    row, head = tl.program_id(0).to(tl.int64), tl.program_id(1)
    d = tl.arange(0, D)
    acc = tl.zeros([D], tl.float32)
    for start in range(0, end, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        k = tl.load(k_ptr + row * skb + head * skh + cols[:, None] * skn + d[None, :], mask=cols[:, None] < end, other=0.0)
        v = tl.load(v_ptr + row * skb + head * skh + cols[:, None] * skn + d[None, :], mask=cols[:, None] < end, other=0.0)
        acc += tl.sum(k.to(tl.float32) + v.to(tl.float32), 0)
    tl.store(out_ptr + (row * 32 + head) * D + d, acc)


def main(slots: int, kept: int = 690, width: int = 768) -> dict:
    q = torch.randn(slots, 32, 1, 128, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(slots, 32, width, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    lengths = torch.randint(kept - 100, kept + 60, (slots,), device="cuda")
    mask = (torch.arange(width, device="cuda")[None] < lengths[:, None])[:, None, None].contiguous()
    rows, out = mask[:, 0, 0].view(torch.uint8), torch.empty_like(q)
    gb = float(2 * lengths.sum() * 32 * 128 * 2) / 1e9   # keys and values the rows read
    want = decode_attention(q, k, v, mask, 0.088)
    res = {"slots": slots, "GB": round(gb, 3)}

    def timed(name: str, fn, nbytes: float = gb, check: bool = False) -> None:
        try:
            fn()
            torch.cuda.synchronize()
            us = gpu_us(fn, 50)
            res[name] = {"us": us, "TBps": round(nbytes / us * 1e3, 2)}
            if check:
                res[name]["max_abs_err"] = float((out.float() - want.float()).abs().max())
        except Exception as err:  # noqa: BLE001 - a config that does not compile is a result
            res[name] = f"{type(err).__name__}: {err}"[:200]

    timed("current", lambda: decode_attention(q, k, v, mask, 0.088))
    strides = (q.stride(0), q.stride(1), k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
               rows.stride(0), rows.stride(1), out.stride(0), out.stride(1))
    for block, warps, stages in [(64, 2, 2), (64, 2, 3), (64, 4, 3), (64, 4, 4), (32, 2, 3), (32, 4, 4), (128, 4, 3),
                                 (128, 8, 3), (64, 8, 4)]:
        config = dict(GROUP=1, D=128, BLOCK=block, num_warps=warps, num_stages=stages)
        timed(f"plain_b{block}_w{warps}_s{stages}", check=True,
              fn=lambda: _decode_kernel[(slots, 32)](q, k, v, rows, out, width, 0.088, *strides, **config))
    sink = torch.empty(slots * 32 * 128, device="cuda")
    for block, warps, stages in [(64, 4, 3), (128, 4, 3), (64, 8, 4), (32, 4, 4)]:
        timed(f"read_ceiling_b{block}_w{warps}_s{stages}", nbytes=2 * slots * kept * 32 * 128 * 2 / 1e9,
              fn=lambda: _read_kernel[(slots, 32)](k, v, sink, kept, k.stride(0), k.stride(1), k.stride(2), D=128,
                                                   BLOCK=block, num_warps=warps, num_stages=stages))
    for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        with sdpa_kernel([backend]):
            timed(str(backend), lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.088))
    for name, value in res.items():
        print(name, value)
    return res


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", default="128,280")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    Path(args.out).write_text(json.dumps({s: main(s) for s in map(int, args.slots.split(","))}, indent=1))
