"""CLIP REC crop-scoring benchmark at ViT-L/14 shape (random weights, bf16), baselines in the same run.

(a) the original's arrangement: --procs processes (default 20, as the original ran), each with its own model
    copy on the same GPU, each scoring its share of the crops one at a time (PIL open + crop, preprocess, one
    image and one text forward at batch 1); aggregate crops/s over the wall time of all processes once all
    are loaded; (a1) the same loop in a single process;
(b) our stage end to end: ItemDataset in DataLoader workers, FilterModule under Lightning predict
    (bf16-true), ShardWriter appending one line per item;
(c) the GPU alone: the model scoring one prebuilt batch already on the device.
Prints crops/s and the ratios ((b) over (a) is the headline); writes clip_crops_<gpu>.json to --out.

    python -m benchmarks.clip_crops --items 16384 --batch-size 256 --workers 16 --procs 20
    python -m benchmarks.clip_crops --tiny    # CPU smoke test: tiny model, 2 processes, few items, no result file
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

import lightning as L
import open_clip
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.timing import Stopwatch
from genixer.backbones.open_clip import save_open_clip
from genixer.filtering.clip import ClipCropScorer, pixel_box
from genixer.filtering.scorer import ItemCollator, ItemDataset, to_device
from genixer.runs.shards import ShardWriter
from genixer.filtering.module import FilterModule
from genixer.tasks import normalize_box

WORDS = ("red", "blue", "small", "large", "man", "woman", "dog", "cat", "car", "tree", "left", "right", "front",
         "back", "striped", "wooden", "near", "behind", "under", "shirt", "hat", "bike", "bench", "the", "a")
TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
SIZE = (640, 480)


def write_rows(folder: Path, n_items: int, per_image: int, seed: int = 0) -> list[dict]:
    """Noise-and-gradient JPEGs with ``per_image`` REC rows each (boxes 60-400 px, random expressions)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    gradient = Image.linear_gradient("L").resize(SIZE)
    rows = []
    for i in range(-(-n_items // per_image)):
        noise = Image.effect_noise(SIZE, 20 + i % 60)
        Image.merge("RGB", (noise, gradient, gradient.rotate(90 * (i % 4)))).save(folder / f"{i:05d}.jpg", quality=90)
        for k in range(min(per_image, n_items - len(rows))):
            w, h = rng.randint(60, 400), rng.randint(60, 300)
            x, y = rng.randint(0, SIZE[0] - w), rng.randint(0, SIZE[1] - h)
            region = {"expression": " ".join(rng.choices(WORDS, k=rng.randint(2, 10))),
                      "box": list(normalize_box([x, y, x + w, y + h], *SIZE))}
            rows.append({"id": f"{i:05d}/rec/{k}", "image": f"{i:05d}.jpg", "width": SIZE[0], "height": SIZE[1],
                         "status": "ok", "family": "rec", "regions": [region]})
    return rows


@torch.no_grad()
def original_score(scorer: ClipCropScorer, model: nn.Module, item: dict, root: Path, device, dtype) -> float:
    """The original's per-sample step: one crop, one forward per tower, a Python float."""
    with Image.open(root / item["image"]) as image:
        crop = image.convert("RGB").crop(pixel_box(item["box"], *image.size, 1))
    pixels = scorer.transform(crop)[None].to(device, dtype)
    tokens = scorer.tokenizer([item["expression"]]).to(device)
    return (model.encode_image(pixels).float() @ model.encode_text(tokens).float().T).item()


def reference_rate(scorer: ClipCropScorer, model: nn.Module, items: list[dict], root: Path, device, dtype) -> float:
    """(a1) the original's loop in one process."""
    for item in items[:4]:  # warm-up
        original_score(scorer, model, item, root, device, dtype)
    start = time.perf_counter()
    for item in items:
        original_score(scorer, model, item, root, device, dtype)
    return len(items) / (time.perf_counter() - start)


def reference_process(rank: int, scorer_kwargs: dict, items: list[dict], root: Path, device: str, barrier,
                      results) -> None:
    """One of the original's processes: its own model copy on the shared GPU, its share of the crops at batch 1."""
    torch.set_num_threads(1)  # batch-1 work gains nothing from more; N processes x all cores would oversubscribe
    scorer = ClipCropScorer(**scorer_kwargs)
    model = scorer.build().eval().requires_grad_(False).to(device, torch.bfloat16)
    mine = items[rank::barrier.parties]
    for item in mine[:4]:  # warm-up
        original_score(scorer, model, item, root, device, torch.bfloat16)
    barrier.wait(timeout=600)  # every process loaded and warm: the clock starts
    start = time.time()
    for item in mine:
        original_score(scorer, model, item, root, device, torch.bfloat16)
    results.put((len(mine), start, time.time()))


def multiprocess_rate(scorer_kwargs: dict, items: list[dict], root: Path, device: str, procs: int) -> float:
    """(a) aggregate crops/s of ``procs`` processes: all crops over first start to last finish."""
    context = torch.multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(procs), context.Queue()
    torch.multiprocessing.spawn(reference_process, (scorer_kwargs, items, root, device, barrier, results), nprocs=procs)
    done = [results.get() for _ in range(procs)]
    return sum(n for n, _, _ in done) / (max(end for _, _, end in done) - min(start for _, start, _ in done))


@torch.no_grad()
def gpu_only_rate(scorer: ClipCropScorer, model: nn.Module, items: list[dict], root: Path, device, dtype,
                  repeats: int) -> float:
    batch = to_device(scorer.collate([scorer.load(item, root) for item in items]), device, dtype)
    meta = [{"id": item["id"], "row_id": item["row_id"]} for item in items]
    for _ in range(2):  # warm-up; score() ends in .tolist(), which synchronizes
        scorer.score(model, batch, meta)
    start = time.perf_counter()
    for _ in range(repeats):
        scorer.score(model, batch, meta)
    return repeats * len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4096)
    parser.add_argument("--per-image", type=int, default=4, help="REC rows (boxes) per image")
    parser.add_argument("--reference", type=int, default=256, help="items for the single-process batch-1 loop (a1)")
    parser.add_argument("--procs", type=int, default=20, help="processes of the original arrangement (a)")
    parser.add_argument("--proc-items", type=int, default=100, help="items per process in (a)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10, help="batches timed in (c)")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test with a tiny model")
    parser.add_argument("--work", default="/tmp/genixer_clip_bench")
    parser.add_argument("--tag", default="", help="result file suffix: clip_crops_<gpu>_<tag>.json")
    parser.add_argument("--out", default=None, help="result folder (default: benchmarks/results; --tiny: none)")
    args = parser.parse_args()
    if args.tiny:
        args.items, args.reference, args.batch_size, args.workers, args.repeats = 64, 8, 16, 2, 2
        args.procs, args.proc_items = 2, 8
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    rows = write_rows(work / "images", args.items, args.per_image)

    if args.tiny:
        checkpoint = save_open_clip(open_clip.CLIP(**TINY_CLIP), TINY_CLIP, work / "tiny_clip")
        scorer_kwargs, accelerator, device = {"checkpoint": str(checkpoint)}, "cpu", torch.device("cpu")
    else:
        scorer_kwargs, accelerator, device = {"model": "ViT-L-14", "pretrained": None}, "gpu", torch.device("cuda")
    scorer = ClipCropScorer(**scorer_kwargs)
    items = [item for row in rows for item in scorer.items(row)]
    dtype = torch.bfloat16
    model = scorer.build().eval().requires_grad_(False).to(device, dtype)
    params = sum(p.numel() for p in model.parameters())

    ref_rate = reference_rate(scorer, model, items[:args.reference], work / "images", device, dtype)
    procs_items = items[:args.procs * args.proc_items]
    procs_rate = multiprocess_rate(scorer_kwargs, procs_items, work / "images", device.type, args.procs)
    gpu_rate = gpu_only_rate(scorer, model, items[:args.batch_size], work / "images", device, dtype, args.repeats)

    # (b) our stage: workers decode/crop/preprocess, the predict loop scores, the writer appends lines.
    module = FilterModule([scorer])
    module.models = nn.ModuleList([model])  # already built: configure_model keeps it
    stopwatch = Stopwatch()
    loader = DataLoader(ItemDataset(scorer, items, work / "images"), batch_size=args.batch_size,
                        num_workers=args.workers, collate_fn=ItemCollator(scorer), pin_memory=not args.tiny)
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision="bf16-true", logger=False,
                        callbacks=[ShardWriter(work / "run/shards"), stopwatch], enable_model_summary=False, enable_progress_bar=False)
    start = time.perf_counter()
    trainer.predict(module, loader, return_predictions=False)
    seconds = time.perf_counter() - start
    lines = [json.loads(line) for line in (work / "run" / "shards" / "rank0.jsonl").read_text().splitlines()]
    scored = sum("raw" in line for line in lines)
    if len(lines) != len(items) or scored != len(items):
        raise RuntimeError(f"{len(items)} items gave {len(lines)} lines, {scored} scored")
    ours_rate = len(items) / seconds

    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    result = {
        "gpu": gpu, "model": "tiny" if args.tiny else "ViT-L-14", "params": params, "precision": "bf16",
        "items": len(items), "images": len({row["image"] for row in rows}), "batch_size": args.batch_size,
        "workers": args.workers,
        "reference": f"the original: {args.procs} processes, each its own model on the one device, batch 1",
        "reference_procs": args.procs, "reference_procs_items": len(procs_items),
        "reference_procs_crops_per_s": round(procs_rate, 1),
        "single_process_items": args.reference, "single_process_crops_per_s": round(ref_rate, 1),
        "pipeline_crops_per_s": round(ours_rate, 1), "gpu_only_crops_per_s": round(gpu_rate, 1),
        "pipeline_over_reference": round(ours_rate / procs_rate, 2),
        "pipeline_over_single_process": round(ours_rate / ref_rate, 1),
        "pipeline_over_gpu_only": round(ours_rate / gpu_rate, 3), "pipeline_seconds": round(seconds, 2),
        "first_batch_s": round(stopwatch.first_batch_seconds(), 2),
        "steady_crops_per_s": round(stopwatch.steady_rate() or 0.0, 1),
    }
    print("\n".join(f"{k:>28}: {v}" for k, v in result.items()))
    out = Path(args.out) if args.out else (None if args.tiny else Path(__file__).parent / "results")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"clip_crops_{gpu.replace(' ', '_')}{'_' + args.tag if args.tag else ''}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
