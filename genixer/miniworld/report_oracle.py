"""The report's oracle section on the mini world (genixer.report loads it by name: the core never imports it): per-family accuracy (and filter precision / recall), per-row verdicts.

The world is ``--world`` or found from the run's inputs (``<world>/images`` is the image root, the query
file ``<world>/images/<split>.jsonl``); the split is the query file's name (heldout / val / pool / train), else
the images' folder, else heldout (the split reported tables use).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath

from genixer.report.runs import RunView

from .evaluator import FAMILIES, MiniWorldOracle

SPLITS = ("heldout", "val", "pool", "train")
VQA_ANNOTATIONS = "annotations/v2_mini_train_annotations.json"   # the baselines' majority answers


def has_annotations(world: Path) -> bool:
    return (world / VQA_ANNOTATIONS).is_file() and any((world / "annotations").glob("instances_*.json"))


def find_world(run: RunView, world: str | Path | None = None) -> Path | None:
    """The mini world the run was generated on; an error when ``world`` is given but holds no annotations."""
    if world is not None:
        if not has_annotations(Path(world)):
            raise FileNotFoundError(f"{world}: no mini world (annotations/instances_*.json and {VQA_ANNOTATIONS})")
        return Path(world)
    inputs = run.source.get("inputs", {})
    candidates = [run.image_root.parent] + ([Path(inputs["queries"]).parent.parent] if inputs.get("queries") else [])
    return next((c for c in candidates if has_annotations(c)), None)


def infer_split(run: RunView, world: Path) -> str:
    stem = Path(str(run.source.get("inputs", {}).get("queries", ""))).stem.lower()
    split = next((s for s in SPLITS if s in stem), None)
    if split is None:
        folders = Counter(PurePosixPath(str(r.get("image", ""))).parts[0] for r in run.rows if r.get("image"))
        split = next((f for f, _ in folders.most_common() if f in SPLITS), "heldout")
    return split if (world / f"annotations/instances_{split}.json").is_file() else "heldout"


def verdict(oracle: MiniWorldOracle, row: dict) -> str:
    """correct / wrong / unverifiable for an accepted row of a known family."""
    correct, _, status = oracle.check(row)
    return "correct" if correct else ("unverifiable" if status == "unverifiable" else "wrong")


def evaluate(run: RunView, world: Path, split: str | None = None) -> dict:
    """``split``, ``generation`` (evaluate_run), ``selection`` (filter runs), ``verdicts`` (row id -> verdict),
    ``outside``: accepted rows whose image is not in the split's instances (left out)."""
    split = split or infer_split(run, world)
    oracle = MiniWorldOracle(str(world / f"annotations/instances_{split}.json"), str(world / VQA_ANNOTATIONS), split,
                             str(world / "world.json"))
    known, outside = [], 0
    for row in run.rows:
        if row.get("status") == "ok":
            try:
                oracle.oracle.image_id(row["image"])
            except KeyError:
                outside += 1
                continue
        known.append(row)
    checkable = [r for r in known if r.get("status") == "ok" and r.get("family") in FAMILIES]
    result = {"world": str(world), "split": split, "outside": outside, "generation": oracle.evaluate_run(known),
              "verdicts": {r["id"]: verdict(oracle, r) for r in checkable}}
    if run.is_filter:
        result["selection"] = oracle.evaluate_selection([r for r in checkable if "kept" in r])
    return result
