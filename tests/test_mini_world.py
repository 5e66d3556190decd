"""Tests for the embedded mini world: determinism, file formats, oracle and baselines."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genixer.miniworld import (
    ANNOTATION_FILES,
    CENTRAL_BOX,
    COLORS,
    SHAPES,
    Oracle,
    build_world,
    file_name,
    majority_answers,
    normalize_answer,
)

N_TRAIN, N_HELDOUT = 40, 10
ANN_FILES = (
    "instances_train.json", "instances_heldout.json", "v2_OpenEnded_mini_train_questions.json",
    "v2_mini_train_annotations.json", "rec_train.jsonl", "captions_train.json", "llava_conversations_train.json",
)
# sha256 of the files a shipped model was trained on, from a seed-3 40/10 build made before the
# family files were added; new content must come from new rng streams and never change these.
FROZEN_SHA256 = {
    "annotations/captions_train.json": "fef1e2c2db3dbc016336b222c6931ecac25cc468a8ce662651c9f4d107fd9455",
    "annotations/instances_heldout.json": "cc0a66b232c9c238c95126ec970c3a9897066827192648cc127a838300025069",
    "annotations/instances_train.json": "d692aeae52fb13a27d62b052480e89618ed98396df27ae994acfe3bfffb4b17b",
    "annotations/llava_conversations_train.json": "d3e38f56976309ac08549207354b97e6be7551a3a05d8b97fe408af1453a5847",
    "annotations/rec_train.jsonl": "ed8ba89d47ab21e5b70e34144e72a36c3dd2289d21cea40ca20ee07b89259524",
    "annotations/v2_OpenEnded_mini_train_questions.json": "0f35333894fb6b5b38f985926627949d1d03e98387f23609b36bc696d7a3971c",
    "annotations/v2_mini_train_annotations.json": "cf0e46905875ec870eabe70a51e4f3f6c9cc0f532d50ab274ef7ae3df0e3a6a2",
    "images/heldout.jsonl": "b14581c1e5cfdcbf09b55fa4762d82795a689e2f35785121789b693088a1fd51",  # was queries/
}
# Over decoded pixels (not PNG bytes, which depend on the zlib build): relative path, shape, RGB bytes.
FROZEN_PIXELS_SHA256 = "eb475d72324f21f974aeb392a92c8d1027e9a81bbec0f7f41ce313d828760254"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return build_world(tmp_path_factory.mktemp("mw_a"), seed=3, num_train=N_TRAIN, num_heldout=N_HELDOUT)


@pytest.fixture(scope="module")
def oracle(world) -> Oracle:
    return Oracle.from_instances(world["instances_train"])


def load(p: Path):
    return json.loads(p.read_text())


def pixels(p: Path) -> np.ndarray:
    return np.asarray(Image.open(p).convert("RGB"))


# ---- determinism ------------------------------------------------------------------------------
def test_existing_files_are_frozen(world):
    for rel, digest in FROZEN_SHA256.items():
        assert hashlib.sha256((world["root"] / rel).read_bytes()).hexdigest() == digest, rel
    h = hashlib.sha256()
    for f in sorted(world["images"].rglob("*.png")):
        a = pixels(f)
        h.update(f.relative_to(world["images"]).as_posix().encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    assert h.hexdigest() == FROZEN_PIXELS_SHA256


def test_same_seed_is_byte_identical(world, tmp_path):
    other = build_world(tmp_path / "b", seed=3, num_train=N_TRAIN, num_heldout=N_HELDOUT, workers=2)
    assert set(ANN_FILES) < set(ANNOTATION_FILES.values())
    for name in ANNOTATION_FILES.values():
        assert (world["root"] / "annotations" / name).read_bytes() == (other["root"] / "annotations" / name).read_bytes(), name
    assert world["queries_heldout"].read_bytes() == other["queries_heldout"].read_bytes()
    for split, n in (("train", N_TRAIN), ("heldout", N_HELDOUT)):
        for i in range(n):
            f = file_name(split, i)
            assert np.array_equal(pixels(world["images"] / f), pixels(other["images"] / f)), f


def test_index_independent_of_split_size_and_seed_matters(world, tmp_path):
    small = build_world(tmp_path / "c", seed=3, num_train=7, num_heldout=2)
    for i in range(7):
        f = file_name("train", i)
        assert np.array_equal(pixels(world["images"] / f), pixels(small["images"] / f))
    big_inst, small_inst = load(world["instances_train"]), load(small["instances_train"])
    assert small_inst["images"] == big_inst["images"][:7]
    assert small_inst["annotations"] == big_inst["annotations"][: len(small_inst["annotations"])]
    big_q = load(world["vqa_questions"])["questions"]
    assert load(small["vqa_questions"])["questions"] == [q for q in big_q if q["image_id"] <= 7]
    other_seed = build_world(tmp_path / "d", seed=4, num_train=3, num_heldout=1)
    f = "train/mw_train_000000000001.png"
    assert load(other_seed["instances_train"])["images"] != big_inst["images"][:3]
    assert pixels(other_seed["images"] / f).shape != pixels(world["images"] / f).shape or not np.array_equal(
        pixels(other_seed["images"] / f), pixels(world["images"] / f))


# ---- formats ----------------------------------------------------------------------------------
def test_instances_format(world):
    inst = load(world["instances_train"])
    held = load(world["instances_heldout"])
    assert [c["name"] for c in inst["categories"]] == list(SHAPES)
    assert [im["id"] for im in inst["images"]] == list(range(1, N_TRAIN + 1))
    assert [im["id"] for im in held["images"]] == [1_000_001 + i for i in range(N_HELDOUT)]
    assert any(im["width"] != im["height"] for im in inst["images"])
    assert all(96 <= im[k] <= 160 for im in inst["images"] for k in ("width", "height"))
    sizes = {im["id"]: (im["width"], im["height"]) for im in inst["images"]}
    per_image = {}
    for a in inst["annotations"]:
        x, y, w, h = a["bbox"]
        W, H = sizes[a["image_id"]]
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H and w > 0 and h > 0
        assert a["area"] == w * h and a["iscrowd"] == 0
        assert a["attributes"]["color"] in COLORS and a["attributes"]["size"] in ("small", "large")
        per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    assert set(per_image) == set(sizes) and max(per_image.values()) <= 4
    for im in inst["images"]:
        with Image.open(world["images"] / im["file_name"]) as f:
            assert f.size == (im["width"], im["height"])


def test_vqa_format(world):
    qs = load(world["vqa_questions"])
    anns = load(world["vqa_annotations"])["annotations"]
    assert qs["task_type"] == "Open-Ended" and qs["data_subtype"] == "train"
    assert [q["question_id"] for q in qs["questions"]] == [a["question_id"] for a in anns]
    assert len({q["question_id"] for q in qs["questions"]}) == len(anns)
    per_image = {}
    for q in qs["questions"]:
        per_image[q["image_id"]] = per_image.get(q["image_id"], 0) + 1
    assert len(per_image) == N_TRAIN and all(3 <= n <= 6 for n in per_image.values())
    types = {a["question_type"] for a in anns}
    assert types == {"color", "shape", "count", "exist", "size", "relation"}
    for a in anns:
        assert len(a["answers"]) == 10 and [x["answer_id"] for x in a["answers"]] == list(range(1, 11))
        assert all(normalize_answer(x["answer"]) == a["multiple_choice_answer"] for x in a["answers"])
        expected = {"exist": "yes/no", "relation": "yes/no", "count": "number"}.get(a["question_type"], "other")
        assert a["answer_type"] == expected


def test_rec_captions_llava_queries(world):
    inst = load(world["instances_train"])
    coco_boxes = {
        (a["image_id"], tuple(a["bbox"])): a for a in inst["annotations"]
    }
    names = {im["file_name"]: im for im in inst["images"]}
    lines = [json.loads(line) for line in world["rec_train"].read_text().splitlines()]
    assert len(lines) >= N_TRAIN
    for r in lines:
        im = names[r["img_path"]]
        assert (r["width"], r["height"]) == (im["width"], im["height"])
        x1, y1, x2, y2 = r["bbox"]
        a = coco_boxes[(im["id"], (x1, y1, x2 - x1, y2 - y1))]  # same object in COCO
        cat = inst["categories"][a["category_id"] - 1]["name"]
        assert r["expression"].startswith("the ") and cat in r["expression"] and a["attributes"]["color"] in r["expression"]
    caps = load(world["captions_train"])
    assert len(caps["images"]) == N_TRAIN and len(caps["annotations"]) == 2 * N_TRAIN
    assert all(c["caption"][0].isupper() and c["caption"].endswith(".") for c in caps["annotations"])
    convs = load(world["llava_train"])
    assert len(convs) == N_TRAIN
    for c in convs:
        turns = c["conversations"]
        assert turns[0]["value"].startswith("<image>\n") and len(turns) % 2 == 0 and len(turns) >= 4
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert (world["images"] / c["image"]).exists()
    queries = [json.loads(line) for line in world["queries_heldout"].read_text().splitlines()]
    assert [q["question_id"] for q in queries] == [1_000_001 + i for i in range(N_HELDOUT)]
    assert world["queries_heldout"].parent == world["images"]  # image paths are relative to the file's folder
    assert all((world["queries_heldout"].parent / q["image"]).exists() for q in queries)
    assert not (world["root"] / "queries").exists()
    assert load(world["world"])["counts"]["train_images"] == N_TRAIN


# ---- oracle on generated data -----------------------------------------------------------------
def _wrong(answer: str, qtype: str) -> str:
    if answer in ("yes", "no"):
        return "no" if answer == "yes" else "yes"
    if qtype == "count":
        return str(int(answer) + 1)
    if qtype == "size":
        return "small" if answer == "large" else "large"
    vocab = COLORS if qtype == "color" else SHAPES
    return next(v for v in vocab if v != answer)


def test_oracle_grades_generated_vqa(world, oracle):
    qs = load(world["vqa_questions"])["questions"]
    anns = load(world["vqa_annotations"])["annotations"]
    for q, a in zip(qs, anns):
        v = oracle.check_qa(q["image_id"], q["question"], a["multiple_choice_answer"])
        assert v.status == "correct" and v.qtype == a["question_type"], (q, a, v)
        w = oracle.check_qa(q["image_id"], q["question"], _wrong(a["multiple_choice_answer"], a["question_type"]))
        assert w.status == "incorrect", (q, w)
        # synonyms stored among the 10 answers must grade correct too
        for x in a["answers"]:
            assert oracle.check_qa(q["image_id"], q["question"], x["answer"]).status == "correct"


def test_oracle_rec_on_generated(world, oracle):
    for line in world["rec_train"].read_text().splitlines():
        r = json.loads(line)
        iid = oracle.image_id(r["img_path"])
        x1, y1, x2, y2 = r["bbox"]
        W, H = r["width"], r["height"]
        v = oracle.check_rec(iid, r["expression"], (x1 / W, y1 / H, x2 / W, y2 / H))
        assert v.correct and v.iou == pytest.approx(1.0)


def test_image_id_lookup(world, oracle):
    assert oracle.image_id("train/mw_train_000000000004.png") == 4
    assert oracle.image_id(str(world["images"] / "train/mw_train_000000000004.png")) == 4
    assert oracle.image_id("mw_train_000000000001.png") == 1
    with pytest.raises(KeyError, match="not in this oracle"):
        oracle.image_id("train/mw_train_999999999999.png")
    held = Oracle.from_instances(world["instances_heldout"])
    assert held.image_id("heldout/mw_heldout_000001000002.png") == 1_000_002


# ---- oracle on a hand-made scene --------------------------------------------------------------
@pytest.fixture(scope="module")
def hand(tmp_path_factory) -> Oracle:
    """100x80 image: small red circle (left), large red circle (right), blue square (bottom middle),
    plus two green stars at nearly the same x (position-ambiguous)."""
    objs = [
        ("circle", "red", "small", [5, 5, 16, 16]),
        ("circle", "red", "large", [70, 5, 28, 28]),
        ("square", "blue", "large", [40, 50, 25, 25]),
        ("star", "green", "small", [40, 5, 12, 12]),
        ("star", "green", "small", [44, 30, 12, 12]),
    ]
    cats = {s: i + 1 for i, s in enumerate(SHAPES)}
    data = {
        "images": [{"id": 7, "file_name": "train/hand.png", "width": 100, "height": 80}],
        "annotations": [
            {"id": k + 1, "image_id": 7, "category_id": cats[s], "bbox": b, "area": b[2] * b[3], "iscrowd": 0,
             "attributes": {"color": c, "size": z}}
            for k, (s, c, z, b) in enumerate(objs)
        ],
        "categories": [{"id": i, "name": s, "supercategory": "shape"} for s, i in cats.items()],
    }
    p = tmp_path_factory.mktemp("hand") / "instances.json"
    p.write_text(json.dumps(data))
    return Oracle.from_instances(p)


@pytest.mark.parametrize("question,answer,status,truth", [
    ("What color is the square?", "blue", "correct", "blue"),
    ("What color is the square?", "Blue.", "correct", "blue"),
    ("what colour is the square ?", "red", "incorrect", "blue"),
    ("What is the shape of the blue object?", "a square", "correct", "square"),
    ("Which shape is the small red object?", "circle", "correct", "circle"),
    ("Is the large red circle small or large?", "big", "correct", "large"),
    ("What size is the red circle on the left?", "small", "correct", "small"),
    ("What size is the red circle on the right?", "small", "incorrect", "large"),
    ("How many circles are there?", "two", "correct", "2"),
    ("How many red objects are in the image?", "2", "correct", "2"),
    ("How many objects can you see?", "5", "correct", "5"),
    ("How many triangles are there?", "0", "correct", "0"),
    ("Is there a blue square in the image?", "yes", "correct", "yes"),
    ("Are there any purple stars?", "no", "correct", "no"),
    ("Does the image contain a red square?", "yes", "incorrect", "no"),
    ("Is the small red circle to the left of the blue square?", "yes", "correct", "yes"),
    ("Does the blue square appear above the large red circle?", "no", "correct", "no"),
    ("Is the blue square positioned below the red circle on the right?", "yes", "correct", "yes"),
    ("<image>\nIs the green star at the top above the blue square?", "yes", "correct", "yes"),
])
def test_hand_qa(hand, question, answer, status, truth):
    v = hand.check_qa(7, question, answer)
    assert (v.status, v.truth) == (status, truth), v


@pytest.mark.parametrize("question,status,reason", [
    ("What color is the triangle?", "incorrect", "no such object"),
    ("What size is the yellow circle?", "incorrect", "no such object"),
    ("What color is the circle?", "incorrect", "ambiguous"),
    ("What size is the green star on the left?", "incorrect", "ambiguous"),  # stars' x gap too small
    ("Is the green star at the top to the left of the blue square?", "unverifiable", "gap"),  # |dx| small
    ("Is the red circle on the left to the left of the red circle on the left?", "unverifiable", "same object"),
    ("Why is the sky blue?", "unverifiable", "grammar"),
    ("What color is the red circle next to the square?", "unverifiable", "grammar"),
])
def test_hand_qa_failures(hand, question, status, reason):
    v = hand.check_qa(7, question, "red")
    assert v.status == status and reason in v.reason, v


def _norm(box, w=100, h=80):
    x, y, bw, bh = box
    return (x / w, y / h, (x + bw) / w, (y + bh) / h)


SMALL_RED, LARGE_RED, BLUE, TOP_STAR, LOW_STAR = (_norm(b) for b in (
    [5, 5, 16, 16], [70, 5, 28, 28], [40, 50, 25, 25], [40, 5, 12, 12], [44, 30, 12, 12]))


@pytest.mark.parametrize("text,box,status,reason", [
    ("the large red circle", LARGE_RED, "correct", "ok"),
    ("Where is the large red circle?", LARGE_RED, "correct", "ok"),
    ("the small red circle on the left", SMALL_RED, "correct", "ok"),
    ("the red circle on the right", LARGE_RED, "correct", "ok"),
    ("the green star at the top", TOP_STAR, "correct", "ok"),
    # twins told apart only by size or position: the other twin's box is wrong
    ("the small red circle on the left", LARGE_RED, "incorrect", "misses the small red circle"),
    ("the small red circle", LARGE_RED, "incorrect", "misses"),
    ("the red circle on the left", LARGE_RED, "incorrect", "misses"),
    ("the green star at the bottom", TOP_STAR, "incorrect", "misses"),
    # ambiguous or unresolvable expressions are never correct, whatever the box
    ("the red circle", LARGE_RED, "incorrect", "ambiguous"),
    ("the green star on the left", TOP_STAR, "incorrect", "no clear position"),
    ("the large blue circle", LARGE_RED, "incorrect", "no such object"),
    ("the red square", BLUE, "incorrect", "no such object"),
    ("the blue square", CENTRAL_BOX, "incorrect", "misses"),
    ("the red thing next to the square", LARGE_RED, "unverifiable", "grammar"),
    ("this object", LARGE_RED, "unverifiable", "deictic"),
])
def test_hand_rec(hand, text, box, status, reason):
    v = hand.check_rec(7, text, box)
    assert (v.status, v.correct) == (status, status == "correct") and reason in v.reason, v


def test_hand_rec_fields(hand):
    v = hand.check_rec(7, "the small red circle", LARGE_RED)
    assert (v.referent, v.object_index, v.iou) == (0, 1, 0.0)
    shifted = (LARGE_RED[0] - 0.2, LARGE_RED[1] + 0.2, LARGE_RED[2] - 0.2, LARGE_RED[3] + 0.2)
    v = hand.check_rec(7, "the large red circle", shifted)
    assert v.referent == 1 and v.iou < 0.3 and not v.correct


def _iou(a, b) -> float:
    """Plain-Python IoU of two pixel xyxy boxes, independent of the oracle's torchvision call."""
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_central_baseline_on_world(world, oracle):
    """The central box is right exactly where it overlaps the expression's own box at IoU >= 0.5."""
    lines = [json.loads(line) for line in world["rec_train"].read_text().splitlines()]
    got = [oracle.check_rec(oracle.image_id(r["img_path"]), r["expression"], CENTRAL_BOX).correct for r in lines]
    want = []
    for r in lines:
        W, H = r["width"], r["height"]
        central = (CENTRAL_BOX[0] * W, CENTRAL_BOX[1] * H, CENTRAL_BOX[2] * W, CENTRAL_BOX[3] * H)
        want.append(_iou(central, r["bbox"]) >= 0.5)
    assert got == want  # (the own-box case, all correct, is test_oracle_rec_on_generated)


def test_majority_answers(tmp_path):
    anns = [("color", "red"), ("color", "blue"), ("color", "red"), ("count", "2"), ("count", "1"), ("exist", "no")]
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"annotations": [
        {"question_id": i, "image_id": 1, "question_type": t, "answer_type": "other", "multiple_choice_answer": a,
         "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k in range(10)]}
        for i, (t, a) in enumerate(anns)
    ]}))
    assert majority_answers(p) == {"color": "red", "count": "1", "exist": "no"}


def test_majority_on_world(world, oracle):
    maj = majority_answers(world["vqa_annotations"])
    assert set(maj) == {"color", "shape", "count", "exist", "size", "relation"}
    assert maj["exist"] in ("yes", "no") and maj["count"].isdigit()


def test_val_split_has_its_own_images(tmp_path):
    """Settings are chosen on val, tables reported on heldout: disjoint images, ids and query files."""
    w = build_world(tmp_path / "v", seed=3, num_train=2, num_heldout=3, num_val=3)
    held, val = (load(w[f"instances_{split}"]) for split in ("heldout", "val"))
    assert [im["id"] for im in val["images"]] == [2_000_001, 2_000_002, 2_000_003]
    assert {im["file_name"] for im in val["images"]}.isdisjoint(im["file_name"] for im in held["images"])
    boxes = [[a["bbox"] for a in d["annotations"]] for d in (held, val)]
    assert boxes[0] != boxes[1]  # other scenes, not copies
    queries = [json.loads(line) for line in w["queries_val"].read_text().splitlines()]
    assert [q["question_id"] for q in queries] == [2_000_001, 2_000_002, 2_000_003]
    assert all((w["images"] / q["image"]).is_file() for q in queries)
    assert Oracle.from_instances(w["instances_val"]).image_id(queries[0]["image"]) == 2_000_001
    assert load(w["world"])["counts"]["val_images"] == 3
