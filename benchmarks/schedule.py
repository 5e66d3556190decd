"""The engine's scheduling alone, on a CPU: decode steps and busy rows per step for a forced-length workload.

Busy rows per decode step depend on the schedule (slots, prefill chunk, rounds), not on the model or the GPU: with
the shipped mini generator this gives the same ``mean_busy_rows`` as ``engine.py`` at 7B shape on an H200 (200.7
of 266 slots at 1,024 requests, forced 128). A cheap place to try a scheduling change before spending GPU time.

    python -m benchmarks.schedule --requests 1024 --slots 266
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image

from genixer.backbones.llava import PretrainedLlava
from genixer.generation.engine import DecodeEngine, Request

PROMPTS = ["Ask a question about the image and answer it.", "Where is it?", "Describe", "What?",
           "Tell me a long story about the image, please.", "Is there a red circle?"]


def schedule(requests: int, slots: int, new_tokens: int, prefill_rows: int, sync_every: int) -> dict:
    """Run ``requests`` forced-length requests through an engine of ``slots`` slots; its counts."""
    backbone = PretrainedLlava(str(Path(__file__).parents[1] / "checkpoints/genixer_l_mini"), dtype="float32")
    codec = backbone.codec()
    model = backbone.build(codec).eval()
    prompts = [codec.encode_prompt(p) for p in PROMPTS]
    pixels = [codec.image(Image.effect_noise((90, 80), 60).convert("RGB")) for _ in PROMPTS]
    tok = codec.tokenizer
    engine = DecodeEngine(model, max(map(len, prompts)), new_tokens, tok.eos_token_id, tok.pad_token_id,
                          min_new_tokens=new_tokens, slots=slots, prefill_rows=prefill_rows, sync_every=sync_every)
    engine.submit([Request(k, prompts[k % len(PROMPTS)], pixels[k % len(PROMPTS)]) for k in range(requests)])
    with torch.inference_mode():
        finished = engine.run()
    lengths = [int((ids != tok.pad_token_id).sum()) for _, ids in finished]
    steps = engine.stats["steps"]   # a row's first token comes from its prefill, the rest from decode steps
    return {"finished": len(finished), "lengths": sorted(set(lengths)), "decode_steps": steps,
            "busy_rows_per_step": (sum(lengths) - len(finished)) / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1024)
    parser.add_argument("--slots", type=int, default=266)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prefill-rows", type=int, default=16)
    parser.add_argument("--sync-every", type=int, default=8)
    args = parser.parse_args()
    start = time.perf_counter()
    out = schedule(args.requests, args.slots, args.new_tokens, args.prefill_rows, args.sync_every)
    print(f"{out['finished']} requests, {out['decode_steps']} decode steps, busy rows per step "
          f"{out['busy_rows_per_step']:.1f} of {args.slots} ({time.perf_counter() - start:.0f} s on this CPU)")

if __name__ == "__main__":
    main()
