"""Benchmark answering at LLaVA-1.5-7B shape (random bf16 weights): ours vs the LLaVA-1.5 eval loop, same process.

A 1,000-question VQAv2-layout fixture (questions over noise JPEGs, 10 answers each) is answered
(a) the way LLaVA-1.5's ``model_vqa_loader.py`` does: a DataLoader with batch size 1 and 4 workers (load,
    preprocess, tokenize), then ``generate`` per question, greedy;
(b) by our answering path (``genixer.pipelines.benchmark``'s pieces): QuestionDataset in loader workers, prompts
    ordered by length, batched Lightning predict with the static-cache loop, shard writer, answers file, score.
Random weights never emit EOS, so both sides are forced to the same ``--new-tokens`` (default 4: a trained
model's short answer, "Answer the question using a single word or phrase", is a word or two plus EOS).
Prints questions/s of both and the ratio; writes benchmarks/results/answering_<gpu>.json.

    python -m benchmarks.answering --questions 1000 --reference 300 --batch-size 64
    python -m benchmarks.answering --tiny     # CPU smoke test: a small model, a few questions, no result file
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

import lightning as L
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset

from benchmarks.llava7b import LLAVA_7B, SYSTEM, VOCAB
from benchmarks.timing import Stopwatch
from genixer.backbones.conversation import Conversation
from genixer.backbones.llava import TinyLlava
from genixer.data.images import load_rgb
from genixer.evaluation.benchmarks import VQABenchmark, read_answers
from genixer.generation.module import GenerationModule
from genixer.generation.queries import PromptCollator, QuestionDataset
from genixer.generation.settings import Decoding
from genixer.runs.files import write_jsonl
from genixer.runs.shards import ShardWriter, read_shards

TINY = dict(image_size=32, vocab_size=4000, max_length=256,
            vision=dict(patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
            text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
SUFFIX = "\nAnswer the question using a single word or phrase."
COLORS, THINGS = ["red", "blue", "green", "white", "black", "yellow"], ["car", "dog", "sign", "tree", "shirt", "cup"]


def write_fixture(folder: Path, n: int, images: int) -> VQABenchmark:
    """``n`` questions over ``images`` noise JPEGs (640x480), VQAv2 question + annotation files."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        path = folder / f"img_{i:012d}.jpg"
        if not path.exists():
            Image.effect_noise((640, 480), 40 + i % 50).convert("RGB").save(path, quality=90)
    rng = random.Random(0)
    questions, annotations = [], []
    for q in range(n):
        text = rng.choice([f"What color is the {rng.choice(THINGS)}?", f"Is there a {rng.choice(COLORS)} "
                           f"{rng.choice(THINGS)} in the image?", f"How many {rng.choice(THINGS)}s are there?"])
        questions.append({"question_id": q, "image_id": q % images, "question": text})
        annotations.append({"question_id": q, "image_id": q % images, "answer_type": "other",
                            "answers": [{"answer": rng.choice(COLORS), "answer_id": k + 1} for k in range(10)]})
    (folder / "questions.json").write_text(json.dumps({"questions": questions}))
    (folder / "annotations.json").write_text(json.dumps({"annotations": annotations}))
    return VQABenchmark("vqa_fixture", str(folder / "questions.json"), str(folder / "annotations.json"), str(folder),
                        "img_{image_id:012d}.jpg", SUFFIX)


class LLaVALoaderDataset(Dataset):
    """model_vqa_loader.py's CustomDataset: per question, load the image, preprocess, tokenize the prompt."""

    def __init__(self, questions: list[dict], root: Path, codec) -> None:
        self.questions, self.root, self.codec = questions, root, codec

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, i: int):
        q = self.questions[i]
        return self.codec.encode_prompt(q["text"]), self.codec.image(load_rgb(self.root / q["image"]))


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reference_rate(model, codec, questions: list[dict], root: Path, new_tokens: int, device: str) -> float:
    """The LLaVA-1.5 loop: batch 1, 4 loader workers, greedy ``generate``; questions/s (after one warm-up)."""
    loader = DataLoader(LLaVALoaderDataset(questions, root, codec), batch_size=1, num_workers=4,
                        collate_fn=lambda b: b[0])
    gen = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
               pad_token_id=codec.tokenizer.pad_token_id, eos_token_id=codec.tokenizer.eos_token_id)
    start, n = None, 0
    for k, (ids, pixels) in enumerate(loader):
        if k == 1:
            sync(device)
            start = time.perf_counter()
        model.generate(input_ids=ids[None].to(device), pixel_values=pixels[None].to(device, model.dtype), **gen)
        n += k >= 1
    sync(device)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--images", type=int, default=250)
    parser.add_argument("--reference", type=int, default=300, help="questions for the batch-1 LLaVA loop (0: skip)")
    parser.add_argument("--new-tokens", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--cache", default="static", choices=["dynamic", "static"])
    parser.add_argument("--work", default="/tmp/genixer_answering")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--tiny", action="store_true", help="a small model on the CPU (smoke test, no result file)")
    args = parser.parse_args()
    if args.tiny:
        args.questions, args.images, args.reference, args.batch_size, args.workers = 24, 6, 4, 8, 0
    device = "cpu" if args.tiny else "cuda"
    work = Path(args.work)
    shutil.rmtree(work / "run", ignore_errors=True)
    benchmark = write_fixture(work / "fixture", args.questions, args.images)
    questions = benchmark.questions()

    backbone = TinyLlava(Conversation("vicuna_v1", SYSTEM), **(TINY if args.tiny else LLAVA_7B))
    codec = backbone.codec([SYSTEM, SUFFIX, *(q["text"] for q in questions)] * 3)
    torch.set_default_dtype(torch.float32 if args.tiny else torch.bfloat16)
    with torch.device(device):
        model = backbone.build(codec).eval().requires_grad_(False)
        if not args.tiny:
            model.resize_token_embeddings(VOCAB, mean_resizing=False)
    torch.set_default_dtype(torch.float32)

    ref = reference_rate(model, codec, questions[:args.reference + 1], benchmark.image_root, args.new_tokens, device) \
        if args.reference else None

    dataset = QuestionDataset(questions, benchmark.image_root, benchmark.name, codec)
    order = dataset.by_prompt_length(list(range(len(dataset))))
    module = GenerationModule(None, codec, Decoding.from_config(dict(cache=args.cache, max_new_tokens=args.new_tokens,
                                                                     min_new_tokens=args.new_tokens)))
    module.model = model
    loader = DataLoader(Subset(dataset, order), batch_size=args.batch_size, num_workers=args.workers,
                        collate_fn=PromptCollator(codec.tokenizer.pad_token_id), pin_memory=True)
    stopwatch = Stopwatch()
    trainer = L.Trainer(accelerator=device if args.tiny else "gpu", devices=1, precision="32" if args.tiny else "bf16-true",
                        logger=False, enable_progress_bar=False,
                        callbacks=[ShardWriter(work / "run/shards"), stopwatch], enable_model_summary=False)
    trainer.predict(module, loader, return_predictions=False)
    start = time.perf_counter()
    rows = read_shards(work / "run/shards")
    answers = [{"question_id": q["question_id"], "prompt": q["text"], "text": rows[str(q["question_id"])]["text"],
                "model_id": "random-7b"} for q in questions]
    write_jsonl(work / "run/answers.jsonl", answers)
    score = benchmark.score(read_answers(work / "run/answers.jsonl"))
    ours = len(questions) / (stopwatch.seconds + time.perf_counter() - start)
    lengths = [len(codec.encode_prompt(q["text"])) for q in questions]
    result = {
        "gpu": "cpu" if args.tiny else torch.cuda.get_device_name(), "tiny": args.tiny,
        "params": sum(p.numel() for p in model.parameters()),
        "questions": len(questions), "images": args.images, "prompt_tokens_mean": round(sum(lengths) / len(lengths), 1),
        "new_tokens": args.new_tokens, "batch_size": args.batch_size, "workers": args.workers, "cache": args.cache,
        "pipeline_questions_per_s": round(ours, 2), "first_batch_s": round(stopwatch.first_batch_seconds(), 2),
        "steady_questions_per_s": round(stopwatch.steady_rate() or 0.0, 2), "answered": len(answers),
        "scored_n": score["n"], "score_random_weights": round(score["score"], 2),
        "reference": "LLaVA-1.5 model_vqa_loader.py: batch 1, 4 loader workers, greedy generate",
    }
    if ref:
        result.update(reference_questions=args.reference, reference_questions_per_s=round(ref, 2),
                      speedup=round(ours / ref, 2))
    print("\n".join(f"{k:>26}: {v}" for k, v in result.items()), flush=True)
    if args.tiny:
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name().replace(" ", "_")
    Path(args.out, f"answering_{name}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
