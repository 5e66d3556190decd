"""Held-out checks of the mini world's filter models, scored by the filter's own scorers.

``clip``: each held-out object's crop at its true box against the referring expressions of its
image's objects. Retrieval accuracy: its own expression scores highest (crops that another
expression of the image also fits are left out: two red circles told apart only by size or
position, which a crop does not show). AUC of matched pairs (crop, own expression) against
mismatched ones: the crop of an object whose colour or shape contradicts the expression, or a
badly placed box (IoU < 0.5 with every object) at the object, each also reported alone.

``judge``: accuracy and AUC of P(Yes) on balanced true / corrupted QA pairs of the held-out
images (``genixer.miniworld.models.verification``), per checkpoint (e.g. the fine-tuned judge and the
generator it started from).

    python -m genixer.miniworld.models.heldout clip CHECKPOINT --world ROOT [--out FILE]
    python -m genixer.miniworld.models.heldout judge CHECKPOINT [CHECKPOINT ...] --world ROOT [--out FILE]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import binary_auroc, binary_roc

from genixer.miniworld.models.clip_pairs import ATTRIBUTES, CODES, UNSAID, off_box, phrase_codes
from genixer.miniworld import Oracle
from genixer.miniworld.language import describe
from genixer.data.sources.coco import load_coco
from genixer.miniworld.models.verification import YES, heldout_annotations, verification_records
from genixer.filtering.clip import ClipCropScorer
from genixer.filtering.judge import LlavaJudge
from genixer.filtering.scorer import ItemCollator, ItemDataset, Scorer
from genixer.filtering.module import FilterModule

HELDOUT = "annotations/instances_heldout.json"


def score_items(scorer: Scorer, items: list[dict], image_root: str | Path, batch_size: int = 64,
                num_workers: int = 0, device: str | None = None) -> dict[str, dict]:
    """Score line by item id (failed items keep their status and reason); the model runs in fp32."""
    module = FilterModule([scorer])  # the filter stage's own predict step, without a trainer
    module.configure_model()
    module.float().to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    loader = DataLoader(ItemDataset(scorer, items, image_root), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=ItemCollator(scorer))
    return {line["id"]: line for i, batch in enumerate(loader) for line in module.predict_step(batch, i)}


def score_ranks(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distinct values, each score's rank scaled to [0, 1]): torchmetrics squashes scores outside
    [0, 1] with a float32 sigmoid, which merges close raw scores; ranks keep every distinct score apart."""
    values, ranks = torch.unique(scores, return_inverse=True)
    return values, ranks.double() / max(len(values) - 1, 1)


def auc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    if not positive or not negative:
        return None
    scores = torch.tensor([*positive, *negative], dtype=torch.float64)
    labels = torch.tensor([1] * len(positive) + [0] * len(negative))
    return float(binary_auroc(score_ranks(scores)[1], labels))


def best_threshold(positive: Sequence[float], negative: Sequence[float]) -> tuple[float | None, float | None]:
    """The score threshold (keep >= it) with the best balanced accuracy, and that accuracy."""
    if not positive or not negative:
        return None, None
    scores = torch.tensor([*positive, *negative], dtype=torch.float64)
    labels = torch.tensor([1] * len(positive) + [0] * len(negative))
    values, ranks = score_ranks(scores)
    fpr, tpr, _ = binary_roc(ranks, labels)
    # Point k >= 1 keeps the scores >= values[-k] (point 0 keeps nothing). Its rates are float32:
    # back to counts, so the accuracy is the exact float64 mean of kept positives and dropped negatives.
    kept_pos = (tpr[1:].double() * len(positive)).round().flip(0)
    kept_neg = (fpr[1:].double() * len(negative)).round().flip(0)
    balanced = (kept_pos / len(positive) + (len(negative) - kept_neg) / len(negative)) / 2
    k = int(torch.argmax(balanced))  # the lowest threshold of equal accuracies
    return float(values[k]), float(balanced[k])


def fits(codes: Sequence[int], said: Sequence[int] | None) -> bool:
    """Does an object (colour and shape codes) fit what a phrase says? An unparsed phrase fits nothing."""
    return said is not None and all(s in (UNSAID, c) for c, s in zip(codes, said))


def clip_items(world: Path, seed: int = 0, min_side: float = 12) -> list[dict]:
    """(crop, expression) items of the held-out images: every object's crop with every expression
    of its image, and one badly placed box per object with the object's own expression."""
    coco = load_coco(world / HELDOUT)
    oracle, items = Oracle.from_coco(coco), []
    for image in coco.imgs.values():
        objects, (w, h) = oracle.objects(image["id"]), (image["width"], image["height"])
        boxes = [o.box for o in objects]
        exprs = {i: e for i in range(len(objects)) if (e := describe(objects, i, w, h, "full"))}
        rng = np.random.default_rng([seed, image["id"]])
        base = {"image": image["file_name"], "image_id": image["id"]}
        for i in exprs:
            codes = [CODES[getattr(objects[i], k)] for k in ATTRIBUTES]
            crops = [(j, boxes[i], "object") for j in exprs]
            bad = off_box(boxes[i], boxes, rng, w, h, min_side)
            crops += [(i, bad, "bad_box")] if bad is not None else []
            for j, (x1, y1, x2, y2), kind in crops:
                items.append({**base, "id": f"{image['id']}/{i}/{j}/{kind}", "object": i, "expr": j, "kind": kind,
                              "box": [x1 / w, y1 / h, x2 / w, y2 / h], "expression": exprs[j],
                              "fits": fits(codes, phrase_codes(exprs[j]))})
    for item in items:
        item["row_id"] = item["id"]
    return items


def clip_metrics(items: list[dict], lines: dict[str, dict], score: str = "cosine") -> dict:
    scored = [(it, lines[it["id"]][score]) for it in items if score in lines[it["id"]]]
    matched = [s for it, s in scored if it["kind"] == "object" and it["object"] == it["expr"]]
    wrong = [s for it, s in scored if it["kind"] == "object" and not it["fits"]]
    bad = [s for it, s in scored if it["kind"] == "bad_box"]
    by_crop = defaultdict(dict)
    for it, s in scored:
        if it["kind"] == "object":
            by_crop[it["image_id"], it["object"]][it["expr"]] = (s, it["fits"])
    hits, chance = [], []
    for (_, i), cands in by_crop.items():
        if len(cands) < 2 or i not in cands or any(f for j, (_, f) in cands.items() if j != i):
            continue  # a single candidate, or another expression fits this crop too
        hits.append(max(cands, key=lambda j: cands[j][0]) == i)
        chance.append(1 / len(cands))
    return {
        "score": score, "items": len(items), "failed": len(items) - len(scored),
        "retrieval_crops": len(hits), "retrieval_acc": float(np.mean(hits)) if hits else None,
        "retrieval_chance": float(np.mean(chance)) if chance else None,
        "matched": len(matched), "wrong_object": len(wrong), "bad_box": len(bad),
        "auc": auc(matched, wrong + bad), "auc_wrong_object": auc(matched, wrong), "auc_bad_box": auc(matched, bad),
        **dict(zip(("threshold", "balanced_acc"), best_threshold(matched, wrong + bad))),
    }


def judge_records(world: Path, seed: int = 0) -> list[dict]:
    instances = world / HELDOUT
    annotations = heldout_annotations(str(instances), str(world / "images"), seed)
    records = verification_records(annotations, Oracle.from_instances(instances), seed)
    return [{**r, "id": str(k), "row_id": str(k)} for k, r in enumerate(records)]


def judge_metrics(records: list[dict], lines: dict[str, dict]) -> dict:
    scored = [(r, lines[r["id"]]) for r in records if "p_yes" in lines[r["id"]]]
    yes = [line["p_yes"] for r, line in scored if r["label"] == YES]
    no = [line["p_yes"] for r, line in scored if r["label"] != YES]
    right = defaultdict(list)
    for r, line in scored:
        correct = (line["p_yes"] >= 0.5) == (r["label"] == YES)
        right["all"].append(correct)
        right[r["kind"]].append(correct)
    return {
        "pairs": len(records), "failed": len(records) - len(scored), "auc": auc(yes, no),
        **{f"acc_{k}": float(np.mean(v)) for k, v in right.items()},
        **{f"n_{k}": len(v) for k, v in right.items() if k != "all"},
        "yes_no_mass": float(np.mean([line["yes_no_mass"] for _, line in scored])) if scored else None,
    }


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m genixer.miniworld.models.heldout", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=("clip", "judge"))
    parser.add_argument("checkpoints", nargs="+", help="checkpoint dirs (run dirs work for the judge)")
    parser.add_argument("--world", required=True, type=Path, help="mini world root (with its held-out split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-side", type=int, default=12, help="the CLIP filter's minimum crop side (px)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, help="write the metrics as JSON")
    args = parser.parse_args(argv)
    run = {"batch_size": args.batch_size, "num_workers": args.num_workers, "device": args.device}
    results = {}
    for checkpoint in args.checkpoints:
        if args.model == "clip":
            items = clip_items(args.world, args.seed, args.min_side)
            lines = score_items(ClipCropScorer(checkpoint=checkpoint, min_side=args.min_side), items, args.world / "images", **run)
            results[checkpoint] = {s: clip_metrics(items, lines, s) for s in ("cosine", "raw")}
        else:
            records = judge_records(args.world, args.seed)
            results[checkpoint] = judge_metrics(records, score_items(LlavaJudge(checkpoint), records, args.world / "images", **run))
        print(f"{args.model} held-out check of {checkpoint}:")
        print(json.dumps(results[checkpoint], indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
