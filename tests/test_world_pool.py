"""The mini world's ``pool`` split: unannotated images generators produce data on, with held-out-layout ground
truth (VQAv2 questions + annotations, Shikra REC rows) for a "ceiling" condition, graded by ``oracle.split=pool``."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import accepted, compose_config
from genixer.miniworld import COLORS, QUESTION_TYPES, SHAPES, SIZES, Oracle, build_world
from genixer.miniworld.family_files import ANNOTATION_FILES, POOL_FILES
from genixer.tasks.boxes import normalize_box

SEED, N_TRAIN, N_HELDOUT, N_VAL, N_POOL = 0, 4, 3, 2, 5
POOL_IDS = [3_000_001 + i for i in range(N_POOL)]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return build_world(tmp_path_factory.mktemp("mw_pool"), seed=SEED, num_train=N_TRAIN, num_heldout=N_HELDOUT,
                       num_val=N_VAL, num_pool=N_POOL)


def load(p: Path):
    return json.loads(p.read_text())


def rows(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines()]


def wrong(answer: str) -> str:
    """A different answer of the same kind."""
    for words in (("yes", "no"), COLORS, SHAPES, SIZES):
        if answer in words:
            return words[(words.index(answer) + 1) % len(words)]
    return str(int(answer) + 1)


def test_pool_files_ids_and_counts(world):
    root = world["root"]
    info = load(world["world"])
    assert {k: f"annotations/{v}" for k, v in POOL_FILES.items()}.items() <= info["files"].items()
    assert info["queries"]["queries_pool"] == "images/pool.jsonl" and world["queries_pool"] == root / "images/pool.jsonl"
    for key, rel in POOL_FILES.items():
        assert world[key] == root / "annotations" / rel and world[key].is_file()
    inst = load(world["instances_pool"])
    assert [im["id"] for im in inst["images"]] == POOL_IDS
    assert [im["file_name"] for im in inst["images"]] == [f"pool/mw_pool_{i:012d}.png" for i in POOL_IDS]
    assert all((root / "images" / im["file_name"]).is_file() for im in inst["images"])
    assert sorted(p.name for p in (root / "images/pool").iterdir()) == [f"mw_pool_{i:012d}.png" for i in POOL_IDS]
    # the queries file lists every pool image, in id order, as heldout.jsonl does
    assert rows(world["queries_pool"]) == [{"question_id": im["id"], "image": im["file_name"]} for im in inst["images"]]
    questions = load(world["vqa_questions_pool"])
    annotations = load(world["vqa_annotations_pool"])
    assert questions["data_subtype"] == annotations["data_subtype"] == "pool"
    counts = info["counts"]
    assert counts["pool_images"] == N_POOL and counts["pool_objects"] == len(inst["annotations"])
    assert counts["vqa_questions_pool"] == len(questions["questions"]) == len(annotations["annotations"]) > 0
    assert counts["rec_expressions_pool"] == len(rows(world["rec_pool"])) > 0
    assert info["image_id_offsets"]["pool"] == 3_000_000
    assert {im["image_id"] for im in questions["questions"]} <= set(POOL_IDS)
    assert {a["question_type"] for a in annotations["annotations"]} <= set(QUESTION_TYPES)


def test_pool_ids_do_not_collide_with_other_splits(world):
    image_ids = {split: {im["id"] for im in load(world[f"instances_{split}"])["images"]}
                 for split in ("train", "heldout", "val", "pool")}
    assert sum(map(len, image_ids.values())) == len(set().union(*image_ids.values())) == N_TRAIN + N_HELDOUT + N_VAL + N_POOL
    qids = {name: [q["question_id"] for q in load(world[name])["questions"]]
            for name in ("vqa_questions", "vqa_questions_heldout", "vqa_questions_pool")}
    assert sum(map(len, qids.values())) == len(set().union(*map(set, qids.values())))
    ann = load(world["vqa_annotations_pool"])["annotations"]
    assert [a["question_id"] for a in ann] == qids["vqa_questions_pool"]
    assert all(a["question_id"] // 100 == a["image_id"] for a in ann)


def test_pool_ground_truth_is_what_the_oracle_computes(world):
    """Answers are the scene's truth; REC boxes are the referred objects' boxes (xyxy pixels)."""
    oracle = Oracle.from_instances(world["instances_pool"])
    questions = {q["question_id"]: q for q in load(world["vqa_questions_pool"])["questions"]}
    for a in load(world["vqa_annotations_pool"])["annotations"]:
        q = questions[a["question_id"]]
        assert oracle.truth(q["image_id"], q["question"]).truth == a["multiple_choice_answer"]
    inst = load(world["instances_pool"])
    boxes: dict[str, list] = {}
    by_id = {im["id"]: im["file_name"] for im in inst["images"]}
    for o in inst["annotations"]:
        x, y, w, h = o["bbox"]
        boxes.setdefault(by_id[o["image_id"]], []).append([x, y, x + w, y + h])
    recs = rows(world["rec_pool"])
    assert {r["img_path"] for r in recs} == set(by_id.values())  # every pool image has at least one object
    for r in recs:
        assert r["bbox"] in boxes[r["img_path"]]
        image_id = oracle.image_id(r["img_path"])
        assert (r["width"], r["height"]) == oracle.size(image_id)
        assert oracle.check_rec(image_id, r["expression"], normalize_box(r["bbox"], r["width"], r["height"])).correct


def test_evaluation_and_pool_images_are_pairwise_distinct(world):
    def digest(path: Path) -> str:
        return hashlib.sha256(np.asarray(Image.open(path).convert("RGB")).tobytes()).hexdigest()

    splits = ("train", "heldout", "val", "pool")
    hashes = {split: {digest(p) for p in (world["images"] / split).glob("*.png")} for split in splits}
    assert [len(h) for h in hashes.values()] == [N_TRAIN, N_HELDOUT, N_VAL, N_POOL]
    assert len(set().union(*hashes.values())) == N_TRAIN + N_HELDOUT + N_VAL + N_POOL


def test_no_pool_no_pool_files(tmp_path):
    paths = build_world(tmp_path / "w", seed=SEED, num_train=2, num_heldout=1, num_val=1)
    assert not any("pool" in key for key in paths)
    assert not [p for p in tmp_path.rglob("*") if "pool" in p.name]
    info = load(paths["world"])
    assert "pool" not in json.dumps(info)
    assert info["files"] == {k: f"annotations/{v}" for k, v in ANNOTATION_FILES.items()}


def test_ensure_world_rebuilds_when_only_num_pool_changes(tmp_path, monkeypatch):
    import genixer.miniworld.ensure as ensure

    builds = []
    monkeypatch.setattr(ensure, "build_world", lambda *a, **k: builds.append(k.get("num_pool")) or build_world(*a, **k))
    root = tmp_path / "w"
    args = dict(seed=SEED, num_train=2, num_heldout=1, num_val=1)
    ensure.ensure_world(str(root), **args)                # a world without pool counts: num_pool 0
    ensure.ensure_world(str(root), **args, num_pool=0)
    assert builds == [0]
    ensure.ensure_world(str(root), **args, num_pool=2)
    assert builds == [0, 2] and load(root / "world.json")["counts"]["pool_images"] == 2
    assert len(load(root / "annotations/instances_pool.json")["images"]) == 2
    ensure.ensure_world(str(root), **args, num_pool=2)
    assert builds == [0, 2]
    ensure.ensure_world(str(root), **args)                # back to no pool: rebuilt, and the pool's files gone
    assert builds == [0, 2, 0] and not [p for p in root.rglob("*") if "pool" in p.name]


def test_oracle_split_pool_grades_pool_rows(world):
    cfg = compose_config("evaluate", [f"paths.mini_world={world['root']}", "oracle=mini_world", "oracle.split=pool"])
    from hydra.utils import instantiate

    oracle = instantiate(cfg.oracle)
    assert oracle.split == "pool"
    questions = {q["question_id"]: q for q in load(world["vqa_questions_pool"])["questions"]}
    names = {im["id"]: im["file_name"] for im in load(world["instances_pool"])["images"]}
    good, bad = [], []
    for a in load(world["vqa_annotations_pool"])["annotations"]:
        q = questions[a["question_id"]]
        image = names[q["image_id"]]
        good.append(accepted("common_vqa", {"question": q["question"], "answer": a["multiple_choice_answer"]},
                             f"{q['question_id']}/common_vqa/0", image))
        bad.append(accepted("common_vqa", {"question": q["question"], "answer": wrong(a["multiple_choice_answer"])},
                            f"{q['question_id']}/common_vqa/1", image))
    assert all(oracle.check(r)[0] for r in good)
    assert not any(oracle.check(r)[0] for r in bad)
    r = rows(world["rec_pool"])[0]
    box = normalize_box(r["bbox"], r["width"], r["height"])
    rec = accepted("rec", {"question": f"Where is {r['expression']}?", "expression": r["expression"], "box": box},
                   "rec/0", r["img_path"])
    missed = accepted("rec", {"question": f"Where is {r['expression']}?", "expression": r["expression"],
                              "box": (0.0, 0.0, 0.02, 0.02)}, "rec/1", r["img_path"])   # a corner speck: IoU ~ 0
    assert oracle.check(rec)[0] and not oracle.check(missed)[0]
    result = oracle.evaluate_run(good + bad)["families"]["common_vqa"]
    assert result["n"] == len(good) + len(bad) and result["accuracy"] == pytest.approx(0.5)
    # the held-out oracle does not know pool images (a pool run graded on heldout fails loudly)
    heldout = instantiate(compose_config("evaluate", [f"paths.mini_world={world['root']}", "oracle=mini_world"]).oracle)
    with pytest.raises(KeyError, match="not in this oracle"):
        heldout.check(good[0])
