"""What a run's throughput is compared to: the device's measured limits and a cost model of the workload.

Generation: each sample costs its prefill (2 x parameters x prompt tokens FLOPs, compute-bound) plus its
decode (per new token: the weights once per decode step, shared by the rows of that step, plus the sample's
own K/V cache, memory-bound). ``serial`` adds the two; ``overlap`` takes the larger (prefill and decode on
the GPU at once). Forward-only scorers (judge, CLIP) are compute-bound: 2 x parameters x tokens per item,
counted by the scorer on the batches it actually scored.
Limits are measured on the device (a bf16 matmul and a device-to-device copy), not taken from a spec sheet, in a
burst of ~10 ms each: a GPU held at its power cap over a long run computes slower (an H200's matmuls by ~18%,
``benchmarks/sustained.py``), so a long run's fraction of these limits understates how close it comes. Each limit
says so (``rates``).
"""
from __future__ import annotations

import functools
import time

import torch


BURST = ("burst: 50 bf16 4096-square matmuls, 20 1 GiB copies; a GPU at its power cap runs below these "
         "(an H200's matmuls ~18%: benchmarks/sustained.py)")


@functools.cache
def device_limits(index: int = 0) -> dict:
    """Measured bf16 matmul FLOP/s and copy bytes/s (read + write) of CUDA device ``index``."""
    device = torch.device("cuda", index)

    def rate(fn, repeats: int) -> float:
        fn()
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize(device)
        return repeats / (time.perf_counter() - start)

    a = torch.randn(4096, 4096, device=device, dtype=torch.bfloat16)
    flops = 2 * 4096**3 * rate(lambda: a @ a, 50)
    src = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    bandwidth = 2 * src.numel() * rate(lambda: dst.copy_(src), 20)
    return {"device": torch.cuda.get_device_name(device), "matmul_flops": flops, "copy_bytes_per_s": bandwidth,
            "rates": BURST}


def head_dim(text_config) -> int:
    return getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads


def kv_bytes_per_token(text_config, bytes_per_value: int = 2) -> int:
    """K and V of every layer for one token (``bytes_per_value``: 2 for bf16 / fp16)."""
    return 2 * text_config.num_hidden_layers * text_config.num_key_value_heads * head_dim(text_config) * bytes_per_value


def request_seconds(prefill_flops: float, new_tokens: float, token_flops: float, token_weight_bytes: float,
                    kv_bytes: float, limits: dict) -> tuple[float, float]:
    """(serial, overlapped) seconds of one request at the hardware's limits: the prefill's FLOPs; per new token the
    decode matmuls, the larger of their FLOPs and the token's share of the weights' bytes; all new tokens' K/V reads
    (``kv_bytes``). Serial: one after the other; overlapped: all FLOPs beside all bytes."""
    flops, bandwidth = limits["matmul_flops"], limits["copy_bytes_per_s"]
    matmuls = new_tokens * max(token_flops / flops, token_weight_bytes / bandwidth)
    serial = prefill_flops / flops + matmuls + kv_bytes / bandwidth
    overlap = max((prefill_flops + new_tokens * token_flops) / flops, (kv_bytes + new_tokens * token_weight_bytes) / bandwidth)
    return serial, overlap


def generation_limit(model, prompt_tokens: float, new_tokens: float, rows_per_step: int, limits: dict,
                     devices: int = 1) -> dict:
    """Samples per second the hardware allows for this model and workload (``devices`` GPUs of this kind)."""
    params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    kv = kv_bytes_per_token(model.config.get_text_config()) * new_tokens * (prompt_tokens + new_tokens / 2)
    serial, overlap = request_seconds(2 * params * prompt_tokens, new_tokens, 2 * params, weight_bytes / rows_per_step,
                                      kv, limits)
    return {"device": limits["device"], "devices": devices, "rates": limits.get("rates", "given"),
            "matmul_TFLOPs": round(limits["matmul_flops"] / 1e12, 1), "copy_GBps": round(limits["copy_bytes_per_s"] / 1e9),
            "prompt_tokens_mean": round(prompt_tokens, 1), "new_tokens_mean": round(new_tokens, 1),
            "rows_per_step": rows_per_step, "limit_samples_per_s_serial": round(devices / serial, 2),
            "limit_samples_per_s_overlap": round(devices / overlap, 2)}


def fraction(rate: float, limit: float) -> float:
    """``rate / limit`` to 3 significant digits (a tiny model's runs stand at 1e-4 of their limit, not at 0)."""
    return float(f"{rate / limit:.3g}")


def forward_limit(flops_per_item: float, limits: dict, devices: int = 1) -> dict:
    """Items per second of a compute-bound forward pass (``flops_per_item``: 2 x parameters x tokens)."""
    return {"device": limits["device"], "devices": devices, "rates": limits.get("rates", "given"),
            "matmul_TFLOPs": round(limits["matmul_flops"] / 1e12, 1), "GFLOPs_per_item": round(flops_per_item / 1e9, 2),
            "limit_items_per_s": round(devices * limits["matmul_flops"] / flops_per_item, 2)}
