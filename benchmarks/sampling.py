"""The sampled decode step's token choice, piece by piece, on the GPU (issue 14: sampled vs greedy).

The engine's step ends in ``DecodeStep.choose``: greedy is one argmax; sampled adds the sampler's noise (counter or
mt19937), temperature, top-p (HF's warper: a sort of the whole vocabulary) and the argmax of scores + noise. Each
piece runs here at the engine's shape (``--rows`` slots x the 7B vocabulary, fp32 scores from bf16 logits), captured
in a CUDA graph as inside the engine's step, and timed over replays: microseconds per step.

    python -m benchmarks.sampling --rows 281
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import torch

from benchmarks.engine_checks import gpu_us
from genixer.generation.decode_step import DecodeStep
from genixer.generation.counter import counter_gumbel
from genixer.generation.sampling import PerSampleSampler, mt19937_gumbel_rows


def graph_us(fn, reps: int = 50) -> float:
    """Microseconds per replay of ``fn`` captured in a CUDA graph (after a warm-up on a side stream)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    return gpu_us(graph.replay, reps)


def chooser(sampler: PerSampleSampler | None, eos: int = 2):
    """``DecodeStep.choose`` of a step with this sampler (forced length: EOS barred), without a model."""
    step = SimpleNamespace(min_new=128, eos=eos, sampler=sampler)
    return lambda *args: DecodeStep.choose(step, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=281)
    parser.add_argument("--vocab", type=int, default=32064)
    parser.add_argument("--logit-std", type=float, default=1.28, help="the 7B shape's random head: 0.02 x sqrt(4096)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    logits = (args.logit_std * torch.randn(args.rows, args.vocab, generator=gen)).bfloat16().cuda()
    seeds = torch.randint(0, 2**62, (args.rows,), generator=gen).cuda()
    steps = torch.randint(1, 128, (args.rows,), generator=gen).cuda()
    scores = logits.float()
    out = {"gpu": torch.cuda.get_device_name(), "rows": args.rows, "vocab": args.vocab, "logit_std": args.logit_std}
    samplers = {noise: PerSampleSampler([], 0, temperature=0.2, top_p=0.9, noise=noise) for noise in ("counter", "mt19937")}
    counter = samplers["counter"]
    noise = counter.gumbel(seeds, steps, scores)
    pieces = {
        "greedy_choose": lambda: chooser(None)(logits, steps, seeds, None),
        "counter_noise": lambda: counter_gumbel(seeds, steps, args.vocab),
        "mt19937_noise": lambda: mt19937_gumbel_rows(seeds, steps, args.vocab),
        "temperature": lambda: scores / 0.2,
        "sort": lambda: torch.sort(scores),
        "warp_temperature_top_p": lambda: counter.warp(scores),
        "sample_scores_given_noise": lambda: counter.sample_scores(scores, noise),
        "sampled_choose_counter": lambda: chooser(counter)(logits, steps, seeds, None),
        "sampled_choose_mt19937": lambda: chooser(samplers["mt19937"])(logits, steps, seeds, None),
        # candidates for a faster choice (timing only)
        "topk64": lambda: torch.topk(scores, 64),
        "topk256": lambda: torch.topk(scores, 256),
        "counter_noise_compiled": lambda: compiled_counter(seeds, steps, args.vocab),
        "sample_scores_compiled": lambda: compiled_sample_scores(scores, noise),
        "logsumexp": lambda: torch.logsumexp(scores / 0.2, 1),
    }
    compiled_counter = torch.compile(counter_gumbel, dynamic=False)
    compiled_sample_scores = torch.compile(counter.sample_scores, dynamic=False)
    with torch.inference_mode():
        for name, fn in pieces.items():
            try:
                out[f"{name}_us"] = graph_us(fn)
            except Exception as err:  # noqa: BLE001 - report it, time the rest
                out[f"{name}_us"] = f"{type(err).__name__}: {str(err)[:300]}"
            print(name, out[f"{name}_us"], flush=True)
        kept = (counter.warp(scores) > float("-inf")).sum(1).float()
        eager, fused = counter_gumbel(seeds, steps, args.vocab), compiled_counter(seeds, steps, args.vocab)
        out["counter_noise_compiled_max_abs"] = float((eager - fused).abs().max())
        out["counter_noise_compiled_bits_equal"] = bool(torch.equal(eager, fused))
        eager, fused = counter.sample_scores(scores, noise), compiled_sample_scores(scores, noise)
        out["sample_scores_compiled_argmax_equal"] = bool(torch.equal(eager.argmax(1), fused.argmax(1)))
        out["top_p_kept_tokens"] = {"mean": round(float(kept.mean()), 1), "max": int(kept.max())}
    print(json.dumps(out), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = f"sampling_{out['gpu'].replace(' ', '_')}{'_' + args.tag if args.tag else ''}.json"
    Path(args.out, name).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
