"""Generation benchmark at LLaVA-1.5-7B shape (random weights, bf16), baseline in the same process.

(a) the reference loop of the original: per sample PIL load, preprocess, HF ``generate`` batch 1;
(b) our pipeline end to end: PromptDataset in DataLoader workers, Lightning predict, shard writer,
merge. Both force 128 new tokens. Prints req/s, output tokens/s, (b)/(a) and (b) against the HBM
roofline (weights + KV-cache bytes per decode step over the measured copy bandwidth), and writes
the JSON result to benchmarks/results/generation_<gpu>.json.

    python benchmarks/generation.py --images 512 --batch-size 96
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
from torch.utils.data import DataLoader

from genixer.backbones.conversation import Conversation
from genixer.backbones.llava import TinyLlava
from genixer.data.images import load_rgb
from genixer.generation.queries import PromptCollator, PromptDataset, load_queries
from genixer.generation.writer import ShardWriter, merge
from genixer.modules.generator import GeneratorModule
from genixer.tasks import CommonVQA, TemplatePool
from genixer.tasks.templates import TEMPLATES_DIR

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
NEW_TOKENS = 128
LLAVA_7B = dict(  # CLIP ViT-L/14-336 + Vicuna-7B (LLaVA-1.5-7B shapes)
    image_size=336, vocab_size=4000, max_length=2048,
    vision=dict(patch_size=14, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16),
    text=dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
              num_key_value_heads=32),
)


def copy_bandwidth(gib: int = 4) -> float:
    """Device-to-device copy, bytes read + written per second (the roofline's bandwidth)."""
    src = torch.empty(gib << 30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    torch.cuda.synchronize()
    return 2 * src.numel() * 10 / (time.perf_counter() - start)


def write_images(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.effect_noise((640, 480), 40 + i % 50).convert("RGB").save(folder / f"{i:05d}.jpg", quality=90)
    queries = folder / "queries.jsonl"
    queries.write_text("".join(json.dumps({"id": i, "image": f"{i:05d}.jpg"}) + "\n" for i in range(n)))
    return queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--reference", type=int, default=4, help="samples for the batch-1 reference loop")
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--cache", default="dynamic", choices=["dynamic", "static"],
                        help="KV cache of our pipeline (static compiles the decode step); the reference stays dynamic")
    parser.add_argument("--work", default="/tmp/genixer_bench")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    work = Path(args.work)
    queries = write_images(work / "images", args.images)

    pool = TemplatePool(TEMPLATES_DIR / "generic_instructions.json")
    task = CommonVQA("common_vqa", "\nThis is the Common VQA task.", pool)
    backbone = TinyLlava(Conversation("vicuna_v1", SYSTEM), **LLAVA_7B)
    codec = backbone.codec([SYSTEM, *pool.templates, task.suffix] * 10)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = backbone.build(codec).eval()
    torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())
    gen = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
               pad_token_id=codec.tokenizer.pad_token_id, eos_token_id=codec.tokenizer.eos_token_id)

    # (a) the original's loop: one sample at a time.
    dataset = PromptDataset(load_queries(queries), work / "images", task, codec, 1, 0)
    prompt_len = len(dataset[0]["input_ids"])
    model.generate(input_ids=dataset[0]["input_ids"][None].cuda(), pixel_values=dataset[0]["pixel_values"][None].cuda().bfloat16(), **gen)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(args.reference):
        image = load_rgb(work / "images" / f"{i:05d}.jpg")
        _, instruction = task.instruction(f"0:{i}")
        ids = codec.encode_prompt(instruction)[None].cuda()
        model.generate(input_ids=ids, pixel_values=codec.image(image)[None].cuda().bfloat16(), **gen)
    torch.cuda.synchronize()
    ref_rps = args.reference / (time.perf_counter() - start)

    # (b) our pipeline: workers decode and preprocess, predict loop generates, writer appends shards.
    out = work / "run"
    shutil.rmtree(out, ignore_errors=True)
    ours = {k: v for k, v in gen.items() if k not in ("pad_token_id", "eos_token_id")}
    if args.cache == "static":
        ours["cache_implementation"] = "static"
    module = GeneratorModule(backbone, codec, generation=ours)
    module.model = model
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers,
                        collate_fn=PromptCollator(codec.tokenizer.pad_token_id), pin_memory=True)
    trainer = L.Trainer(accelerator="gpu", devices=1, precision="bf16-true", logger=False,
                        callbacks=[ShardWriter(out)], enable_model_summary=False)
    start = time.perf_counter()
    trainer.predict(module, loader, return_predictions=False)
    rows, counts = merge(out, task, {"generator": "random LLaVA-1.5-7B shape"})
    seconds = time.perf_counter() - start
    ours_rps = len(rows) / seconds

    # Roofline: every decode step reads all weights once plus each sequence's KV cache.
    bandwidth = copy_bandwidth()
    text = model.config.text_config
    kv_per_token = 2 * text.num_hidden_layers * text.num_key_value_heads * (text.hidden_size // text.num_attention_heads) * 2
    mean_context = prompt_len + NEW_TOKENS / 2
    step_bytes = params * 2 + args.batch_size * kv_per_token * mean_context
    roofline_rps = args.batch_size / (NEW_TOKENS * step_bytes / bandwidth)
    result = {
        "gpu": torch.cuda.get_device_name(), "params": params, "prompt_tokens": prompt_len, "new_tokens": NEW_TOKENS,
        "images": args.images, "batch_size": args.batch_size, "workers": args.workers, "cache": args.cache,
        "reference_req_per_s": round(ref_rps, 3), "reference_tok_per_s": round(ref_rps * NEW_TOKENS, 1),
        "pipeline_req_per_s": round(ours_rps, 2), "pipeline_tok_per_s": round(ours_rps * NEW_TOKENS, 1),
        "speedup": round(ours_rps / ref_rps, 1), "copy_bandwidth_GBps": round(bandwidth / 1e9),
        "roofline_req_per_s": round(roofline_rps, 2), "fraction_of_roofline": round(ours_rps / roofline_rps, 3),
        "rows": counts["samples"],
    }
    print("\n".join(f"{k:>22}: {v}" for k, v in result.items()))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name().replace(" ", "_")
    Path(args.out, f"generation_{name}_{args.cache}_b{args.batch_size}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
