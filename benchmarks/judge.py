"""Judge benchmark at Fuyu-8B shape (random weights, bf16), baseline in the same process.

(a) the original's loop (docs/original.md §4): per item PIL load, FuyuProcessor, sampled ``generate`` (top-k 10,
top-p 0.95, scores kept) at batch 1, then its probability from ``compute_transition_scores``. The original
allows up to 10 new tokens and stops at EOS; a trained judge answers "Yes"/"No" + EOS, but random weights
never emit EOS, so an uncapped baseline would pay 10 decode steps a real judge does not. The baseline is
therefore forced to exactly ``--reference-tokens`` (default 2: the answer + EOS) new tokens
(min_new_tokens = max_new_tokens), the fair length; (b) our filter stage end to end: ItemDataset in
DataLoader workers, FilterModule, Lightning predict (bf16-true), shard writer; (c) the model forward alone
on a prebuilt batch (the GPU-only ceiling of (b)). Both (a) and (b) run the same bf16 model (the original
ran fp32). Prints judgements/s and writes judge_<gpu>.json to --out.

    python -m benchmarks.judge --items 2048 --batch-size 64
    python -m benchmarks.judge --tiny     # CPU smoke test: a small model, a few items, no result file
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import lightning as L
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from transformers import FuyuForCausalLM

from benchmarks.timing import Stopwatch
from genixer.runs.precision import fp32_rotary
from genixer.filtering.judge import FUYU_PATCHES, FUYU_PROMPT, FuyuJudge, compile_decoder_layers
from genixer.filtering.scorer import ItemCollator, ItemDataset, to_device
from genixer.miniworld.models.tiny_fuyu import fuyu_config, fuyu_processor
from genixer.runs.shards import ShardWriter
from genixer.filtering.module import FilterModule

# Fuyu-8B shapes (fuyu_config adds its rotary embedding: theta 25000 on half the head dims).
FUYU_8B = {"vocab_size": 262144, "hidden_size": 4096, "intermediate_size": 16384, "num_hidden_layers": 36,
           "num_attention_heads": 64, "hidden_act": "relu2", "qk_layernorm": True, "patch_size": 30, "num_channels": 3}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
QA = [("What color is the large star in the upper left of the image?", "The large star is red."),
      ("How many circles are there?", "three"),
      ("What is the small object next to the blue square made of, and what is it used for?",
       "It is a wooden spoon, used for stirring soup in the kitchen."),
      ("Is there a dog in the picture?", "no")]
# The original's sampling settings; its length (up to 10 tokens, EOS ends) is replaced by --reference-tokens.
ORIGINAL_SAMPLING = {"do_sample": True, "top_p": 0.95, "top_k": 10, "return_dict_in_generate": True,
                     "output_scores": True}


def original_probability(model: nn.Module, out) -> float:
    """``getavgjointprob``: the product over all n new tokens, but the (n-1)-th root (docs/original.md §4)."""
    p = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0].float().exp()
    return p.prod().item() ** (1 / (len(p) - 1))


def write_rows(folder: Path, n: int, height: int, width: int) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.effect_noise((width, height), 40 + i % 50).convert("RGB").save(folder / f"{i:05d}.jpg", quality=90)
    return [{"id": f"{i}/common_vqa/0", "image": f"{i:05d}.jpg", "task": "common_vqa", "status": "ok", "family": "common_vqa",
             "qa_pairs": [dict(zip(("question", "answer"), QA[i % len(QA)]))]} for i in range(n)]


def sync(device: str) -> float:
    """Wait for queued GPU work; the time after it."""
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def rate(n: int, start: float, device: str) -> float:
    return n / (sync(device) - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1024)
    parser.add_argument("--reference", type=int, default=32, help="items for the batch-1 original loop")
    parser.add_argument("--reference-tokens", type=int, default=2,
                        help="new tokens the batch-1 original loop generates, exactly (2: Yes/No + EOS)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=448, help="target input length (image rows are sized to it)")
    parser.add_argument("--compile", action="store_true", help="compile the decoder layers for (b) and (c) (the "
                        "eager forward is timed first); (b)'s first batch then includes the compile")
    parser.add_argument("--tiny", action="store_true", help="a small model on any device (smoke test)")
    parser.add_argument("--work", default="/tmp/genixer_judge_bench")
    parser.add_argument("--tag", default="", help="result file suffix: judge_<gpu>_<tag>.json")
    parser.add_argument("--out", default=None, help="result folder (default: benchmarks/results; --tiny: none)")
    args = parser.parse_args()
    if args.tiny:
        args.items, args.reference, args.batch_size, args.workers = min(args.items, 48), min(args.reference, 4), 16, 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)

    corpus = [FUYU_PROMPT.format(f"Question: {q} Answer: {a}") + "\nYes\nNo Yes No yes no" for q, a in QA] * 20
    processor = fuyu_processor(corpus, vocab_size=1000)
    processor.save_pretrained(work / "judge")
    scorer = FuyuJudge(str(work / "judge"))
    # Size the image so that patches + newlines + text come to about --tokens: 14 patches (420 px) a row.
    probe = scorer.items(write_rows(work / "probe", 1, 30, 420)[0])[0]
    text_tokens = len(scorer.load(probe, work / "probe")["input_ids"]) - 15  # one row: 14 patches + |NEWLINE|
    rows = max(1, round((args.tokens - text_tokens) / 15))
    items = [it for row in write_rows(work / "images", args.items, 30 * rows, 420) for it in scorer.items(row)]

    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = FuyuForCausalLM(fuyu_config(processor, **(TINY if args.tiny else FUYU_8B))).eval()
    torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())

    # (a) the original: one item at a time, sampled generation with scores, its probability, at the
    # length a trained judge answers with (exactly --reference-tokens new tokens).
    generation = dict(ORIGINAL_SAMPLING, max_new_tokens=args.reference_tokens, min_new_tokens=args.reference_tokens)
    for item in items[:2]:  # warm-up
        original_step(model, processor, scorer, item, work / "images", device, generation)
    start = sync(device)
    new_tokens = {original_step(model, processor, scorer, item, work / "images", device, generation)[1]
                  for item in items[: args.reference]}
    reference = rate(args.reference, start, device)
    if new_tokens != {args.reference_tokens}:
        raise RuntimeError(f"the reference loop generated {new_tokens} tokens, not {args.reference_tokens}")

    # (c) is timed on one prebuilt batch: the eager forward here, the compiled one after (b)
    inputs = ItemCollator(scorer)([ItemDataset(scorer, items[:args.batch_size], work / "images")[i]
                                   for i in range(args.batch_size)])["inputs"]
    forward, logp = {}, {}
    forward["eager"], logp["eager"] = forward_rate(model, inputs, device)
    if args.compile:   # the truth both bf16 forwards round differently from: the same weights in fp32 (exact cast)
        _, logp["fp32"] = forward_rate(model.float(), inputs, device, 1)
        model.to(torch.bfloat16)
        fp32_rotary(model)   # .to() cast RoPE's frequencies too (as Lightning's bf16-true does; FilterModule restores them)
        compile_decoder_layers(model)

    # (b) our stage: workers load and preprocess, FilterModule scores, the shard writer appends lines.
    module = FilterModule([scorer])
    module.models = nn.ModuleList([model])
    stopwatch = Stopwatch()
    loader = DataLoader(ItemDataset(scorer, items, work / "images"), batch_size=args.batch_size,
                        num_workers=args.workers, collate_fn=ItemCollator(scorer), pin_memory=device == "cuda")
    trainer = L.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, precision="bf16-true",
                        logger=False, callbacks=[ShardWriter(work / "run/shards"), stopwatch], enable_model_summary=False,
                        enable_progress_bar=False)
    start = sync(device)
    trainer.predict(module, loader, return_predictions=False)
    lines = [json.loads(x) for x in (work / "run/shards/rank0.jsonl").read_text().splitlines()]
    pipeline = rate(len(lines), start, device)

    # (c) the forward alone on one prebuilt batch (FilterModule let go of the model at the end of predict).
    model.to(device)
    if args.compile:
        forward["compiled"], logp["compiled"] = forward_rate(model, inputs, device)
    forward_best = max(forward.values())
    lengths = inputs["attention_mask"].sum(-1).float()
    result = {
        "gpu": torch.cuda.get_device_name() if device == "cuda" else "cpu", "tiny": args.tiny, "params": params,
        "input_tokens_mean": round(lengths.mean().item(), 1), "input_tokens_max": int(lengths.max()),
        "image_px": [30 * rows, 420], "items": len(lines), "scored": sum("p_yes" in x for x in lines),
        "batch_size": args.batch_size, "workers": args.workers, "reference_items": args.reference,
        "reference_new_tokens": args.reference_tokens,
        "reference": f"original batch-1 sampled generate + compute_transition_scores, exactly {args.reference_tokens} "
                     "new tokens (a trained judge's Yes/No + EOS; the original caps at 10 and stops at EOS)",
        "reference_judgements_per_s": round(reference, 2), "pipeline_judgements_per_s": round(pipeline, 1),
        "speedup": round(pipeline / reference, 1), "compiled_layers": args.compile,
        "forward_judgements_per_s": round(forward_best, 1),
        **{f"forward_{k}_judgements_per_s": round(v, 1) for k, v in forward.items()},
        "pipeline_fraction_of_forward": round(pipeline / forward_best, 3),
        **({f"{a}_vs_{b}_{k}": v for a, b in (("compiled", "eager"), ("eager", "fp32"), ("compiled", "fp32"))
            for k, v in agreement(logp[a], logp[b]).items()} if args.compile else {}),
        "first_batch_s": round(stopwatch.first_batch_seconds(), 2),
        "steady_judgements_per_s": round(stopwatch.steady_rate() or 0.0, 1),
    }
    print("\n".join(f"{k:>30}: {v}" for k, v in result.items()))
    out = Path(args.out) if args.out else (None if args.tiny else Path(__file__).parent / "results")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"judge_{result['gpu'].replace(' ', '_')}{'_' + args.tag if args.tag else ''}.json").write_text(json.dumps(result, indent=2))


def agreement(a: torch.Tensor, b: torch.Tensor) -> dict:
    """How far two forwards' next-token log-probs are apart: max and mean |difference|, argmax agreement."""
    d = (a - b).abs()
    return {"max_abs_logprob": round(d.max().item(), 4), "mean_abs_logprob": round(d.mean().item(), 5),
            "argmax_equal": round((a.argmax(-1) == b.argmax(-1)).float().mean().item(), 3)}


def forward_rate(model: nn.Module, inputs: dict, device: str, repeats: int = 5) -> tuple[float, torch.Tensor]:
    """Judgements/s of the model forward alone on the collated ``inputs`` (in the model's dtype; warm-up call
    untimed), and its next-token log-probs."""
    batch = to_device(inputs, torch.device(device), next(model.parameters()).dtype)
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(**batch, position_ids=positions, logits_to_keep=1, use_cache=False).logits  # warm-up, compile
        start = sync(device)
        for _ in range(repeats):
            model(**batch, position_ids=positions, logits_to_keep=1, use_cache=False)
    return rate(repeats * len(batch["input_ids"]), start, device), logits[:, -1].float().log_softmax(-1)


def original_step(model, processor, scorer, item: dict, image_dir: Path, device: str,
                  generation: dict) -> tuple[float, int]:
    """One item as the original did it: decode, preprocess, sample, score; (probability, new tokens)."""
    image = Image.open(image_dir / item["image"]).convert("RGB")
    inputs = processor(text=scorer.text(item), images=image, return_tensors="pt").to(device)
    inputs[FUYU_PATCHES] = inputs[FUYU_PATCHES].to(torch.bfloat16)
    out = model.generate(**inputs, pad_token_id=processor.tokenizer.eos_token_id, **generation)
    new = out.sequences[:, inputs["input_ids"].shape[1]:]
    processor.batch_decode(new, skip_special_tokens=True)
    return original_probability(model, out), new.shape[1]


if __name__ == "__main__":
    main()
