"""The GPU's matmul rate and copy bandwidth in a burst and under sustained load, and the engine's limit with each.

The limits in ``engine.py``'s rows and in the generate manifest take the matmul rate and copy bandwidth from a burst
of ~10 ms (``genixer.runs.roofline.device_limits``). A generation run keeps the GPU busy for minutes; on an H200 at
its 700 W cap the clocks then fall (session 46 saw 1,400-1,500 MHz of 1,980 through a run's prefill-heavy part). This
measures both: the burst, then ``--seconds`` of the prefill's matmuls (one layer's four, a 16-prompt chunk) and of
1 GiB device copies, per second, with the power and SM clock that ``nvidia-smi`` reports meanwhile; and the greedy
forced-128 serial limit at LLaVA-1.5-7B shape (``engine.py``'s formula, 281 slots, 628-token prompts) with each.

    python -m benchmarks.sustained --out benchmarks/results
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import torch

from benchmarks.engine import limits
from benchmarks.llava7b import build_llava_7b
from benchmarks.overlap import prefill_matmuls
from genixer.runs.roofline import device_limits


def gpu_state() -> dict:
    """Power (W) and SM clock (MHz) now, from nvidia-smi (empty where it is missing)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=power.draw,clocks.sm", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=10).stdout.split(",")
        return {"power_W": float(out[0]), "sm_MHz": int(out[1])}
    except Exception:  # noqa: BLE001 - the rates stand without it
        return {}


def per_second(fn, work: float, seconds: int) -> list[dict]:
    """``fn`` run back to back for ``seconds``: each second's ``work`` units per second, with the GPU's state."""
    out = []
    for _ in range(seconds):
        torch.cuda.synchronize()
        start, calls = time.perf_counter(), 0
        while time.perf_counter() - start < 1.0:
            for _ in range(8):
                fn()
            calls += 8
            torch.cuda.synchronize()
        out.append({"rate": work * calls / (time.perf_counter() - start), **gpu_state()})
    return out


def serial_limit(model, counts: dict, flops: float, bandwidth: float, slots: int = 281, prompt: float = 627.8) -> float:
    row = {"slots": slots, "req_per_s": 0.0}
    limits(row, {"prompt_tokens_mean": prompt}, torch.full((1,), 128), *counts.values(), flops, bandwidth, model)
    return row["limit_req_per_s_serial"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    model = build_llava_7b("meta")[0]
    counts = {"lm": sum(p.numel() for p in model.get_decoder().parameters()) + model.get_output_embeddings().weight.numel(),
              "vision": sum(p.numel() for p in model.model.vision_tower.parameters()),
              "all": sum(p.numel() for p in model.parameters())}
    burst = device_limits()
    result = {"gpu": burst["device"], "idle": gpu_state(), "burst_TFLOPs": round(burst["matmul_flops"] / 1e12, 1),
              "burst_copy_GBps": round(burst["copy_bytes_per_s"] / 1e9)}
    matmuls, flops = prefill_matmuls(16 * 628)
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    result["matmul_per_second"] = per_second(matmuls, flops / 1e12, args.seconds)
    result["copy_per_second"] = per_second(lambda: dst.copy_(src), 2 * src.numel() / 1e9, args.seconds)
    last = args.seconds // 3   # the last third: the clocks have settled
    sustained_flops = 1e12 * sum(s["rate"] for s in result["matmul_per_second"][-last:]) / last
    sustained_bw = 1e9 * sum(s["rate"] for s in result["copy_per_second"][-last:]) / last
    result.update(sustained_TFLOPs=round(sustained_flops / 1e12, 1), sustained_copy_GBps=round(sustained_bw / 1e9),
                  greedy_limit_req_per_s_serial_burst=serial_limit(model, counts, burst["matmul_flops"], burst["copy_bytes_per_s"]),
                  greedy_limit_req_per_s_serial_sustained=serial_limit(model, counts, sustained_flops, sustained_bw))
    print(json.dumps(result, indent=1))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = f"sustained_{result['gpu'].replace(' ', '_')}{'_' + args.tag if args.tag else ''}.json"
    Path(args.out, name).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
