"""The study's training files: annotated data, synthetic data (unfiltered or filtered) and the pool's
ground truth (the ceiling), as LLaVA conversation files that downstream models train on as they stand.

Every file is single-turn, one sample per line of data, in the prompts the benchmark asks with: VQA
questions end in LLaVA-1.5's short-answer prompt, REC questions come from the REC question pool (the
benchmark draws from the same pool). Synthetic and ceiling data take one sample per pool image, from
the first ``share`` of the pool's images in one seeded order: a larger size holds every smaller one,
and each condition sees the same images.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

from genixer.data.exports import write_llava
from genixer.runs.files import read_jsonl, write_json
from genixer.runs.layout import RunDir
from genixer.tasks import EXPR, REC, TemplatePool, llava_turns

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."   # LLaVA-1.5's, the benchmark's suffix


def conversation(key: str, image: str, human: str, gpt: str) -> dict:
    return {"id": key, "image": image, "conversations": llava_turns([(human, gpt)])}


def relative(image: str, images: Path) -> str:
    """An image path relative to the world's images folder (how the conversation files name images)."""
    path = Path(image)
    return path.relative_to(images).as_posix() if path.is_absolute() else path.as_posix()


class WorldTruth:
    """Ground-truth VQA and REC samples of one mini-world split (train: the annotated set; pool: the ceiling)."""

    def __init__(self, world: Path, split: str, rec_questions: REC) -> None:
        self.world, self.split, self.questions = Path(world), split, rec_questions
        self.annotations = self.world / "annotations"
        self._files: dict[int, str] | None = None   # image id -> file name, from the split's COCO instances

    def vqa(self) -> list[dict]:
        questions = json.loads((self.annotations / f"v2_OpenEnded_mini_{self.split}_questions.json").read_text())
        answers = {a["question_id"]: a for a in
                   json.loads((self.annotations / f"v2_mini_{self.split}_annotations.json").read_text())["annotations"]}
        return [conversation(f"vqa_{q['question_id']}", self._image(q["image_id"]), q["question"] + SHORT_ANSWER,
                             answers[q["question_id"]]["multiple_choice_answer"]) for q in questions["questions"]]

    def rec(self) -> list[dict]:
        rows = read_jsonl(self.annotations / f"rec_{self.split}.jsonl")
        return [rec_conversation(f"rec_{self.split}_{k}", r, self.questions) for k, r in enumerate(rows)]

    def _image(self, image_id: int) -> str:
        if self._files is None:
            instances = json.loads((self.annotations / f"instances_{self.split}.json").read_text())
            self._files = {im["id"]: im["file_name"] for im in instances["images"]}
        return self._files[image_id]

    def samples(self, family: str) -> list[dict]:
        return self.vqa() if family == "vqa" else self.rec()


def rec_conversation(key: str, row: dict, task: REC) -> dict:
    """A Shikra REC row as one turn: a pool question about its expression, answered by its normalized box."""
    return conversation(key, row["img_path"], *task.listened(row, key))


def synthetic(rows: Iterable[dict], family: str, images: Path) -> list[dict]:
    """Accepted generated rows as training samples: VQA pairs in the benchmark's prompt, REC as generated."""
    out = []
    for row in rows:
        key, image = f"syn_{row['id']}", relative(row["image"], images)
        if family == "vqa":
            out.append(conversation(key, image, row["parsed"]["question"] + SHORT_ANSWER, row["parsed"]["answer"]))
        else:
            out.append({"id": key, "image": image, "conversations": row["conversations"]})
    return out


def pool_order(images: Iterable[str], seed: int) -> list[str]:
    """The pool's images in one seeded order; a size takes a prefix of it."""
    order = sorted(set(images))
    random.Random(f"study-pool:{seed}").shuffle(order)
    return order


def one_per_image(samples: list[dict], seed: int) -> dict[str, dict]:
    """One sample per image, drawn by seed and image (not file order): the ceiling holds as many samples as the
    synthetic data."""
    by_image: dict[str, list[dict]] = {}
    for s in samples:
        by_image.setdefault(s["image"], []).append(s)
    return {image: sorted(group, key=lambda s: str(s["id"]))[random.Random(f"{seed}:{image}").randrange(len(group))]
            for image, group in by_image.items()}


def write(samples: list[dict], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_llava(samples, path)


def names(cfg) -> list[str]:
    """The downstream datasets: the annotated set alone, then condition x size."""
    return ["annotated", *(f"{c}_{s}" for c in cfg.conditions for s in cfg.sizes)]


def build(cfg, world: Path, out: Path, runs: dict[str, Path], oracle) -> dict:
    """Write every training file under ``out/<family>/<dataset>.json``; per file: sample counts, and for
    synthetic data ``oracle``'s accuracy of exactly the samples it holds (the ceiling is ground truth)."""
    unknown = set(cfg.conditions) - {"unfiltered", "filtered", "ceiling"}
    if unknown:
        raise ValueError(f"unknown study conditions {sorted(unknown)}: use unfiltered, filtered, ceiling")
    images = world / "images"
    rec = REC("rec", "", TemplatePool.builtin("generic_instructions"), TemplatePool(cfg.rec_questions, EXPR))
    train, pool = WorldTruth(world, "train", rec), WorldTruth(world, "pool", rec)
    order = pool_order((r["image"] for r in read_jsonl(images / "pool.jsonl")), cfg.seed)
    # Entries of files written before for other sizes or conditions stay (their files are deterministic).
    summary: dict[str, dict] = json.loads((out / "datasets.json").read_text()) if (out / "datasets.json").exists() else {}
    for family, run in runs.items():
        annotated = train.samples(family)
        accepted = {"unfiltered": [r for r in RunDir(run).rows("generate") if r["status"] == "ok"],
                    "filtered": [r for r in RunDir(run / "filter" / cfg.synthetic.filter).rows("filter") if r["kept"]]}
        truth = one_per_image(pool.samples(family), cfg.seed)
        files = {"annotated": (annotated, {})}
        for size in cfg.sizes:
            chosen = order[: round(cfg.shares[size] * len(order))]
            for condition in cfg.conditions:
                if condition == "ceiling":
                    extra, info = [truth[i] for i in chosen if i in truth], {"oracle_accuracy": 1.0, "source": "ground truth"}
                else:
                    keep = set(chosen)
                    rows = [r for r in accepted[condition] if relative(r["image"], images) in keep]
                    extra, info = synthetic(rows, family, images), oracle_summary(oracle, rows)
                files[f"{condition}_{size}"] = (annotated + extra, {"pool_images": len(chosen), "synthetic": len(extra), **info})
        summary[family] = summary.get(family, {}) | {name: {"samples": write(samples, out / family / f"{name}.json"), **info}
                                                     for name, (samples, info) in files.items()}
    write_json(out / "datasets.json", summary)
    return summary


def oracle_summary(oracle, rows: list[dict]) -> dict:
    """The oracle's accuracy (and unverifiable share) of exactly these accepted rows."""
    if not rows:
        return {"oracle_accuracy": None}
    (family, scored), = oracle.evaluate_run(rows)["families"].items()
    return {"oracle_accuracy": scored.get("accuracy"), "oracle_family": family,
            **{k: scored[k] for k in ("unverifiable",) if k in scored}}
