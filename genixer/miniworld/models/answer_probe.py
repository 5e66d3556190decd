"""Does a generator learn the last step of its chain of thought? Teacher-forced answer accuracy.

A Q->C^Box A sample ends "... So the answer is <word>." Fed a training-format sample up to that word (image,
instruction, the question and the whole chain), the model's greedy next token is compared with the sample's, per
question type, beside the commonest answer of that type (a constant guess). Read it with free generation: a type
answered right here but wrong when the model writes the chain itself fails in the chain (what it perceives); a type
near the constant guess here has not learnt the step from the chain to the answer.

Samples, rendered by the ``qca_box`` task as a generator is trained on them: ``--split train`` (default) the world's
training file (``GPT4GEN_BoxCoT_train.jsonl``: what training fitted); ``--split val`` one sample of each question type
per val image, drawn by the code that wrote the training file (what generalises to images never trained on).

    python -m genixer.miniworld.models.answer_probe CHECKPOINT [CHECKPOINT ...] --world ROOT [--split val] [--limit N]
        [--out FILE]
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from transformers import LlavaForConditionalGeneration

from genixer.backbones.codec import IGNORE_INDEX, Codec
from genixer.backbones.llava import num_image_tokens, resolve_checkpoint
from genixer.data.images import load_rgb
from genixer.data.instructions import pad_right
from genixer.data.sources.gpt4gen import GPT4GenBoxCoT
from genixer.miniworld import Oracle, world_seed
from genixer.miniworld.coverage import kind
from genixer.miniworld.families_cot import BOXCOT_TYPES, boxcot_of

CONF = Path(__file__).resolve().parents[3] / "conf"
TEMPLATES = Path(__file__).resolve().parents[2] / "tasks" / "templates"
CUE = "answer is"   # the chain's closing "So the answer is <word>."
MARKS = re.compile(r"<ph_(?:st|ed)>")

NextTokens = Callable[[list[torch.Tensor], torch.Tensor], list[int]]   # (ids before each answer, pixels) -> predicted ids
BATCH = 32


def qca_task():
    """The ``qca_box`` task exactly as configured (its protocol suffix and instruction pool)."""
    cfg = OmegaConf.merge({"paths": {"templates": str(TEMPLATES)}}, {"task": OmegaConf.load(CONF / "task" / "qca_box.yaml")})
    return instantiate(cfg.task)


def answer_position(codec: Codec, ids: torch.Tensor, labels: torch.Tensor) -> int | None:
    """Index of the first target token after the target's last "answer is" (None when the target has none)."""
    target = (labels != IGNORE_INDEX).nonzero().flatten().tolist()
    for p in reversed(target[:-1]):
        if codec.tokenizer.decode(ids[max(0, p - 8): p + 1]).rstrip().endswith(CUE):
            return p + 1
    return None


def val_annotations(world: Path, source: GPT4GenBoxCoT) -> list[dict]:
    """One sample of each question type per val image, the scene redrawn from the world's seed."""
    seed = world_seed(world / "world.json")
    oracle = Oracle.from_instances(world / "annotations" / "instances_val.json", seed)
    annotations = []
    for image_id in oracle.image_ids:
        scene, rng = oracle.scene(image_id), np.random.default_rng([seed, image_id])
        for qtype in BOXCOT_TYPES:
            if (rec := boxcot_of(scene, rng, qtype)) is not None:
                row = {"img_path": oracle.file_name(image_id), **rec, "width": scene.width, "height": scene.height}
                annotations.append(source.record(row, f"val image {image_id}, {qtype}"))
    return annotations


def probe_items(world: str | Path, codec: Codec, limit: int | None = None, split: str = "train") -> Iterable[dict]:
    """Each sample with a closing answer: its question type, encoded prefix, image and answer token."""
    world = Path(world)
    source = GPT4GenBoxCoT(path=world / "annotations" / "GPT4GEN_BoxCoT_train.jsonl", image_root=world / "images")
    annotations = {"train": source.load, "val": lambda: val_annotations(world, source)}[split]()
    task = qca_task()
    for i, ann in enumerate(annotations[:limit]):
        (human, gpt), *rest = task.turns(ann, f"probe:{i}")
        ids, labels = codec.encode_train([(codec.human_message(human), gpt), *rest])
        p = answer_position(codec, ids, labels)
        if p is None:
            continue
        yield {"kind": kind("qca_box", MARKS.sub("", ann["question"])), "prefix": ids[:p], "answer": int(ids[p]),
               "pixel_values": codec.image(load_rgb(ann["image"]))}


def score(items: Iterable[dict], next_tokens: NextTokens, batch_size: int = BATCH) -> dict[str, dict]:
    """Per question type (and "all"): n, teacher-forced accuracy, and the commonest answer's share."""
    hits, answers = defaultdict(list), defaultdict(Counter)
    items = iter(items)
    while batch := list(itertools.islice(items, batch_size)):
        predicted = next_tokens([i["prefix"] for i in batch], torch.stack([i["pixel_values"] for i in batch]))
        for item, token in zip(batch, predicted, strict=True):
            for k in (item["kind"], "all"):
                hits[k].append(token == item["answer"])
                answers[k][item["answer"]] += 1
    return {k: {"n": len(v), "accuracy": sum(v) / len(v), "commonest_answer": answers[k].most_common(1)[0][1] / len(v)}
            for k, v in sorted(hits.items())}


def model_next_tokens(model: LlavaForConditionalGeneration, pad_id: int) -> NextTokens:
    """Greedy next token after each prefix, a batch at a time: right-padded, so no real token sees a pad and each
    row's last real position gives its prediction (the same as one at a time)."""
    @torch.no_grad()
    def predict(prefixes: list[torch.Tensor], pixel_values: torch.Tensor) -> list[int]:
        ids = pad_right(prefixes, pad_id)
        lengths = torch.tensor([len(p) for p in prefixes])
        mask = torch.arange(ids.shape[1])[None] < lengths[:, None]
        logits = model(input_ids=ids, attention_mask=mask.long(), pixel_values=pixel_values.to(model.dtype)).logits
        return logits[torch.arange(len(prefixes)), lengths - 1].argmax(-1).tolist()
    return predict


def probe_checkpoint(path: str | Path, world: str | Path, limit: int | None = None, split: str = "train") -> dict[str, dict]:
    root = resolve_checkpoint(path)
    model = LlavaForConditionalGeneration.from_pretrained(root, torch_dtype=torch.float32).eval()
    codec = Codec.load(root, num_image_tokens=num_image_tokens(model.config))
    return score(probe_items(world, codec, limit, split), model_next_tokens(model, codec.tokenizer.pad_token_id))


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--world", required=True, help="a mini world root (holds annotations/ and images/)")
    parser.add_argument("--split", choices=("train", "val"), default="train",
                        help="train: the training file's samples; val: new samples of the val images")
    parser.add_argument("--limit", type=int, default=None, help="the first N samples only")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = {c: probe_checkpoint(c, args.world, args.limit, args.split) for c in args.checkpoints}
    for c, kinds in result.items():
        print(c)
        for k, r in kinds.items():
            print(f"  {k:10s} n={r['n']:5d}  teacher-forced {100 * r['accuracy']:5.1f}%  commonest answer {100 * r['commonest_answer']:5.1f}%")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
