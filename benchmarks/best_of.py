"""``generation.best_of``'s decoding cost: k candidates per sample, each scored, four ways in one process.

  hf_dynamic+score  HF ``generate`` with the per-sample sampler, then one teacher-forced scoring forward (session 40's
                    demo path: ``generation.best_of`` with the default cache)
  hf_dynamic+logits the same ``generate`` returning its step logits (``output_logits``), scored from them: plain
                    transformers at its best for this (no second forward)
  static+score      ``decode_static`` prefilling every row, then the same scoring forward
  ours              ``decode_static`` prefilling each sample once for its k candidates, scores from its own steps
                    (``return_logprobs``; the demo's path since session 41)

One prebuilt batch of ``--samples`` x ``--k`` rows (a sample's candidates: its prompt and image, their own seeds),
sampled at temperature 0.9 and forced to ``--new-tokens``; compile and warm-up excluded (one untimed run each).
Checks that ours writes static+score's tokens and scores (in bf16 no two paths agree on most rows: random weights
give near-flat logits, and a rounding difference flips a sampled token; ``--fp32`` to compare them). On the GPU:
LLaVA-1.5-7B shape, random bf16 weights;
``--tiny``: the shipped Genixer_S mini on a CPU, fp32, a mini-world image (no GPU figure from it).

    python -m benchmarks.best_of [--samples 16 --k 8 --new-tokens 64] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import LogitsProcessorList

from genixer.generation.decoding import decode_static
from genixer.generation.sampling import PerSampleSampler
from genixer.generation.scoring import output_logprobs


def build(tiny: bool):
    """(model, codec, prompt ids, one image's pixels, device)."""
    if tiny:
        from PIL import Image

        from genixer.backbones.llava import PretrainedLlava
        from genixer.tasks import CommonVQA, TemplatePool
        from genixer.tasks.templates import TEMPLATES_DIR

        root = Path(__file__).resolve().parents[1]
        backbone = PretrainedLlava(str(root / "checkpoints/genixer_s_mini"), dtype="float32")
        codec = backbone.codec()
        task = CommonVQA("rec", "\nThis is a Referring Expression Comprehension (REC) task.",   # REC's prompt
                         TemplatePool(TEMPLATES_DIR / "generic_instructions.json"))
        image = Image.effect_noise((130, 110), 60).convert("RGB")
        return backbone.build(codec).eval(), codec, codec.encode_prompt(task.instruction("0:0")[1]), \
            codec.image(image), "cpu"
    from benchmarks.llava7b import build_llava_7b

    model, codec, task = build_llava_7b()
    return model, codec, codec.encode_prompt(task.instruction("0:0")[1]), None, "cuda"


def timed(fn, device: str) -> tuple[float, object]:
    fn()   # warm-up (kernel selection, allocator)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--fp32", action="store_true", help="the GPU model in fp32: the paths' tokens comparable")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    torch.manual_seed(0)
    model, codec, prompt, image, device = build(args.tiny)
    if args.fp32:
        model.float()
    dtype = next(model.parameters()).dtype
    rows = args.samples * args.k
    ids = prompt[None].repeat(rows, 1).to(device)
    mask = torch.ones_like(ids)
    if image is None:
        images = torch.randn(args.samples, 3, 336, 336, device=device, dtype=dtype)
    else:
        images = torch.stack([image + 0.01 * s for s in range(args.samples)]).to(device, dtype)
    pixels = images.repeat_interleave(args.k, 0)
    tok = codec.tokenizer
    eos, pad, new = tok.eos_token_id, tok.pad_token_id, args.new_tokens
    seeds = list(range(rows))
    image_token = model.config.image_token_id   # random weights may sample it; a scoring forward would read it as
    # an image place: kept out, as a trained generator keeps it out

    def sampler():
        draw = PerSampleSampler(seeds, ids.shape[1], temperature=0.9)

        def process(prefix, scores):
            scores[:, image_token] = float("-inf")
            return draw(prefix, scores)
        return process
    prompts = list(ids)

    def score(out):
        return output_logprobs(model, prompts, pixels, list(out), eos, pad)

    def generate(**extra):   # HF generate with the per-sample sampler, forced to ``new`` tokens
        return model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=new,
                              min_new_tokens=new, do_sample=False, pad_token_id=pad, eos_token_id=eos,
                              logits_processor=LogitsProcessorList([sampler()]), **extra)

    def hf():
        out = generate()[:, ids.shape[1]:]
        return out, score(out)

    def hf_logits():   # HF's own step logits instead of a scoring forward
        out = generate(output_logits=True, return_dict_in_generate=True)
        chosen = out.sequences[:, ids.shape[1]:]
        logp = torch.stack([torch.log_softmax(step.float(), -1) for step in out.logits], 1)
        return chosen, logp.gather(-1, chosen[..., None])[..., 0].sum(-1)

    def static():
        out = decode_static(model, ids, mask, pixels, new, eos, pad, new, sampler(), share_prefill=False)
        return out, score(out)

    def ours():
        return decode_static(model, ids, mask, pixels, new, eos, pad, new, sampler(), return_logprobs=True)

    results, outputs = {}, {}
    for name, fn in (("hf_dynamic+score", hf), ("hf_dynamic+logits", hf_logits), ("static+score", static), ("ours", ours)):
        seconds, outputs[name] = timed(fn, device)
        results[name] = {"seconds": round(seconds, 3), "candidates_per_s": round(rows / seconds, 2)}
        print(name, results[name], flush=True)
    (ref, ref_scores), (got, got_logp) = outputs["static+score"], outputs["ours"]
    same = (ref == got).all(-1)
    gap = max((abs(s - g) for (s, _), g, e in zip(ref_scores, got_logp.tolist(), same.tolist()) if e), default=None)
    check = {"rows_with_static_tokens": int(same.sum()), "rows": rows, "max_score_gap": gap,
             "rows_with_hf_tokens": int((outputs["hf_dynamic+score"][0] == got).all(-1).sum())}
    ratios = {f"ours_vs_{k}": round(results[k]["seconds"] / results["ours"]["seconds"], 2)
              for k in ("hf_dynamic+score", "hf_dynamic+logits", "static+score")}
    print(json.dumps({**check, **ratios}), flush=True)
    name = ("cpu_tiny" if args.tiny else torch.cuda.get_device_name().replace(" ", "_")) + ("_fp32" if args.fp32 else "")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, f"best_of_{name}.json").write_text(json.dumps(
        {"device": name, "samples": args.samples, "k": args.k, "new_tokens": new, "prompt_tokens": int(ids.shape[1]),
         "dtype": str(dtype), "results": results, "ratios": ratios, "check": check}, indent=1) + "\n")


if __name__ == "__main__":
    with torch.inference_mode():
        main()
