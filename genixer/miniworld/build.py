"""Build the mini world on disk: images plus every annotation format of docs/formats.md."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .family_files import ANNOTATION_FILES, FAMILY_KEYS, POOL_FILES, FamilyOptions, family_records, write_families
from .language import (
    NUMBER_WORDS,
    captions,
    conversation,
    make_questions,
    referring_expressions,
)
from .naming import HELDOUT_ID_OFFSET, ID_OFFSETS, file_name, image_id
from .render import render_scene
from .scene import COLORS, SHAPES, SIZES, STREAM_LANGUAGE, rng_for, sample_scene

VERSION = "mini_world-5"  # the world's layout (world.json; a different one rebuilds): 3 = a validation split,
# 4 = held-out VQA / REC ground truth for model benchmarks, 5 = RefCOCO's second sentences without false position words
# The annotation files' own ``info.version``: their content, which shipped models were trained on (frozen files:
# tests/test_mini_world.py). Not the RefCOCO refs, whose second sentences until world 5 could carry a position word
# that picks among no rivals and is false ("diamond on the right" for the only diamond, on the left).
ANNOTATIONS_VERSION = "mini_world-1"
ANNOTATIONS_INFO = {"description": "Genixer mini world VQA", "version": ANNOTATIONS_VERSION}   # the language files' info
SYNONYMS = {"large": "big", **{str(i): w for i, w in enumerate(NUMBER_WORDS)}}


def _make_image(task: tuple[int, str, int, str, FamilyOptions]) -> dict[str, Any]:
    """Render + save one image and return its ground truth and language (train: all of it; heldout: the
    VQA questions and referring expressions model benchmarks score against; pool: the same, its ground truth
    for a "ceiling" condition; val: none)."""
    seed, split, index, images_dir, family = task
    scene = sample_scene(seed, split, index)
    render_scene(scene, seed).save(Path(images_dir) / file_name(split, index), compress_level=6)
    rec: dict[str, Any] = {
        "index": index,
        "width": scene.width,
        "height": scene.height,
        "objects": [(o.shape, o.color, o.size, o.box) for o in scene.objects],
    }
    if split == "train":
        rng = rng_for(seed, split, index, STREAM_LANGUAGE)
        qas = make_questions(scene, rng)
        caps = captions(scene, rng)
        rec["qas"] = [(qa.question, qa.answer, qa.qtype, qa.answer_type) for qa in qas]
        rec["synonym_slot"] = [int(rng.integers(10)) if rng.random() < 0.15 else -1 for _ in qas]
        rec["refs"] = referring_expressions(scene)
        rec["captions"] = caps
        rec["conversation"] = conversation(qas, caps[0], rng)
        # own rng streams: the files above stay unchanged
        rec["families"] = family_records(scene, seed, family)
    elif split in ("heldout", "pool"):
        rng = rng_for(seed, split, index, STREAM_LANGUAGE)
        qas = make_questions(scene, rng)
        rec["qas"] = [(qa.question, qa.answer, qa.qtype, qa.answer_type) for qa in qas]
        rec["synonym_slot"] = [int(rng.integers(10)) if rng.random() < 0.15 else -1 for _ in qas]
        rec["refs"] = referring_expressions(scene)
    return rec


def _render_split(seed: int, split: str, n: int, images_dir: Path, workers: int,
                  family: FamilyOptions = FamilyOptions()) -> list[dict[str, Any]]:
    (images_dir / split).mkdir(parents=True, exist_ok=True)
    tasks = [(seed, split, i, str(images_dir), family) for i in range(n)]
    with Pool(workers) if workers > 0 else nullcontext() as pool:
        recs = pool.imap(_make_image, tasks, chunksize=16) if pool else map(_make_image, tasks)  # both keep index order
        return list(tqdm(recs, total=n, desc=f"[mini_world] {split}", unit="img", file=sys.stderr, disable=None))


def _instances(split: str, recs: list[dict[str, Any]]) -> dict[str, Any]:
    images, anns = [], []
    cat_ids = {s: i + 1 for i, s in enumerate(SHAPES)}
    for r in recs:
        iid = image_id(split, r["index"])
        images.append({"id": iid, "file_name": file_name(split, r["index"]), "width": r["width"], "height": r["height"]})
        for shape, color, size, (x1, y1, x2, y2) in r["objects"]:
            anns.append({
                "id": len(anns) + 1, "image_id": iid, "category_id": cat_ids[shape],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                "attributes": {"color": color, "size": size},
            })
    return {
        "info": {"description": f"Genixer mini world, {split} split", "version": ANNOTATIONS_VERSION},
        "images": images,
        "annotations": anns,
        "categories": [{"id": i, "name": s, "supercategory": "shape"} for s, i in cat_ids.items()],
    }


def _vqa_and_rec(split: str, recs: list[dict[str, Any]]) -> tuple[list[dict], list[dict], list[str]]:
    """VQAv2 questions and annotations (10 answers, a synonym in some), and REC lines, of one split."""
    questions, answers, rec_lines = [], [], []
    for r in recs:
        iid, fn = image_id(split, r["index"]), file_name(split, r["index"])
        for j, ((q, a, qtype, atype), slot) in enumerate(zip(r["qas"], r["synonym_slot"])):
            qid = iid * 100 + j
            questions.append({"image_id": iid, "question": q, "question_id": qid})
            given = [SYNONYMS[a] if k == slot and a in SYNONYMS else a for k in range(10)]
            answers.append({
                "question_id": qid, "image_id": iid, "question_type": qtype, "answer_type": atype,
                "multiple_choice_answer": a,
                "answers": [{"answer": g, "answer_confidence": "yes", "answer_id": k + 1} for k, g in enumerate(given)],
            })
        for obj_idx, text in r["refs"]:
            box = [int(v) for v in r["objects"][obj_idx][3]]
            rec_lines.append(json.dumps({"img_path": fn, "expression": text, "bbox": box, "height": r["height"], "width": r["width"]}))
    return questions, answers, rec_lines


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")


def _write_truth(paths: dict[str, Path], split: str, recs: list[dict[str, Any]]) -> tuple[int, int]:
    """One split's VQAv2 questions + annotations and REC lines (train: the annotated set; heldout: the
    benchmark; pool: a ceiling's ground truth); returns (questions, REC lines) counted."""
    questions, answers, rec_lines = _vqa_and_rec(split, recs)
    info = ANNOTATIONS_INFO
    key = "" if split == "train" else f"_{split}"
    _dump(paths[f"vqa_questions{key}"], {"info": info, "task_type": "Open-Ended", "data_type": "mini",
                                         "data_subtype": split, "questions": questions})
    _dump(paths[f"vqa_annotations{key}"], {"info": info, "data_type": "mini", "data_subtype": split, "annotations": answers})
    paths[f"rec_{split}"].write_text("".join(line + "\n" for line in rec_lines))
    return len(questions), len(rec_lines)


def _remove_pool(root: Path) -> None:
    """Delete the pool files an earlier build wrote (its images, queries and annotation files)."""
    for path in [root / "annotations" / name for name in POOL_FILES.values()] + [root / "images" / "pool.jsonl"]:
        path.unlink(missing_ok=True)
    folder = root / "images" / "pool"
    if folder.is_dir():
        for f in folder.glob("mw_pool_*.png"):
            f.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()


def build_world(root: Path, seed: int = 0, num_train: int = 2000, num_heldout: int = 200, workers: int = 0,
                num_val: int = 0, num_pool: int = 0, family: FamilyOptions = FamilyOptions()) -> dict[str, Path]:
    """Write the whole mini world under `root`; returns the written paths by name.

    Images without language: ``heldout`` (what reported tables are scored on) and ``val`` (where
    thresholds and settings are chosen; never in a reported table). Each has instances and queries.
    With ``num_pool`` > 0 also ``pool``: unannotated images generators produce data on, with instances,
    queries and held-out-layout VQA / REC ground truth (``POOL_FILES``) for a "ceiling" condition that
    trains on it; not an evaluation split. Without a pool nothing of it is written (the files stay as before).
    ``family``: how much grounded family language a train image gets and in which form (default: as released).
    """
    root = Path(root)
    images_dir, ann_dir = root / "images", root / "annotations"
    for d in (images_dir, ann_dir):
        d.mkdir(parents=True, exist_ok=True)
    train = _render_split(seed, "train", num_train, images_dir, workers, family)
    unlabeled = {split: _render_split(seed, split, n, images_dir, workers)
                 for split, n in (("heldout", num_heldout), ("val", num_val))}
    if num_pool > 0:
        unlabeled["pool"] = _render_split(seed, "pool", num_pool, images_dir, workers)
    else:
        _remove_pool(root)  # a rebuild without a pool leaves none of an earlier build's
    heldout = unlabeled["heldout"]
    pool_files = POOL_FILES if num_pool > 0 else {}

    paths = {
        "root": root,
        "images": images_dir,
        **{k: ann_dir / name for k, name in ANNOTATION_FILES.items() if k not in FAMILY_KEYS},
        **{k: ann_dir / name for k, name in pool_files.items()},
        **{f"queries_{split}": images_dir / f"{split}.jsonl" for split in unlabeled},  # beside the images they name
        "world": root / "world.json",
    }
    _dump(paths["instances_train"], _instances("train", train))
    for split, recs in unlabeled.items():
        _dump(paths[f"instances_{split}"], _instances(split, recs))
        paths[f"queries_{split}"].write_text("".join(
            json.dumps({"question_id": image_id(split, r["index"]), "image": file_name(split, r["index"])}) + "\n"
            for r in recs
        ))

    caps, convs = [], []
    for r in train:
        iid, fn = image_id("train", r["index"]), file_name("train", r["index"])
        for c in r["captions"]:
            caps.append({"id": len(caps) + 1, "image_id": iid, "caption": c})
        convs.append({"id": f"mw_train_{r['index']:012d}", "image": fn, "conversations": r["conversation"]})

    n_questions, n_rec = _write_truth(paths, "train", train)
    n_questions_h, n_rec_h = _write_truth(paths, "heldout", heldout)
    pool_counts: dict[str, int] = {}
    if num_pool > 0:  # the pool's ground truth in the held-out layouts
        n_questions_p, n_rec_p = _write_truth(paths, "pool", unlabeled["pool"])
        pool_counts = {"pool_images": num_pool, "pool_objects": sum(len(r["objects"]) for r in unlabeled["pool"]),
                       "vqa_questions_pool": n_questions_p, "rec_expressions_pool": n_rec_p}
    inst = json.loads(paths["instances_train"].read_text())
    _dump(paths["captions_train"], {"info": ANNOTATIONS_INFO, "images": inst["images"], "annotations": caps})
    _dump(paths["llava_train"], convs)
    family_paths, family_counts = write_families(ann_dir, train, inst)
    paths.update(family_paths)
    _dump(paths["world"], {
        "version": VERSION, "seed": seed,
        **family.changed(),
        "counts": {
            "train_images": len(train), "heldout_images": len(heldout), "val_images": len(unlabeled["val"]),
            "train_objects": sum(len(r["objects"]) for r in train),
            "heldout_objects": sum(len(r["objects"]) for r in heldout),
            "vqa_questions": n_questions, "rec_expressions": n_rec, "captions": len(caps),
            "vqa_questions_heldout": n_questions_h, "rec_expressions_heldout": n_rec_h,
            "conversations": len(convs), **family_counts, **pool_counts,
        },
        "files": {k: f"annotations/{name}" for k, name in {**ANNOTATION_FILES, **pool_files}.items()},
        "queries": {f"queries_{s}": paths[f"queries_{s}"].relative_to(root).as_posix() for s in unlabeled},
        # id-only formats: image path relative to images/ (GQA's imageId is the file stem)
        "image_patterns": {"gqa": "train/{imageId}.png", "aokvqa": "{split}/mw_{split}_{image_id:012d}.png",
                           "vg": "train/mw_train_{image_id:012d}.png"},
        "vocabulary": {"shapes": list(SHAPES), "colors": list(COLORS), "sizes": list(SIZES)},
        "heldout_image_id_offset": HELDOUT_ID_OFFSET,
        "image_id_offsets": {s: o for s, o in ID_OFFSETS.items() if s in ("train", *unlabeled)},
    })
    pool_note = f" + {num_pool} pool" if num_pool > 0 else ""
    print(f"[mini_world] wrote {len(train)} train + {len(heldout)} heldout + {len(unlabeled['val'])} val{pool_note} "
          f"images under {root}", file=sys.stderr)
    return paths
