"""Where generation time goes at LLaVA-1.5-7B shape: prefill vs decode per cache strategy, plus a kernel profile.

Runs on one prebuilt batch (no data pipeline) so only the model's work is timed:
  hf_dynamic  HF ``generate`` (DynamicCache: concatenates every layer's K/V at every step)
  hf_static   HF ``generate(cache_implementation="static", disable_compile=True)``
  ours        ``genixer.generation.decoding.decode_static`` (static cache, no per-step host sync)
Prints seconds per batch, prefill seconds, decode ms/step and the decode-step roofline, then the
top CUDA kernels of a few decode steps of ``ours``; writes benchmarks/results/decoding_<gpu>.json.

    python benchmarks/decoding.py --batch-sizes 96,128
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks.llava7b import (
    NEW_TOKENS,
    build_llava_7b,
    copy_bandwidth,
)
from genixer.generation.decoding import decode_static
from genixer.runs.roofline import kv_bytes_per_token


def timed(fn, repeats: int) -> float:
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="96,128")
    parser.add_argument("--strategies", default="hf_dynamic,hf_static,ours")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    model, codec, task = build_llava_7b()
    tok = codec.tokenizer
    _, instruction = task.instruction("0:0")
    prompt = codec.encode_prompt(instruction)
    params = sum(p.numel() for p in model.parameters())
    bandwidth = copy_bandwidth()
    kv = kv_bytes_per_token(model.config.text_config)
    rows = []
    for batch_size in map(int, args.batch_sizes.split(",")):
        ids = prompt[None].repeat(batch_size, 1).cuda()
        mask = torch.ones_like(ids)
        pixels = torch.randn(batch_size, 3, 336, 336, device="cuda", dtype=torch.bfloat16)
        common = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        runs = {
            "hf_dynamic": lambda: model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, **common),
            "hf_static": lambda: model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, **common,
                                                cache_implementation="static", disable_compile=True),
            "ours": lambda: decode_static(model, ids, mask, pixels, NEW_TOKENS, tok.eos_token_id, tok.pad_token_id,
                                          min_new_tokens=NEW_TOKENS),
        }
        prefill = timed(lambda: model(input_ids=ids, attention_mask=mask, pixel_values=pixels, logits_to_keep=1), args.repeats)
        step_bytes = params * 2 + batch_size * kv * (len(prompt) + NEW_TOKENS / 2)
        roofline_step = step_bytes / bandwidth
        for name in args.strategies.split(","):
            seconds = timed(runs[name], args.repeats)
            row = {"strategy": name, "batch_size": batch_size, "prompt_tokens": len(prompt),
                   "seconds_per_batch": round(seconds, 3), "req_per_s": round(batch_size / seconds, 2),
                   "prefill_s": round(prefill, 3), "decode_ms_per_step": round(1e3 * (seconds - prefill) / NEW_TOKENS, 2),
                   "roofline_decode_ms_per_step": round(1e3 * roofline_step, 2),
                   "roofline_req_per_s_decode_only": round(batch_size / (NEW_TOKENS * roofline_step), 2),
                   "roofline_req_per_s_with_prefill": round(batch_size / (NEW_TOKENS * roofline_step + prefill), 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        model.__dict__.pop("_cache", None)  # HF keeps the last static cache on the model
        torch.cuda.empty_cache()

    # A kernel profile of ``ours`` at the last batch size, 16 decode steps.
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        decode_static(model, ids, mask, pixels, 16, tok.eos_token_id, tok.pad_token_id, min_new_tokens=16)
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60)
    print(table)
    name = torch.cuda.get_device_name().replace(" ", "_")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, f"decoding_{name}.json").write_text(json.dumps(
        {"gpu": torch.cuda.get_device_name(), "params": params, "copy_bandwidth_GBps": round(bandwidth / 1e9),
         "new_tokens": NEW_TOKENS, "runs": rows, "profile_ours_16_steps": table}, indent=2))


if __name__ == "__main__":
    with torch.inference_mode():
        main()
