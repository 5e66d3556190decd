"""The prefill's attention at 7B shape, by SDPA kernel, with and without a prompt prefix already in the cache.

One layer, ``--rows`` prompts of ``--length`` tokens (32 heads of 128, bf16): causal attention over the whole prompt
(flash, the engine's kernel; cuDNN's; the memory-efficient one), and the prompt's last ``length - prefix`` tokens
attending to the whole (causal from the lower right, ``causal_lower_right``: the engine's prefill after a shared
prefix). Microseconds, TFLOP/s, and the largest difference from fp32 math attention.

    python -m benchmarks.prefill_attention --out benchmarks/results/prefill_attention.json
"""
import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

from benchmarks.engine_checks import gpu_us


def main(rows: int, length: int, prefixes: list[int]) -> dict:
    q, k, v = (torch.randn(rows, 32, length, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    res = {"rows": rows, "length": length}

    def timed(name: str, queries: int, fn, want: torch.Tensor) -> None:
        flops = 4 * rows * 32 * 128 * sum(length - queries + i + 1 for i in range(queries))   # causal: kept pairs
        try:
            got = fn()
            us = gpu_us(fn, 20)
            res[name] = {"us": us, "TFLOPs": round(flops / us / 1e6, 1), "max_abs_err": float((got.float() - want).abs().max())}
        except Exception as err:  # noqa: BLE001 - a kernel that does not serve is a result
            res[name] = f"{type(err).__name__}: {err}"[:200]

    with sdpa_kernel([SDPBackend.MATH]):
        want = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        with sdpa_kernel([backend]):
            timed(f"whole_{backend.name.lower()}", length, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), want)
    for n in prefixes:   # the queries after a cached prefix of n tokens
        tail = q[:, :, n:]
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            with sdpa_kernel([backend]):
                timed(f"after_{n}_{backend.name.lower()}", length - n, want=want[:, :, n:], fn=lambda: F.scaled_dot_product_attention(
                    tail, k, v, attn_mask=causal_lower_right(length - n, length)))
    for name, value in res.items():
        print(name, value)
    return res


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--length", type=int, default=628)
    parser.add_argument("--prefixes", default="27,38")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = {"gpu": torch.cuda.get_device_name(), **main(args.rows, args.length, [int(n) for n in args.prefixes.split(",")])}
    Path(args.out).write_text(json.dumps(result, indent=1))
