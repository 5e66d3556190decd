"""Per-image family language (own rng streams) and the official-layout files written from it."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

from .families_cot import boxcot, rd_dialogues
from .families_point import pointqa_local, refcoco_sentences, v7w_pointing, vg_phrases
from .families_text import aokvqa_question, detail_conversation, gqa_questions
from .longform import cap
from .naming import file_name, image_id
from .scene import (
    STREAM_AOKVQA,
    STREAM_BOXCOT,
    STREAM_DETAIL,
    STREAM_GQA,
    STREAM_POINTQA,
    STREAM_RD,
    STREAM_REFCOCO,
    STREAM_V7W,
    STREAM_VG,
    Scene,
    rng_for,
)

# paths key -> file under <root>/annotations/ (names as in docs/formats.md §1).
ANNOTATION_FILES: dict[str, str] = {
    "instances_train": "instances_train.json",
    "instances_heldout": "instances_heldout.json",
    "instances_val": "instances_val.json",
    # model benchmarks on held-out images (VQAv2 layout, REC lines as rec_train.jsonl)
    "vqa_questions_heldout": "v2_OpenEnded_mini_heldout_questions.json",
    "vqa_annotations_heldout": "v2_mini_heldout_annotations.json",
    "rec_heldout": "rec_heldout.jsonl",
    "vqa_questions": "v2_OpenEnded_mini_train_questions.json",
    "vqa_annotations": "v2_mini_train_annotations.json",
    "rec_train": "rec_train.jsonl",
    "captions_train": "captions_train.json",
    "llava_train": "llava_conversations_train.json",
    "gqa_train": "gqa_train_balanced_questions.json",
    "aokvqa_train": "aokvqa_v1p0_train.json",
    "llava_detail_train": "llava_detail_train.json",
    "refcoco_refs": "refcoco/refs(unc).p",
    "refcoco_instances": "refcoco/instances.json",
    "vg_regions": "vg/region_descriptions.json",
    "vg_image_data": "vg/image_data.json",
    "pointqa_local_train": "pointQA_local_train.jsonl",
    "v7w_pointing_train": "v7w_pointing_train.jsonl",
    "boxcot_train": "GPT4GEN_BoxCoT_train.jsonl",
    "rd_train": "GPT4GEN_RD_BoxCoT_train.jsonl",
}
# The pool split's files (same layouts as the held-out ones), written and listed in world.json only when the
# world has pool images (num_pool > 0): a world without a pool keeps exactly the files above.
POOL_FILES: dict[str, str] = {
    "instances_pool": "instances_pool.json",
    "vqa_questions_pool": "v2_OpenEnded_mini_pool_questions.json",
    "vqa_annotations_pool": "v2_mini_pool_annotations.json",
    "rec_pool": "rec_pool.jsonl",
}
FAMILY_KEYS = tuple(list(ANNOTATION_FILES)[list(ANNOTATION_FILES).index("gqa_train"):])  # what write_families owns
VG_URL = "https://mini-world.invalid/images/{file_name}"  # reserved TLD: a URL that names the file, never fetched


@dataclass(frozen=True)
class FamilyOptions:
    """How much grounded family language each train image gets, and in which form; the defaults are the released
    world (world.json records only what differs)."""
    boxcot_per_image: int = 1  # Q->C^Box A samples of distinct question types (more distinct samples, not repeats)
    rd_per_image: int = 1  # referential dialogues of distinct question types; the first is the released one
    rd_reasoning_first: bool = False  # RD relation answers state the relation, then 'So the answer is yes / no.'

    def __post_init__(self):
        for name in ("boxcot_per_image", "rd_per_image"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.rd_reasoning_first, bool):
            raise ValueError(f"rd_reasoning_first must be true or false, got {self.rd_reasoning_first!r}")

    def changed(self) -> dict[str, Any]:
        """The options that differ from the released world's."""
        return {k: v for k, v in asdict(self).items() if v != getattr(FamilyOptions, k)}

    @classmethod
    def recorded(cls, world_info: dict[str, Any]) -> FamilyOptions:
        """The options a world.json records (absent: released)."""
        return cls(**{f.name: world_info[f.name] for f in fields(cls) if f.name in world_info})


def family_records(scene: Scene, seed: int, options: FamilyOptions = FamilyOptions()) -> dict[str, Any]:
    """All family language of one train image; each family draws from its own stream."""
    def rng(stream: int):
        return rng_for(seed, scene.split, scene.index, stream)

    return {
        "gqa": gqa_questions(scene, rng(STREAM_GQA)),
        "aokvqa": aokvqa_question(scene, rng(STREAM_AOKVQA)),
        "detail": detail_conversation(scene, rng(STREAM_DETAIL)),
        "refcoco": refcoco_sentences(scene, rng(STREAM_REFCOCO)),
        "vg": vg_phrases(scene, rng(STREAM_VG)),
        "pointqa": pointqa_local(scene, rng(STREAM_POINTQA)),
        "v7w": v7w_pointing(scene, rng(STREAM_V7W)),
        "boxcot": boxcot(scene, rng(STREAM_BOXCOT), options.boxcot_per_image),
        "rd": rd_dialogues(scene, rng(STREAM_RD), options.rd_per_image, options.rd_reasoning_first),
    }


def _dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _refcoco(recs: list[dict[str, Any]], instances: dict[str, Any]) -> list[dict[str, Any]]:
    """Refer-API refs; ann_id / category_id point into the instances file written beside them."""
    ann_ids: dict[int, list[int]] = {}
    cats: dict[int, list[int]] = {}
    for a in instances["annotations"]:  # per image, in object order
        ann_ids.setdefault(a["image_id"], []).append(a["id"])
        cats.setdefault(a["image_id"], []).append(a["category_id"])
    refs: list[dict[str, Any]] = []
    sent_id = 0
    for r in recs:
        iid = image_id("train", r["index"])
        for obj_idx, texts in r["families"]["refcoco"]:
            sents = []
            for t in texts:
                sents.append({"tokens": t.split(), "raw": cap(t), "sent_id": sent_id, "sent": t})
                sent_id += 1
            refs.append({
                "sent_ids": [s["sent_id"] for s in sents], "file_name": file_name("train", r["index"]),
                "ann_id": ann_ids[iid][obj_idx], "ref_id": len(refs), "image_id": iid, "split": "train",
                "sentences": sents, "category_id": cats[iid][obj_idx],
            })
    return refs


def write_families(ann_dir: Path, recs: list[dict[str, Any]],
                   instances: dict[str, Any]) -> tuple[dict[str, Path], dict[str, int]]:
    """Write every family file for the train split; returns (paths by key, counts)."""
    paths = {k: ann_dir / ANNOTATION_FILES[k] for k in FAMILY_KEYS}
    gqa: dict[str, Any] = {}
    aok, detail, regions, image_data, pointqa, v7w, cot, rd = [], [], [], [], [], [], [], []
    n_regions = 0
    for r in recs:
        iid, fn, w, h = image_id("train", r["index"]), file_name("train", r["index"]), r["width"], r["height"]
        fam = r["families"]
        for j, q in enumerate(fam["gqa"]):
            gqa[f"{iid * 100 + j:08d}"] = {"imageId": PurePosixPath(fn).stem, "question": q["question"],
                                           "answer": q["answer"], "fullAnswer": q["fullAnswer"], "types": q["types"],
                                           "isBalanced": True}
        if fam["aokvqa"] is not None:
            a = fam["aokvqa"]
            aok.append({"split": "train", "image_id": iid, "question_id": f"mw{iid:012d}_0", "question": a["question"],
                        "choices": a["choices"], "correct_choice_idx": a["correct_choice_idx"],
                        "direct_answers": a["direct_answers"], "difficult_direct_answer": False,
                        "rationales": a["rationales"]})
        detail.append({"id": f"mw_detail_{r['index']:012d}", "image": fn, "conversations": fam["detail"]})
        entry = []
        for k, phrase in fam["vg"]:  # VG region ids run over the whole file
            x1, y1, x2, y2 = r["objects"][k][3]
            entry.append({"region_id": n_regions + len(entry) + 1, "image_id": iid, "phrase": phrase,
                          "x": x1, "y": y1, "width": x2 - x1, "height": y2 - y1})
        n_regions += len(entry)
        regions.append({"id": iid, "regions": entry})
        image_data.append({"image_id": iid, "width": w, "height": h, "url": VG_URL.format(file_name=fn),
                           "coco_id": iid, "flickr_id": None})
        for p in fam["pointqa"]:
            pointqa.append({"file_path": fn, **p, "img_h": h, "img_w": w})
        if fam["v7w"] is not None:
            v7w.append({"file_path": fn, **fam["v7w"], "img_h": h, "img_w": w})
        for rows, rec in [*((cot, b) for b in fam["boxcot"]), *((rd, d) for d in fam["rd"])]:
            rows.append({"img_path": fn, "boxes": rec["boxes"], "question": rec["question"],
                         "question_boxes_seq": rec["question_boxes_seq"], "cot_with_ans": rec["cot_with_ans"],
                         "answer_boxes_seq": rec["answer_boxes_seq"], "width": w, "height": h})
    refs = _refcoco(recs, instances)

    _dump(paths["gqa_train"], gqa)
    _dump(paths["aokvqa_train"], aok)
    _dump(paths["llava_detail_train"], detail)
    paths["refcoco_refs"].parent.mkdir(parents=True, exist_ok=True)
    paths["refcoco_refs"].write_bytes(pickle.dumps(refs, protocol=4))
    _dump(paths["refcoco_instances"], instances)
    _dump(paths["vg_regions"], regions)
    _dump(paths["vg_image_data"], image_data)
    for key, rows in (("pointqa_local_train", pointqa), ("v7w_pointing_train", v7w), ("boxcot_train", cot), ("rd_train", rd)):
        _jsonl(paths[key], rows)
    counts = {
        "gqa_questions": len(gqa), "aokvqa_questions": len(aok), "detail_conversations": len(detail),
        "refcoco_refs": len(refs), "refcoco_sentences": sum(len(r["sentences"]) for r in refs),
        "vg_regions": n_regions, "pointqa_local": len(pointqa), "v7w_pointing": len(v7w),
        "boxcot": len(cot), "rd": len(rd),
    }
    return paths, counts
