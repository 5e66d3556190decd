"""Generation benchmark at LLaVA-1.5-7B shape (random bf16 weights), baseline in the same process.

(a) the reference loop of the original: per sample PIL load, preprocess, HF ``generate`` batch 1;
(b) our pipeline end to end: PromptDataset in DataLoader workers (prompts ordered by length), Lightning
predict, shard writer, merge. Both force 128 new tokens. Prints req/s, output tokens/s, (b)/(a) and (b)
against the HBM roofline (weights + KV-cache bytes per decode step over the measured copy bandwidth), and
writes the JSON result to benchmarks/results/. Under torchrun every rate counts all ranks' rows over the
wall time of all ranks (end to end: barrier to barrier; steady: each rank's batch times, gathered).

    python -m benchmarks.generation --images 768 --batch-size 96 --cache static
    torchrun --nproc-per-node 4 -m benchmarks.generation --images 3072 --reference 0 --cache static
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import lightning as L
import torch
from PIL import Image
from torch._dynamo.utils import counters
from torch.utils.data import DataLoader, Subset

from benchmarks.llava7b import (
    NEW_TOKENS,
    build_llava_7b,
    copy_bandwidth,
)
from benchmarks.timing import Stopwatch
from genixer.data.images import load_rgb
from genixer.generation.engine import compile_seconds
from genixer.generation.queries import PromptCollator, PromptDataset, load_queries
from genixer.generation.records import merge
from genixer.runs.shards import ShardWriter
from genixer.generation.module import GenerationModule
from genixer.generation.settings import Decoding
from genixer.runs.roofline import kv_bytes_per_token


def write_image(path: Path, i: int) -> None:
    if not path.exists():
        Image.effect_noise((640, 480), 40 + i % 50).convert("RGB").save(path, quality=90)


def write_images(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(write_image, [folder / f"{i:05d}.jpg" for i in range(n)], range(n), chunksize=64))
    queries = folder / f"queries_{n}.jsonl"
    queries.write_text("".join(json.dumps({"id": i, "image": f"{i:05d}.jpg"}) + "\n" for i in range(n)))
    return queries


def reference_loop(model, codec, task, images: Path, n: int, gen: dict) -> float:
    """The original's loop: one sample at a time, decode + preprocess + generate; req/s."""
    def one(i: int) -> None:
        _, instruction = task.instruction(f"0:{i}")
        ids = codec.encode_prompt(instruction)[None].cuda()
        pixels = codec.image(load_rgb(images / f"{i:05d}.jpg"))[None].cuda().bfloat16()
        model.generate(input_ids=ids, pixel_values=pixels, **gen)
    one(0)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(n):
        one(i)
    torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=768)
    parser.add_argument("--reference", type=int, default=4, help="samples for the batch-1 reference loop (0: skip)")
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--workers", type=int, default=8, help="loader workers per process")
    parser.add_argument("--cache", default="static", choices=["dynamic", "static", "engine"],
                        help="our pipeline's decoding: HF generate (dynamic), our static-cache loop, our engine")
    parser.add_argument("--slots", default="auto", help="the engine's slots: a number or auto (free memory)")
    parser.add_argument("--sample", action="store_true", help="sample (temperature 0.2, top_p 0.9, counter noise)")
    parser.add_argument("--work", default="/tmp/genixer_bench")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # read at the first CUDA allocation
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    work = Path(args.work)
    queries = work / "images" / f"queries_{args.images}.jsonl"
    if rank == 0:
        write_images(work / "images", args.images)
        shutil.rmtree(work / "run", ignore_errors=True)
    while not queries.exists():  # other ranks wait for rank 0's images
        time.sleep(1)
    model, codec, task = build_llava_7b(f"cuda:{torch.cuda.current_device()}")
    params = sum(p.numel() for p in model.parameters())
    gen = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
               pad_token_id=codec.tokenizer.pad_token_id, eos_token_id=codec.tokenizer.eos_token_id)
    ref_rps = reference_loop(model, codec, task, work / "images", args.reference, gen) if args.reference and rank == 0 else None

    # (b) our pipeline: workers decode and preprocess, predict loop generates, writer appends shards.
    dataset = PromptDataset(load_queries(queries), work / "images", task, codec, 1, 0)
    order = dataset.by_prompt_length(list(range(len(dataset))))
    lengths = [len(codec.encode_prompt(dataset.instruction(i)[1])) for i in order]
    sampling = dict(do_sample=True, temperature=0.2, top_p=0.9, noise="counter") if args.sample else {}
    slots = int(args.slots) if args.slots.isdigit() else args.slots
    module = GenerationModule(None, codec, Decoding.from_config(dict(cache=args.cache, slots=slots, max_new_tokens=NEW_TOKENS,
                                                                     min_new_tokens=NEW_TOKENS, **sampling)))
    module.model = model
    loader = DataLoader(Subset(dataset, order), batch_size=args.batch_size, num_workers=args.workers,
                        collate_fn=PromptCollator(codec.tokenizer.pad_token_id), pin_memory=True)
    stopwatch = Stopwatch()
    trainer = L.Trainer(accelerator="gpu", devices=world, strategy="ddp" if world > 1 else "auto", precision="bf16-true",
                        logger=False, callbacks=[ShardWriter(work / "run/shards"), stopwatch], enable_model_summary=False,
                        enable_progress_bar=False)
    trainer.predict(module, loader, return_predictions=False)
    if rank != 0:
        return
    start = time.perf_counter()
    rows, counts = merge(work / "run/shards", task, {"generator": "random LLaVA-1.5-7B shape"})
    seconds = stopwatch.seconds + time.perf_counter() - start
    ours_rps = len(rows) / seconds

    # Roofline of one GPU: every decode step reads all weights once plus each sequence's KV cache.
    bandwidth = copy_bandwidth()
    mean_context = sum(lengths) / len(lengths) + NEW_TOKENS / 2
    rows_per_step = module.slots or args.batch_size  # the engine's slots (it is released at the end of predict)
    step_bytes = params * 2 + rows_per_step * kv_bytes_per_token(model.config.text_config) * mean_context
    roofline_rps = world * rows_per_step / (NEW_TOKENS * step_bytes / bandwidth)
    result = {
        "gpu": torch.cuda.get_device_name(), "gpus": world, "params": params, "vocab": model.config.text_config.vocab_size,
        "prompt_tokens_mean": round(sum(lengths) / len(lengths), 1), "prompt_tokens_range": [min(lengths), max(lengths)],
        "new_tokens": NEW_TOKENS, "images": args.images, "batch_size": args.batch_size, "workers": args.workers,
        "cache": args.cache, "sampled": args.sample, "slots": rows_per_step, "engine_setup_s": round(module.engine_setup_s, 2), "engine_setup_parts_s": module.engine_setup_parts_s, "engine_setup_compile_s": module.engine_setup_compile_s, "pipeline_req_per_s": round(ours_rps, 2), "pipeline_tok_per_s": round(ours_rps * NEW_TOKENS, 1),
        "copy_bandwidth_GBps": round(bandwidth / 1e9), "roofline_req_per_s": round(roofline_rps, 2),
        "fraction_of_roofline": round(ours_rps / roofline_rps, 3), "rows": counts["samples"], "status": counts["status"],
    }
    if module.engine_setup_s:   # the rate once the engine stands, and the host's time outside its runs (the loop's)
        after = seconds - module.engine_setup_s
        result.update(after_setup_req_per_s=round(len(rows) / after, 2), engine_run_s=round(module.engine_run_s, 1),
                      outside_engine_s=round(after - module.engine_run_s, 1))
    # torch.compile in this process: graphs compiled (each traced anew, even when the FX graph cache holds it) and
    # the seconds spent compiling them, most of the engine's start once the cache is warm
    result.update(dynamo_graphs=counters["stats"]["unique_graphs"],
                  dynamo_compile_s=round(compile_seconds(), 2))
    # every rank's items over the window of all ranks (benchmarks/timing.py); not for the engine, whose first
    # batch only prefills (its rows come back later, so a window after it would count them without their prefill)
    steady = stopwatch.steady_rate() if args.cache != "engine" else None
    if steady:
        result.update(first_batch_s=round(stopwatch.first_batch_seconds(), 2), steady_req_per_s=round(steady, 2),
                      steady_fraction_of_roofline=round(steady / roofline_rps, 3))
    if ref_rps:
        result.update(reference_req_per_s=round(ref_rps, 3), reference_tok_per_s=round(ref_rps * NEW_TOKENS, 1),
                      speedup=round(ours_rps / ref_rps, 1))
    print("\n".join(f"{k:>22}: {v}" for k, v in result.items()), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name().replace(" ", "_")
    kind = f"{args.cache}{'_sampled' if args.sample else ''}"
    Path(args.out, f"generation_{name}_{kind}_b{args.batch_size}_x{world}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    from benchmarks import generation   # its functions by an importable name: the image writers unpickle them even
    generation.main()                   # when the script runs under another __main__ (python -m cProfile -m ...)
