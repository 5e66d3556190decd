"""Held-out checks of the mini world's filter models, scored by the filter's own scorers.

``clip``: (region, expression) items labelled by the strict REC check (``clip_items``): the own
description with its object's box is correct; a same-colour, same-shape twin's box, another
object's box, a badly placed box, or an ambiguous expression ("the red circle" beside another
red circle) is not. AUC of correct vs incorrect (overall and per kind), retrieval among an
image's objects, and the threshold: chosen on the val split, then applied unchanged to the
held-out split (which the demo's tables are scored on).

``judge``: accuracy and AUC of P(Yes) on balanced true / corrupted QA pairs of the held-out
images (``genixer.miniworld.models.verification``), per checkpoint (e.g. the fine-tuned judge and the
generator it started from), at the fixed rule P(Yes) >= 0.5 (not tuned on any data); ``--split val`` scores
the val images instead (to choose between judges without looking at the held-out ones). Kinds: short and long
answers, multiple choice, and one description per image with a twin naming another object ("description") or
another background ("background").

    python -m genixer.miniworld.models.heldout clip CHECKPOINT --world ROOT [--out FILE]
    python -m genixer.miniworld.models.heldout judge CHECKPOINT [CHECKPOINT ...] --world ROOT [--split val] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import binary_auroc, binary_roc

from genixer.miniworld.models.clip_pairs import off_box
from genixer.miniworld import Oracle, world_seed
from genixer.miniworld.language import describe
from genixer.data.sources.coco import load_coco
from genixer.miniworld.models.verification import YES, heldout_annotations, verification_records
from genixer.filtering.clip import ClipCropScorer
from genixer.filtering.judge import LlavaJudge
from genixer.filtering.scorer import ItemCollator, ItemDataset, Scorer
from genixer.filtering.module import FilterModule



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
    # back to counts, and the accuracy compared as an integer numerator (float sums of equal
    # accuracies can differ in the last bit and pick a higher threshold).
    n_pos, n_neg = len(positive), len(negative)
    kept_pos = (tpr[1:].double() * n_pos).round().long().flip(0)
    kept_neg = (fpr[1:].double() * n_neg).round().long().flip(0)
    balanced = kept_pos * n_neg + (n_neg - kept_neg) * n_pos  # 2 * n_pos * n_neg * balanced accuracy
    k = int(torch.argmax(balanced))  # the first maximum: the lowest threshold of equal accuracies
    return float(values[k]), int(balanced[k]) / (2 * n_pos * n_neg)


def clip_items(world: Path, split: str = "heldout", seed: int = 0, min_side: float = 12) -> list[dict]:
    """(region, expression) items of one split's images, labelled by the strict REC check.

    Expressions: each object's unique description ("the small red circle on the left"), and for
    objects with a same-colour, same-shape twin the ambiguous "the red circle". Each is paired with
    every object's box and with one badly placed box (IoU < 0.5 with every object) at its referent.
    ``label`` = ``Oracle.check_rec(...).correct``; ``kind`` = matched, twin (the box holds an
    object of the same colour and shape), wrong_object, ambiguous or bad_box.
    """
    coco = load_coco(world / f"annotations/instances_{split}.json")
    oracle, items = Oracle.from_coco(coco), []
    for image in coco.imgs.values():
        objects, (w, h) = oracle.objects(image["id"]), (image["width"], image["height"])
        boxes = [o.box for o in objects]
        exprs = [(e, i) for i in range(len(objects)) if (e := describe(objects, i, w, h, "full"))]
        pairs = Counter((o.color, o.shape) for o in objects)
        exprs += [(f"the {c} {s}", None) for (c, s), n in sorted(pairs.items()) if n > 1]
        rng = np.random.default_rng([seed, image["id"]])
        for e, ref in exprs:
            regions = list(enumerate(boxes))
            bad = off_box(boxes[ref], boxes, rng, w, h, min_side) if ref is not None else None
            regions += [(None, bad)] if bad is not None else []
            for j, (x1, y1, x2, y2) in regions:
                box = [x1 / w, y1 / h, x2 / w, y2 / h]
                label = oracle.check_rec(image["id"], e, box).correct
                if label:
                    kind = "matched"
                elif ref is None:
                    kind = "ambiguous"
                elif j is None:
                    kind = "bad_box"
                else:
                    same = (objects[j].color, objects[j].shape) == (objects[ref].color, objects[ref].shape)
                    kind = "twin" if same else "wrong_object"
                key = f"{image['id']}/{e}/{j if j is not None else 'bad'}"
                items.append({"id": key, "row_id": key, "image": image["file_name"], "image_id": image["id"],
                              "expression": e, "referent": ref, "object": j, "box": box, "label": label, "kind": kind})
    return items


KINDS = ("twin", "wrong_object", "ambiguous", "bad_box")


def clip_metrics(items: list[dict], lines: dict[str, dict], score: str = "cosine",
                 threshold: float | None = None) -> dict:
    """AUC of correct vs incorrect (all, and per kind of incorrect), retrieval among an image's
    objects, and at ``threshold`` (default: the best balanced accuracy here) balanced accuracy and
    the precision of what it keeps."""
    scored = [(it, lines[it["id"]][score]) for it in items if score in lines[it["id"]]]
    positive = [s for it, s in scored if it["label"]]
    negative = {k: [s for it, s in scored if it["kind"] == k] for k in KINDS}
    every_negative = [s for k in KINDS for s in negative[k]]
    by_expression = defaultdict(dict)  # (image, expression, referent) -> object -> score
    for it, s in scored:
        if it["referent"] is not None and it["object"] is not None:
            by_expression[it["image_id"], it["expression"], it["referent"]][it["object"]] = s
    hits = [max(c, key=c.get) == ref for (_, _, ref), c in by_expression.items() if len(c) > 1]
    chosen, _ = best_threshold(positive, every_negative)
    at = chosen if threshold is None else threshold
    kept = [(it["label"], s >= at) for it, s in scored] if at is not None else []
    kept_right = sum(lab and k for lab, k in kept)
    tpr = kept_right / max(1, len(positive))
    tnr = sum(not lab and not k for lab, k in kept) / max(1, len(every_negative))
    return {
        "score": score, "items": len(items), "failed": len(items) - len(scored),
        "correct": len(positive), **{k: len(v) for k, v in negative.items()},
        "auc": auc(positive, every_negative), **{f"auc_{k}": auc(positive, v) for k, v in negative.items()},
        "retrieval_expressions": len(hits), "retrieval_acc": float(np.mean(hits)) if hits else None,
        "threshold": at, "threshold_chosen_here": threshold is None, "best_threshold_here": chosen,
        "balanced_acc": (tpr + tnr) / 2 if kept else None,
        "precision_kept": kept_right / max(1, sum(k for _, k in kept)) if kept else None,
    }


def clip_check(checkpoint: str, world: Path, seed: int = 0, min_side: float = 12, **run) -> dict:
    """Per score: the threshold chosen on the val split (best balanced accuracy), then the held-out
    split's metrics at that threshold; held-out images never choose anything."""
    scorer = ClipCropScorer(checkpoint=checkpoint, min_side=min_side)
    out: dict = {}
    for split in ("val", "heldout"):
        items = clip_items(world, split, seed, min_side)
        if not items:
            raise ValueError(f"{world}: the {split} split has no images (build the world with num_val > 0)")
        lines = score_items(scorer, items, world / "images", **run)
        for score in ("cosine", "raw"):
            chosen = out.get(score, {}).get("val", {}).get("threshold")
            out.setdefault(score, {})[split] = clip_metrics(items, lines, score, chosen if split == "heldout" else None)
    return out


BACKGROUND_TWINS = 1 / 3  # of the description twins, those naming another background instead of another object


def judge_records(world: Path, seed: int = 0, split: str = "heldout") -> list[dict]:
    instances, scene_seed = world / f"annotations/instances_{split}.json", world_seed(world / "world.json")
    annotations = heldout_annotations(str(instances), str(world / "images"), seed, scene_seed)
    records = verification_records(annotations, Oracle.from_instances(instances, scene_seed), seed, BACKGROUND_TWINS)
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
    parser.add_argument("--world", required=True, type=Path, help="mini world root (with its val and held-out splits)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("heldout", "val"), default="heldout",
                        help="the judge's images: val to choose between judges, heldout to report")
    parser.add_argument("--min-side", type=int, default=12, help="the CLIP filter's minimum crop side (px)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", type=Path, help="write the metrics as JSON")
    args = parser.parse_args(argv)
    args.world = args.world.resolve()  # records name images by path under it; a relative root would be joined twice
    run = {"batch_size": args.batch_size, "num_workers": args.num_workers, "device": args.device}
    results = {}
    for checkpoint in args.checkpoints:
        if args.model == "clip":
            results[checkpoint] = clip_check(checkpoint, args.world, args.seed, args.min_side, **run)
        else:
            records = judge_records(args.world, args.seed, args.split)
            results[checkpoint] = judge_metrics(records, score_items(LlavaJudge(checkpoint), records, args.world / "images", **run))
        print(f"{args.model} held-out check of {checkpoint}:")
        print(json.dumps(results[checkpoint], indent=1))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
