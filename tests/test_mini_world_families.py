"""Mini world family files (GQA, A-OKVQA, LLaVA detail, RefCOCO, VG, PointQA, V7W, GPT4Gen): formats and oracle."""

from __future__ import annotations

import json
import pickle
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genixer.miniworld import (
    ANNOTATION_FILES, COLOR_RGB, COLORS, PH_ED, PH_ST, SHAPES, SIZES, Baselines, Oracle, build_world, groups_from_seq,
    majority_answers,
)
from genixer.miniworld.captions import is_describe_prompt
from genixer.miniworld.scene import BACKGROUNDS

N_TRAIN = 40
PH_RE = re.compile(r"<ph_st>(.*?)<ph_ed>")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return build_world(tmp_path_factory.mktemp("mw_fam"), seed=3, num_train=N_TRAIN, num_heldout=4)


@pytest.fixture(scope="module")
def oracle(world) -> Oracle:
    return Oracle.from_instances(world["instances_train"])


@pytest.fixture(scope="module")
def inst(world) -> dict:
    data = load(world["instances_train"])
    cats = {c["id"]: c["name"] for c in data["categories"]}
    images = {im["id"]: im for im in data["images"]}
    objs: dict[int, list] = {i: [] for i in images}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        objs[a["image_id"]].append((cats[a["category_id"]], a["attributes"]["color"], [x, y, x + w, y + h]))
    by_name = {im["file_name"]: im for im in data["images"]}
    return {"data": data, "images": images, "objects": objs, "by_name": by_name}


def load(p: Path):
    return json.loads(p.read_text())


def rows(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines()]


def norm(box, w, h):
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


def inside(box, w, h) -> bool:
    return 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h


# ---- formats ----------------------------------------------------------------------------------
def test_world_json_lists_every_file(world):
    info = load(world["world"])
    assert info["files"] == {k: f"annotations/{v}" for k, v in ANNOTATION_FILES.items()}
    # beside the images they name; the validation split is written (empty here) so paths never move
    assert info["queries"] == {"queries_heldout": "images/heldout.jsonl", "queries_val": "images/val.jsonl"}
    for key, rel in {**info["files"], **info["queries"]}.items():
        assert (world["root"] / rel).is_file() and world[key] == world["root"] / rel
    assert info["counts"]["gqa_questions"] > 0 and info["counts"]["boxcot"] == N_TRAIN


def test_gqa_format(world, inst):
    qs = load(world["gqa_train"])
    assert isinstance(qs, dict) and len(qs) >= 2 * N_TRAIN
    for qid, q in qs.items():
        assert qid.isdigit() and set(q) == {"imageId", "question", "answer", "fullAnswer", "types", "isBalanced"}
        assert isinstance(q["imageId"], str) and (world["images"] / "train" / f"{q['imageId']}.png").is_file()
        assert set(q["types"]) == {"structural", "semantic", "detailed"} and q["isBalanced"] is True
        assert q["fullAnswer"][0].isupper() and q["fullAnswer"].endswith(".") and len(q["answer"].split()) == 1


def test_aokvqa_format(world):
    data = load(world["aokvqa_train"])
    assert len(data) == N_TRAIN and len({q["question_id"] for q in data}) == N_TRAIN
    for q in data:
        assert q["split"] == "train" and (world["images"] / f"train/mw_train_{q['image_id']:012d}.png").is_file()
        assert len(q["choices"]) == 4 == len(set(q["choices"])) and 0 <= q["correct_choice_idx"] < 4
        assert len(q["direct_answers"]) == 10 and len(set(q["rationales"])) == 3
        assert q["difficult_direct_answer"] is False
        truth = q["choices"][q["correct_choice_idx"]]
        kinds = [COLORS if truth in COLORS else SHAPES if truth in SHAPES else None]
        assert all((c in kinds[0]) if kinds[0] else c.isdigit() for c in q["choices"])  # same answer kind
        assert Counter(q["direct_answers"]).most_common(1)[0][0] == truth
    assert len({q["correct_choice_idx"] for q in data}) > 1


def test_llava_detail_format(world):
    convs = load(world["llava_detail_train"])
    assert len(convs) == N_TRAIN
    for c in convs:
        turns = c["conversations"]
        assert turns[0]["value"].startswith("<image>\n") and len(turns) >= 4 and len(turns) % 2 == 0
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert all(t["value"][0].isupper() and t["value"].endswith(".") and len(t["value"].split()) >= 3
                   for t in turns[1::2])
        assert (world["images"] / c["image"]).is_file()


def test_refcoco_refer_layout(world, inst):
    refs = pickle.loads(world["refcoco_refs"].read_bytes())
    coco = load(world["refcoco_instances"])
    anns = {a["id"]: a for a in coco["annotations"]}
    assert coco["images"] == inst["data"]["images"]
    rec = {(r["img_path"], r["expression"]): r["bbox"] for r in rows(world["rec_train"])}
    assert len(refs) == len(rec)  # one ref per uniquely referable object, as rec_train.jsonl
    assert [r["ref_id"] for r in refs] == list(range(len(refs)))
    sent_ids = [s["sent_id"] for r in refs for s in r["sentences"]]
    assert sent_ids == list(range(len(sent_ids)))
    for r in refs:
        a = anns[r["ann_id"]]
        assert a["image_id"] == r["image_id"] and a["category_id"] == r["category_id"] and r["split"] == "train"
        assert r["file_name"] == inst["images"][r["image_id"]]["file_name"]
        assert 1 <= len(r["sentences"]) <= 2 and r["sent_ids"] == [s["sent_id"] for s in r["sentences"]]
        for s in r["sentences"]:
            assert s["tokens"] == s["sent"].split() and s["raw"].lower() == s["sent"]
        x, y, w, h = a["bbox"]
        assert rec[(r["file_name"], r["sentences"][0]["sent"])] == [x, y, x + w, y + h]


def test_visual_genome_layout(world, inst):
    regions, image_data = load(world["vg_regions"]), load(world["vg_image_data"])
    assert [e["id"] for e in regions] == [d["image_id"] for d in image_data] == sorted(inst["images"])
    ids = [r["region_id"] for e in regions for r in e["regions"]]
    assert ids == list(range(1, len(ids) + 1))
    for e, d in zip(regions, image_data):
        im = inst["images"][e["id"]]
        assert (d["width"], d["height"]) == (im["width"], im["height"]) and d["url"].endswith(im["file_name"])
        boxes = [o[2] for o in inst["objects"][e["id"]]]
        assert len(e["regions"]) >= len(boxes)
        for r in e["regions"]:
            box = [r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"]]
            assert r["image_id"] == e["id"] and box in boxes and r["phrase"].strip() == r["phrase"]


def test_pointqa_local_format(world, inst):
    data = rows(world["pointqa_local_train"])
    assert len(data) >= N_TRAIN
    for r in data:
        im = inst["by_name"][r["file_path"]]
        assert (r["img_w"], r["img_h"]) == (im["width"], im["height"])
        assert r["bbox"] in [o[2] for o in inst["objects"][im["id"]]]
        (x, y), (x1, y1, x2, y2) = r["point"], r["bbox"]
        assert x1 <= x < x2 and y1 <= y < y2
        # the point is a pixel of the object itself: its colour is the object's
        color = next(o[1] for o in inst["objects"][im["id"]] if o[2] == r["bbox"])
        rgb = np.asarray(Image.open(world["images"] / r["file_path"]).convert("RGB"))[y, x].astype(int)
        assert min(COLOR_RGB, key=lambda c: np.abs(rgb - COLOR_RGB[c]).sum()) == color


def test_v7w_format(world, inst):
    data = rows(world["v7w_pointing_train"])
    assert data
    reordered = False
    for r in data:
        im = inst["by_name"][r["file_path"]]
        boxes = [o[2] for o in inst["objects"][im["id"]]]
        assert len(r["candidates"]) >= 2 and sorted(r["candidates"]) == sorted(boxes)
        reordered |= r["candidates"] != boxes
        assert r["answer"] in r["candidates"] and (r["img_w"], r["img_h"]) == (im["width"], im["height"])
        (x, y), (x1, y1, x2, y2) = r["point"], r["answer"]
        assert x1 <= x < x2 and y1 <= y < y2
    assert reordered  # candidates come in a seeded order, not the annotation order


@pytest.mark.parametrize("key", ["boxcot_train", "rd_train"])
def test_gpt4gen_format(world, inst, key):
    data = rows(world[key])
    assert len(data) == N_TRAIN
    for r in data:
        im = inst["by_name"][r["img_path"]]
        assert (r["width"], r["height"]) == (im["width"], im["height"])
        assert all(inside(b, r["width"], r["height"]) and b in [o[2] for o in inst["objects"][im["id"]]] for b in r["boxes"])
        used = set()
        for text, seq in ((r["question"], r["question_boxes_seq"]), (r["cot_with_ans"], r["answer_boxes_seq"])):
            assert text.count(PH_ST) == text.count(PH_ED) == len(PH_RE.findall(text)) == len(seq)
            assert "<ph_" not in PH_RE.sub("", text)  # balanced, never nested
            assert all(g and all(0 <= k < len(r["boxes"]) for k in g) for g in seq)
            used |= {k for g in seq for k in g}
        assert used == set(range(len(r["boxes"])))
        if key == "boxcot_train":
            assert re.search(r"So the answer is \w+\.$", r["cot_with_ans"])
        else:
            assert r["question_boxes_seq"] and r["cot_with_ans"].endswith(".")
    if key == "boxcot_train":  # some phrases ground several objects at once
        assert any(len(g) > 1 for r in data for g in r["answer_boxes_seq"])


# ---- every ground-truth sample is judged correct; baselines stay below ---------------------------
def test_oracle_on_text_families(world, oracle):
    baseline = Baselines(oracle, majority_answers(world["vqa_annotations"]))
    gqa = [(oracle.image_id(q["imageId"] + ".png"), q) for q in load(world["gqa_train"]).values()]
    for iid, q in gqa:
        for answer in (q["answer"], q["fullAnswer"]):
            assert oracle.check_qa(iid, q["question"], answer).correct, q
    aok = load(world["aokvqa_train"])
    for q in aok:
        v = oracle.check_mc(q["image_id"], q["question"], q["choices"], q["correct_choice_idx"])
        assert v.correct and v.true_index == q["correct_choice_idx"], (q, v)
        assert all(oracle.check_qa(q["image_id"], q["question"], a).correct for a in q["direct_answers"] + q["rationales"])
    detail = [(oracle.image_id(c["image"]), h["value"], g["value"]) for c in load(world["llava_detail_train"])
              for h, g in zip(c["conversations"][::2], c["conversations"][1::2])]
    assert all(oracle.check_qa(i, q, a).correct for i, q, a in detail)
    assert sum(baseline.qa(iid, q["question"]).correct for iid, q in gqa) < 0.7 * len(gqa)
    assert sum(baseline.mc(q["image_id"], q["question"], q["choices"]).correct for q in aok) < 0.6 * len(aok)


def test_oracle_on_region_families(world, oracle, inst):
    baseline = Baselines(oracle)
    coco = load(world["refcoco_instances"])
    anns, sizes = {a["id"]: a for a in coco["annotations"]}, {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    n = single = 0
    for r in pickle.loads(world["refcoco_refs"].read_bytes()):
        x, y, w, h = anns[r["ann_id"]]["bbox"]
        box = norm((x, y, x + w, y + h), *sizes[r["image_id"]])
        for s in r["sentences"]:
            for text in (s["sent"], s["raw"]):
                v = oracle.check_reg(r["image_id"], box, text)
                assert v.correct and v.referent == v.object_index, (s, v)
            # the baseline's "the object" names the boxed object exactly when it is the image's only one
            alone = len(inst["objects"][r["image_id"]]) == 1
            assert baseline.reg(r["image_id"], box).correct == alone, (s, len(inst["objects"][r["image_id"]]))
            n, single = n + 1, single + alone
    assert 0 < single < n  # both sides of the equality are exercised
    for e in load(world["vg_regions"]):
        for reg in e["regions"]:
            box = norm((reg["x"], reg["y"], reg["x"] + reg["width"], reg["y"] + reg["height"]), *sizes[e["id"]])
            assert oracle.check_reg(e["id"], box, reg["phrase"], unique=False).correct, reg
    for r in rows(world["pointqa_local_train"]):
        iid, size = oracle.image_id(r["file_path"]), (r["img_w"], r["img_h"])
        box, point = norm(r["bbox"], *size), (r["point"][0] / size[0], r["point"][1] / size[1])
        for kw in ({"box": box}, {"point": point}, {"box": box, "point": point}):
            assert oracle.check_point_qa(iid, r["question"], r["answer"], **kw).correct, (r, kw)
    data = rows(world["v7w_pointing_train"])
    hits = 0
    for r in data:
        iid, size = oracle.image_id(r["file_path"]), (r["img_w"], r["img_h"])
        cands = [norm(c, *size) for c in r["candidates"]]
        v = oracle.check_v7w(iid, r["question"], cands, norm(r["answer"], *size))
        assert v.correct and r["candidates"][v.candidate_index] == r["answer"], (r, v)
        assert oracle.check_v7w(iid, r["question"], cands, (r["point"][0] / size[0], r["point"][1] / size[1])).correct
        hits += baseline.v7w(iid, r["question"], cands).correct
    assert hits < 0.7 * len(data)


@pytest.mark.parametrize("key", ["boxcot_train", "rd_train"])
def test_oracle_on_grounded_families(world, oracle, key):
    baseline = Baselines(oracle, majority_answers(world["vqa_annotations"]))
    data = rows(world[key])
    base = 0
    for r in data:
        iid, w, h = oracle.image_id(r["img_path"]), r["width"], r["height"]
        qb = groups_from_seq(r["boxes"], r["question_boxes_seq"], w, h)
        ab = groups_from_seq(r["boxes"], r["answer_boxes_seq"], w, h)
        v = oracle.check_grounded(iid, r["question"], r["cot_with_ans"], qb, ab)
        assert v.correct and v.answer_status == "correct" and all(g.correct for g in v.groups), (r, v)
        base += baseline.grounded(iid, r["question"], r["cot_with_ans"], qb, ab).correct
    assert base < 0.2 * len(data)


def grounded_verdict(oracle, r: dict, answer: str | None = None):
    """The oracle's verdict on a GPT4Gen-layout row, with its own answer or ``answer`` in its place."""
    qb = groups_from_seq(r["boxes"], r["question_boxes_seq"], r["width"], r["height"])
    ab = groups_from_seq(r["boxes"], r["answer_boxes_seq"], r["width"], r["height"])
    return oracle.check_grounded(oracle.image_id(r["img_path"]), r["question"], answer or r["cot_with_ans"], qb, ab)


def verified_by_image(oracle, data: list[dict]) -> dict[str, list]:
    """GPT4Gen-layout rows grouped by image, each asserted right by the oracle."""
    by_image: dict[str, list] = {}
    for r in data:
        by_image.setdefault(r["img_path"], []).append(r)
        assert grounded_verdict(oracle, r).correct, r
    return by_image


def test_several_boxcot_samples_per_image(world, oracle, tmp_path):
    """boxcot_per_image=3: up to three samples of distinct types per image, all verified right by the oracle; the
    first is the one-per-image world's sample (the released file is a subset), and ensure_world rebuilds for it."""
    from genixer.miniworld.ensure import ensure_world
    from genixer.miniworld.grammar import parse_question

    root = ensure_world(str(tmp_path / "w"), seed=3, num_train=N_TRAIN, num_heldout=4, boxcot_per_image=3)
    info = load(root / "world.json")
    data = rows(root / "annotations" / ANNOTATION_FILES["boxcot_train"])
    assert info["boxcot_per_image"] == 3 and info["counts"]["boxcot"] == len(data) > 2.5 * N_TRAIN
    by_image = verified_by_image(oracle, data)
    for samples in by_image.values():
        kinds = [parse_question(PH_RE.sub(r"\1", s["question"]))[0] for s in samples]
        assert len(samples) <= 3 and len(set(kinds)) == len(kinds), kinds
    assert [by_image[r["img_path"]][0] for r in rows(world["boxcot_train"])] == rows(world["boxcot_train"])
    assert ensure_world(str(root), seed=3, num_train=N_TRAIN, num_heldout=4, boxcot_per_image=3) == root
    ensure_world(str(root), seed=3, num_train=N_TRAIN, num_heldout=4)  # another count: rebuilt as released
    assert rows(root / "annotations" / ANNOTATION_FILES["boxcot_train"]) == rows(world["boxcot_train"])
    assert "boxcot_per_image" not in load(root / "world.json")


def rd_type(r: dict) -> str:
    """A referential dialogue's question type, from its texts (RD_TYPES)."""
    if "that object" in r["question"]:
        return "relation"
    value = PH_RE.sub(r"\1", r["cot_with_ans"]).split(" is ", 1)[1].rstrip(".")
    if value in COLORS or value in SIZES:
        return "color" if value in COLORS else "size"
    return "shape" if len(value.split()) == 2 and value.split()[1] in SHAPES else "what"


def test_several_rd_samples_per_image(world, oracle, tmp_path):
    """rd_per_image=5: up to five dialogues of distinct types per image (a relation only where one is clear), all
    verified right by the oracle; the first is the one-per-image world's (the released file is a subset), so
    relations grow about fivefold; world.json records the count and ensure_world rebuilds for another."""
    from genixer.miniworld.ensure import ensure_world

    root = ensure_world(str(tmp_path / "w"), seed=3, num_train=N_TRAIN, num_heldout=4, rd_per_image=5)
    info = load(root / "world.json")
    data = rows(root / "annotations" / ANNOTATION_FILES["rd_train"])
    released = rows(world["rd_train"])
    assert info["rd_per_image"] == 5 and info["counts"]["rd"] == len(data) > 4 * N_TRAIN
    by_image = verified_by_image(oracle, data)
    for samples in by_image.values():
        kinds = [rd_type(s) for s in samples]
        assert len(samples) <= 5 and len(set(kinds)) == len(kinds), kinds
    assert [by_image[r["img_path"]][0] for r in released] == released
    relations = Counter(rd_type(r) for r in data)["relation"]
    assert relations >= 3 * Counter(rd_type(r) for r in released)["relation"] > 0
    assert "boxcot_per_image" not in info
    assert ensure_world(str(root), seed=3, num_train=N_TRAIN, num_heldout=4, rd_per_image=5) == root
    ensure_world(str(root), seed=3, num_train=N_TRAIN, num_heldout=4)  # another count: rebuilt as released
    assert rows(root / "annotations" / ANNOTATION_FILES["rd_train"]) == released
    assert "rd_per_image" not in load(root / "world.json")


def test_rd_reasoning_first(world, oracle, tmp_path):
    """rd_reasoning_first: the same dialogues as released, but a relation answer states the relation before its yes /
    no ('It is below that object. So the answer is no.'); every row verified right by the oracle, every row with its
    final yes / no flipped rejected; world.json records the option and ensure_world rebuilds without it."""
    from genixer.miniworld.ensure import ensure_world

    root = ensure_world(str(tmp_path / "w"), seed=3, num_train=N_TRAIN, num_heldout=4, rd_reasoning_first=True)
    assert load(root / "world.json")["rd_reasoning_first"] is True
    data, released = rows(root / "annotations" / ANNOTATION_FILES["rd_train"]), rows(world["rd_train"])
    verified_by_image(oracle, data)
    assert len(data) == len(released)
    relations = 0
    for new, old in zip(data, released):
        assert {k: v for k, v in new.items() if k != "cot_with_ans"} == {k: v for k, v in old.items() if k != "cot_with_ans"}
        if rd_type(old) != "relation":
            assert new == old
            continue
        relations += 1
        lead, rest = old["cot_with_ans"].split(", ", 1)   # 'No, <ph_st>it<ph_ed> is below <ph_st>that object<ph_ed>.'
        chain = rest.replace(f"{PH_ST}it{PH_ED}", f"{PH_ST}It{PH_ED}", 1).removesuffix(".")
        assert new["cot_with_ans"] == f"{chain}. So the answer is {lead.lower()}."
        flipped = {"yes": "no", "no": "yes"}[lead.lower()]
        wrong = f"{chain}. So the answer is {flipped}."
        v = grounded_verdict(oracle, new, wrong)
        assert not v.correct and v.answer_status == "incorrect", (wrong, v)
    assert relations > 0
    ensure_world(str(root), seed=3, num_train=N_TRAIN, num_heldout=4)  # the option dropped: rebuilt as released
    assert rows(root / "annotations" / ANNOTATION_FILES["rd_train"]) == released
    assert "rd_reasoning_first" not in load(root / "world.json")


def test_family_options_are_checked(tmp_path):
    from genixer.miniworld.ensure import ensure_world

    for kwargs, message in (({"boxcot_per_image": 0}, "boxcot_per_image must be an integer >= 1"),
                            ({"rd_per_image": 0}, "rd_per_image must be an integer >= 1"),
                            ({"rd_reasoning_first": "yes"}, "rd_reasoning_first must be true or false")):
        with pytest.raises(ValueError, match=message):
            ensure_world(str(tmp_path / "w"), seed=3, num_train=2, num_heldout=1, **kwargs)
    with pytest.raises(TypeError, match="rd_per_imge"):
        ensure_world(str(tmp_path / "w"), seed=3, num_train=2, num_heldout=1, rd_per_imge=5)
    assert not (tmp_path / "w").exists()


# ---- hand-made samples: right ones pass, wrong ones fail with a reason ---------------------------
@pytest.fixture(scope="module")
def hand(tmp_path_factory) -> Oracle:
    """Image 7 (100x80): small red circle (left), large red circle (right), large blue square (bottom),
    two small green stars at nearly the same x; image 8: one yellow triangle."""
    objs = [(7, "circle", "red", "small", [5, 5, 16, 16]), (7, "circle", "red", "large", [70, 5, 28, 28]),
            (7, "square", "blue", "large", [40, 50, 25, 25]), (7, "star", "green", "small", [40, 5, 12, 12]),
            (7, "star", "green", "small", [44, 30, 12, 12]), (8, "triangle", "yellow", "large", [10, 10, 30, 30])]
    cats = {s: i + 1 for i, s in enumerate(SHAPES)}
    data = {
        "images": [{"id": i, "file_name": f"train/hand{i}.png", "width": 100, "height": 80} for i in (7, 8)],
        "annotations": [{"id": k + 1, "image_id": i, "category_id": cats[s], "bbox": b, "area": b[2] * b[3],
                         "iscrowd": 0, "attributes": {"color": c, "size": z}} for k, (i, s, c, z, b) in enumerate(objs)],
        "categories": [{"id": i, "name": s, "supercategory": "shape"} for s, i in cats.items()],
    }
    p = tmp_path_factory.mktemp("hand_fam") / "instances.json"
    p.write_text(json.dumps(data))
    return Oracle.from_instances(p)


B = [(0.05, 0.0625, 0.21, 0.2625), (0.70, 0.0625, 0.98, 0.4125), (0.40, 0.625, 0.65, 0.9375),
     (0.40, 0.0625, 0.52, 0.2125), (0.44, 0.375, 0.56, 0.525)]  # normalized boxes of image 7's objects
OFF = (0.0, 0.5, 0.1, 0.6)  # covers nothing


@pytest.mark.parametrize("question,answer,correct,reason", [
    ("What color is the square?", "The square is blue.", True, "long"),
    ("What color is the square?", "The square is red.", False, "!= truth 'blue'"),
    ("What color is the square?", "It is blue, not red.", False, "conflicting"),
    ("What is the shape of the blue object?", "The blue object is a square.", True, "long"),
    ("Is the large red circle small or large?", "The large red circle is large.", True, "long"),  # echo ignored
    ("Is the large red circle small or large?", "The large red circle is small.", False, "truth 'large'"),
    ("How many circles are there?", "There are two circles in the image.", True, "long"),
    ("How many circles are there?", "I can see 3 circles.", False, "truth '2'"),
    ("How many triangles are there?", "There are no triangles.", True, "long"),
    ("Is there a star in the image?", "yes", True, "ok"),  # POPE-style, bare category
    ("Is there a triangle in the image?", "no", True, "ok"),
    ("Is there a red object?", "Yes, there is a red object.", True, "long"),
    ("Is there a purple object in the image?", "Yes.", False, "truth 'no'"),
    ("Is the small red circle to the left of the blue square?", "Yes, it is to the left of it.", True, "long"),
    ("Is the small red circle to the left of the blue square?", "No, it is not.", False, "truth 'yes'"),
    ("What is the red object on the left?", "It is a small red circle.", True, "long"),
    ("What is the red object on the left?", "It is a large red circle.", False, "large"),
    # a long relation answer's own relation words must agree with its yes / no (position words are not relations)
    ("Is the small red circle to the left of the blue square?", "Yes, it is to the right of it.", False,
     "contradicts itself: the chain says 'to the right of', the answer 'yes'"),
    ("Is the small red circle to the left of the blue square?", "yes, below it", False, "says 'below'"),
    ("Is the blue square to the left of the small red circle?", "No, it is to the left of it.", False,
     "contradicts itself"),
    ("Is the blue square to the left of the small red circle?", "No, it is not above it.", False, "'not above'"),
    ("Is the blue square to the left of the small red circle?", "No, the blue square is not to the left of the small "
     "red circle.", True, "long"),
    ("Is the blue square to the left of the small red circle?", "No, it is to the right of it.", True, "long"),
    ("Is the red circle on the left above the blue square?", "Yes, the red circle on the left is above the blue "
     "square.", True, "long"),
    # a position word a long answer adds must pick the asked object, with the answer's own words
    ("What is the red object on the left?", "It is a red circle on the right.", False,
     "the answer's 'on the right' does not pick the small red circle but the large red circle"),
    ("What is the red object on the left?", "It is a small red circle on the left.", True, "long"),
    ("What color is the square?", "The square at the top is blue.", False, "'at the top' does not pick the large blue square"),
    ("What color is the square?", "The square at the bottom is blue.", True, "long"),
    # the long answer's other attribute words must fit the question's object or group
    ("What color is the square?", "The circle is blue.", False, "calls the square circle"),
    ("What is the shape of the blue object?", "The red object is a square.", False, "calls the square red"),
    ("What color is the large square?", "The large square is blue.", True, "long"),
    ("How many circles are there?", "There are two stars in the image.", False, "names 'star'"),
    ("How many triangles are there?", "There are no stars.", False, "names 'star'"),
    ("Is there a red object?", "Yes, there is a blue object.", False, "names 'blue'"),
    ("Is there a red object?", "Yes, there is a red circle in the image.", True, "long"),
])
def test_hand_long_qa(hand, question, answer, correct, reason):
    v = hand.check_qa(7, question, answer)
    assert v.correct == correct and reason in v.reason, v


@pytest.mark.parametrize("question,choices,index,status,reason", [
    ("What color is the square?", ["red", "blue", "green", "yellow"], 1, "correct", "ok"),
    ("What color is the square?", ["red", "blue", "green", "yellow"], 0, "incorrect", "chose 'red'"),
    ("What color is the square?", ["red", "blue", "green", "yellow"], 7, "incorrect", "outside"),
    ("What color is the square?", ["blue", "Blue.", "red", "green"], 0, "incorrect", "2 options are true"),
    ("What color is the square?", ["red", "green", "yellow", "purple"], 0, "incorrect", "0 options are true"),
    ("How many stars are there?", ["1", "2", "3", "4"], 1, "correct", "ok"),
    ("What color is the circle?", ["red", "blue", "green", "yellow"], 0, "incorrect", "ambiguous"),
    ("Why is the sky blue?", ["a", "b", "c", "d"], 0, "unverifiable", "grammar"),
])
def test_hand_mc(hand, question, choices, index, status, reason):
    v = hand.check_mc(7, question, choices, index)
    assert (v.status, v.correct) == (status, status == "correct") and reason in v.reason, v


@pytest.mark.parametrize("box,expression,unique,correct,reason", [
    (B[1], "the large red circle", True, True, "ok"),
    (B[1], "The red circle on the right.", True, True, "ok"),
    (B[4], "the green star at the bottom", True, True, "ok"),
    (B[1], "the red circle", True, False, "ambiguous"),
    (B[4], "the green star", True, False, "ambiguous"),
    (B[1], "the blue square", True, False, "denotes the large blue square"),
    (OFF, "the blue square", True, False, "matches no object"),
    (B[1], "a fluffy dog", True, False, "grammar"),
    (B[4], "a small green star", False, True, "ok"),
    (B[4], "green star", False, True, "ok"),
    (B[4], "a red star", False, False, "says red"),
    (B[4], "a small object", False, False, "neither"),
    (B[0], "a red circle on the right", False, False, "picks"),
    # a position word with no rival to pick among must still hold: the object's centre in that half of the image
    (B[0], "the small red circle on the right", True, False, "the only small red circle is not on the right"),
    (B[0], "the small red circle on the left", True, True, "ok"),
    (B[0], "the small red circle at the top", True, True, "ok"),
    (B[2], "the square on the left", True, False, "the only square is not on the left"),
    (B[2], "a blue square on the left", False, False, "the only blue square is not on the left"),
    (B[2], "the blue square at the bottom", False, True, "ok"),
])
def test_hand_reg(hand, box, expression, unique, correct, reason):
    v = hand.check_reg(7, box, expression, unique=unique)
    assert v.correct == correct and reason in v.reason, v


def test_captions_graded(world):
    """Every training caption, alone or as a dialogue's description turn, grades correct, its background
    redrawn from the world's seed; another background phrase, or the wrong seed, does not pass."""
    oracle = Oracle.from_instances(world["instances_train"], seed=3)
    caps = load(world["captions_train"])
    names = {im["id"]: im["file_name"] for im in caps["images"]}
    for c in caps["annotations"]:
        v = oracle.check_qa(oracle.image_id(names[c["image_id"]]), "What is shown in this image?", c["caption"])
        assert v.correct, (c, v)
    turns = [(oracle.image_id(c["image"]), h["value"].removeprefix("<image>\n"), g["value"])
             for c in load(world["llava_train"]) for h, g in zip(c["conversations"][::2], c["conversations"][1::2])]
    described = [(i, q, a) for i, q, a in turns if is_describe_prompt(q)]
    assert described and all(oracle.check_qa(i, q, a).correct for i, q, a in described)
    first = next(c for c in caps["annotations"] if "background" in c["caption"])
    iid, truth = oracle.image_id(names[first["image_id"]]), oracle.background(oracle.image_id(names[first["image_id"]]))
    other = next(b for b in BACKGROUNDS if b != truth and f" {b} " not in f" {truth} ")
    wrong = oracle.check_qa(iid, "Describe the image briefly.", first["caption"].replace(truth, other))
    assert wrong.status == "incorrect" and f"the image has a {truth} one" in wrong.reason, (first, wrong)
    with pytest.raises(ValueError, match="does not draw image"):
        Oracle.from_instances(world["instances_train"], seed=4).background(iid)


@pytest.mark.parametrize("caption,status,reason", [
    ("A small red circle, a large red circle, a large blue square, a small green star and a small green star on a "
     "light grey background.", "correct", "ok"),
    ("An image showing a red circle, a red circle, a blue square, a green star and a green star.", "correct", "ok"),
    ("A grey gradient background with a green star, a large blue square, a small red circle, a green star and a "
     "red circle.", "correct", "ok"),  # any order, sizes where given
    ("An image showing a red circle, a blue square, a green star and a green star.", "incorrect", "names 4 of the image's 5"),
    ("An image showing a red circle, a red circle, a red circle, a blue square and a green star.", "incorrect",
     "names 'a red circle', which the image does not have"),
    ("An image showing a large red circle, a large red circle, a blue square, a green star and a green star.",
     "incorrect", "names 'a large red circle'"),
    ("An image showing a red circle, a red circle, a yellow square, a green star and a green star.", "incorrect",
     "'a yellow square'"),
    ("A red circle, a red circle, a blue square, a green star and a green star on a purple background.", "incorrect",
     "no background is 'purple'"),
    ("A cat on a sofa.", "unverifiable", "outside"),
    ("An image showing two red circles, a blue square and two green stars.", "unverifiable", "'two red circles'"),
])
def test_hand_captions(hand, caption, status, reason):
    v = hand.check_qa(7, "Describe the image briefly.", caption)
    assert v.status == status and reason in v.reason, v


def test_hand_point_qa(hand):
    p0 = (13 / 100, 13 / 80)  # inside the small red circle
    ok = [("What color is this object?", "blue", {"box": B[2]}), ("What is this?", "circle", {"point": p0}),
          ("What is this?", "It is a small red circle.", {"point": p0}),
          ("What color is this object[0.400,0.625,0.650,0.938]?", "blue", {"box": B[2]}),
          ("What size is this?", "large", {"box": B[2], "point": (0.5, 0.8)})]
    for q, a, kw in ok:
        v = hand.check_point_qa(7, q, a, **kw)
        assert v.correct and v.status == "correct", (q, a, v)
    wrong = [("What color is this object?", "red", {"box": B[2]}, "incorrect", "truth 'blue'"),
             ("What is this?", "It is a large red circle.", {"point": p0}, "incorrect", "large"),
             ("What is this?", "circle", {"box": B[2], "point": p0}, "incorrect", "different objects"),
             ("What is this?", "circle", {"box": OFF}, "incorrect", "designates no object"),
             ("What is this?", "circle", {"point": (0.3, 0.5)}, "incorrect", "no object"),
             ("What color is the square?", "blue", {"box": B[0]}, "incorrect", "another object"),
             ("How many circles are there?", "2", {"box": B[0]}, "unverifiable", "not about one object"),
             ("Why is this here?", "yes", {"box": B[0]}, "unverifiable", "grammar")]
    for q, a, kw, status, reason in wrong:
        v = hand.check_point_qa(7, q, a, **kw)
        assert not v.correct and v.status == status and reason in v.reason, (q, a, v)
    with pytest.raises(ValueError, match="box or a point"):
        hand.check_point_qa(7, "What is this?", "circle")


def test_hand_v7w_and_baselines(hand):
    cands = [B[0], B[2], B[1]]
    v = hand.check_v7w(7, "Which object is the blue square?", cands, B[2])
    assert v.correct and v.candidate_index == 1 and v.target_index == 2
    assert hand.check_v7w(7, "Point to the blue square.", cands, (0.52, 0.78)).correct  # a point answer
    wrong = hand.check_v7w(7, "Where is the blue square?", cands, B[0])
    assert not wrong.correct and "does not designate the large blue square" in wrong.reason
    assert "ambiguous" in hand.check_v7w(7, "Which object is the red circle?", cands, B[0]).reason
    assert hand.check_v7w(7, "Why?", cands, B[0]).status == "unverifiable"
    # the candidates must be a real choice: distinct objects, one of them the named one
    nudged = (0.41, 0.63, 0.66, 0.94)  # the blue square's box, shifted a little (IoU >= 0.5)
    for cs, answer, reason in [([B[0], B[2], nudged], B[2], "candidates 2 and 3 both designate the large blue square"),
                               ([B[0], nudged, B[2]], (0.52, 0.78), "candidates 2 and 3 both designate"),
                               ([B[0], OFF, B[2]], B[2], "candidate 2 designates no object"),
                               ([B[0], B[1]], (0.52, 0.78), "no candidate designates the large blue square")]:
        v = hand.check_v7w(7, "Which object is the blue square?", cs, answer)
        assert not v.correct and v.status == "incorrect" and reason in v.reason, (cs, v)
    assert hand.check_v7w(7, "Which object is the blue square?", [B[2], B[3]], B[2]).correct  # a subset of the scene
    base = Baselines(hand, {"color": "red", "exist": "no"})
    assert not base.v7w(7, "Which object is the blue square?", cands).correct  # first candidate
    assert base.mc(7, "What color is the square?", ["blue", "red", "green", "yellow"]).correct  # option A
    assert base.reg(8, (0.1, 0.125, 0.4, 0.5)).correct and not base.reg(7, B[2]).correct  # "the object"
    assert not base.rec(7, "the blue square").correct  # central box
    assert base.qa(7, "Is there a purple star?").correct and not base.qa(7, "What color is the square?").correct
    assert base.point_qa(7, "What color is this object?", box=B[0]).correct  # majority 'red'


GROUNDED = [  # question, question box groups, answer, answer box groups, correct, reason
    ("How many red objects are there?", [], "There are <ph_st>two red objects<ph_ed>. So the answer is 2.",
     [[B[0], B[1]]], True, "ok"),
    ("How many red objects are there?", [], "There are <ph_st>two red objects<ph_ed>. So the answer is 2.",
     [[B[0]]], False, "names 2 objects but the group has 1"),
    ("How many red objects are there?", [], "There are <ph_st>two red objects<ph_ed>. So the answer is 2.",
     [[B[0], B[2]]], False, "does not fit the boxed large blue square"),
    ("How many red objects are there?", [], "There are <ph_st>two red objects<ph_ed>. So the answer is 3.",
     [[B[0], B[1]]], False, "final answer"),
    ("How many red objects are there?", [], "I see <ph_st>a red circle<ph_ed>. So the answer is 2.",
     [[OFF]], False, "matches no object"),
    # 'the star' is ambiguous as text; the question's box designates which star
    ("What color is <ph_st>the star<ph_ed>?", [[B[4]]], "<ph_st>The star<ph_ed> is green. So the answer is green.",
     [[B[4]]], True, "ok"),
    ("What color is <ph_st>the star<ph_ed>?", [[B[2]]], "<ph_st>The star<ph_ed> is green. So the answer is green.",
     [[B[4]]], False, "question group 0"),
    ("What is <ph_st>this<ph_ed>?", [[B[0]]], "<ph_st>It<ph_ed> is a small red circle.", [[B[0]]], True, "ok"),
    ("What is <ph_st>this<ph_ed>?", [[B[0]]], "<ph_st>It<ph_ed> is a large red circle.", [[B[0]]], False, "large"),
    ("Is <ph_st>this object<ph_ed> to the left of <ph_st>that object<ph_ed>?", [[B[0]], [B[2]]],
     "Yes, <ph_st>it<ph_ed> is to the left of <ph_st>that object<ph_ed>.", [[B[0]], [B[2]]], True, "ok"),
    ("Is <ph_st>this object<ph_ed> to the left of <ph_st>that object<ph_ed>?", [[B[0]], [B[2]]],
     "No, <ph_st>it<ph_ed> is to the right of <ph_st>that object<ph_ed>.", [[B[0]], [B[2]]], False, "truth 'yes'"),
    ("What color is <ph_st>the star<ph_ed>?", [], "So the answer is green.", [], False, "1 box marks but 0"),
    ("Is <ph_st>the red circle on the left<ph_ed> above the square?", [[B[1]]], "So the answer is yes.", [],
     False, "position word picks another object"),
    # inline coordinates as task parsers leave them: the phrase runs back to the last clause boundary
    ("What color is the square[0.400,0.625,0.650,0.938]?", [[B[2]]],
     "The square[0.400,0.625,0.650,0.938] is blue. So the answer is blue.", [[B[2]]], True, "ok"),
    ("Is the small red circle[0.05,0.06,0.21,0.26] to the left of the blue square[0.4,0.6,0.6,0.9]?",
     [[B[0]], [B[2]]], "So the answer is yes.", [], True, "ok"),
    # an answer that cannot be verified is never correct, even when every box group passes
    ("Why is <ph_st>the circle<ph_ed> here?", [[B[0]]], "Because. So the answer is yes.", [], False, "outside"),
    ("Why is the circle here?", [], "Because. So the answer is yes.", [], False, "outside"),
    # the chain of thought must not contradict the (true) answer it ends with
    ("What color is <ph_st>the star<ph_ed>?", [[B[4]]], "<ph_st>The star<ph_ed> is red. So the answer is green.",
     [[B[4]]], False, "the chain says 'red', the answer 'green'"),
    ("What size is <ph_st>the square<ph_ed>?", [[B[2]]], "<ph_st>The square<ph_ed> is big. So the answer is large.",
     [[B[2]]], True, "ok"),
    ("Are there any yellow triangles?", [], "I can see <ph_st>a large blue square<ph_ed>, but no yellow triangles. "
     "So the answer is no.", [[B[2]]], True, "ok"),
    ("Are there any yellow triangles?", [], "I can see <ph_st>a large blue square<ph_ed>, but no yellow circles. "
     "So the answer is no.", [[B[2]]], False, "denies 'yellow circles', the question asks about 'yellow triangles'"),
    ("How many red objects are there?", [], "I can see <ph_st>a large blue square<ph_ed>, but no red objects. "
     "So the answer is 2.", [[B[2]]], False, "the chain finds no red objects, the answer is '2'"),
    ("Is the small red circle[0.05,0.06,0.21,0.26] to the left of the blue square[0.4,0.6,0.6,0.9]?", [[B[0]], [B[2]]],
     "The small red circle[0.05,0.06,0.21,0.26] is to the left of the blue square[0.4,0.6,0.6,0.9]. So the answer is yes.",
     [[B[0]], [B[2]]], True, "ok"),
    ("Is the small red circle[0.05,0.06,0.21,0.26] to the left of the blue square[0.4,0.6,0.6,0.9]?", [[B[0]], [B[2]]],
     "The small red circle[0.05,0.06,0.21,0.26] is to the right of the blue square[0.4,0.6,0.6,0.9]. So the answer is yes.",
     [[B[0]], [B[2]]], False, "the chain says 'to the right of', the answer 'yes'"),
    ("Is the small red circle[0.05,0.06,0.21,0.26] to the left of the blue square[0.4,0.6,0.6,0.9]?", [[B[0]], [B[2]]],
     "The small red circle[0.05,0.06,0.21,0.26] is above the blue square[0.4,0.6,0.6,0.9]. So the answer is yes.",
     [[B[0]], [B[2]]], False, "the chain says 'above'"),
    ("How many red objects are there?", [], "I can see <ph_st>a small red circle<ph_ed>. So the answer is 2.",
     [[B[0]]], False, "the chain grounds 1 objects, the answer is '2'"),
    ("How many red objects are there?", [], "I can see <ph_st>a small red circle<ph_ed> and <ph_st>a large red "
     "circle<ph_ed>. So the answer is two.", [[B[0]], [B[1]]], True, "ok"),
    ("Are there any green stars?", [], "There are <ph_st>two green stars<ph_ed> in the image. So the answer is yes.",
     [[B[3], B[4]]], True, "ok"),
    # referential dialogue: the words after the leading yes / no are its chain
    ("Is <ph_st>this object<ph_ed> to the left of <ph_st>that object<ph_ed>?", [[B[0]], [B[2]]],
     "Yes, <ph_st>it<ph_ed> is to the right of <ph_st>that object<ph_ed>.", [[B[0]], [B[2]]], False,
     "the chain says 'to the right of', the answer 'yes'"),
    # the answer grounds the objects the question asks about: 'It' / 'The circle' is the asked object
    ("What is <ph_st>this<ph_ed>?", [[B[2]]], "<ph_st>It<ph_ed> is a large blue square.", [[B[0]]], False,
     "answer group 0 ('It') grounds the small red circle, not the asked large blue square"),
    ("What is <ph_st>this<ph_ed>?", [[B[2]]], "<ph_st>It<ph_ed> is a large blue square.", [[B[2]]], True, "ok"),
    ("What color is the circle on the left[0.05,0.06,0.21,0.26]?", [[B[0]]],
     "The circle[0.70,0.06,0.98,0.41] is red. So the answer is red.", [[B[1]]], False,
     "grounds the large red circle, not the asked small red circle"),
    ("What size is the star at the top[0.40,0.06,0.52,0.21]?", [[B[3]]],
     "The star[0.44,0.38,0.56,0.53] is small. So the answer is small.", [[B[4]]], False,
     "grounds another small green star than the asked one"),
    ("What color is the square?", [], "<ph_st>The circle<ph_ed> is red. So the answer is blue.", [[B[1]]], False,
     "not the asked large blue square"),
    ("Is <ph_st>this object<ph_ed> to the left of <ph_st>that object<ph_ed>?", [[B[0]], [B[2]]],
     "Yes, <ph_st>it<ph_ed> is to the left of <ph_st>that object<ph_ed>.", [[B[0]], [B[1]]], False,
     "answer group 1 ('that object') grounds the large red circle, not the asked large blue square"),
]


@pytest.mark.parametrize("question,qb,answer,ab,correct,reason", GROUNDED)
def test_hand_grounded(hand, question, qb, answer, ab, correct, reason):
    v = hand.check_grounded(7, question, answer, qb, ab)
    assert v.correct == correct and reason in v.reason, v


def grounded(oracle: Oracle, case: tuple):
    question, qb, answer, ab = case[:4]
    return oracle.check_grounded(7, question, answer, qb, ab)


def test_grounded_details(hand):
    assert hand.check_qa(7, "What color is the star?", "green").reason == "ambiguous reference"
    v = grounded(hand, GROUNDED[0])
    assert (v.qtype, v.truth, v.answer_status) == ("count", "2", "correct") and v.groups[0].object_indices == (0, 1)
    assert [g.phrase for g in grounded(hand, GROUNDED[14]).groups] == ["the small red circle", "the blue square"]
    unverifiable = grounded(hand, GROUNDED[15])
    assert unverifiable.answer_status == "unverifiable" and unverifiable.groups[0].correct
    question, qb, answer, ab = GROUNDED[0][:4]
    base = Baselines(hand, {"count": "2"}).grounded(7, question, answer, qb, ab)
    assert not base.correct and base.answer_status == "correct" and "matches no object" in base.reason


@pytest.mark.parametrize("answer", ["So the answer is yes.", "So the answer is no."])
def test_grounded_same_object_twice_is_unverifiable(hand, answer):
    """"Is the red circle right of the red circle?" with the same box twice decides nothing."""
    q = "Is <ph_st>the red circle<ph_ed> to the right of <ph_st>the red circle<ph_ed>?"
    v = hand.check_grounded(7, q, answer, [[B[1]], [B[1]]], [])
    assert all(g.correct for g in v.groups) and not v.correct
    assert (v.status, v.answer_status) == ("unverifiable", "unverifiable") and "same object" in v.reason


def test_grounded_status(hand):
    """A failed box group is incorrect whatever the answer; a checked answer is correct or incorrect."""
    q = "What color is <ph_st>the large circle<ph_ed>?"
    assert hand.check_grounded(7, q, "So the answer is red.", [[B[1]]], []).status == "correct"
    assert hand.check_grounded(7, q, "So the answer is blue.", [[B[1]]], []).status == "incorrect"
    assert hand.check_grounded(7, q, "So the answer is red.", [[B[2]]], []).status == "incorrect"
    q = "Why is <ph_st>the circle<ph_ed> here?"
    assert hand.check_grounded(7, q, "Because.", [[B[0]]], []).status == "unverifiable"
    assert hand.check_grounded(7, q, "Because.", [[B[2]]], []).status == "incorrect"
