"""Dataset converters on the mini world's official-format files and on tiny hand-written fixtures.

Each converter's main test runs twice: on the world's file (a missing file, or a count or image
pattern missing from world.json, fails the test) and on a small fixture in the same layout, whose
exact values also cover clamping, dropped boxes and option behaviour. Error tests use fixtures:
the world never writes bad files.
"""
from __future__ import annotations

import json
import pickle
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL import Image

from genixer.miniworld import build_world
from genixer.data.sources.aokvqa import AOKVQA
from genixer.data.sources.files import AnnotationError
from genixer.data.sources.gpt4gen import PH_ED, GPT4GenBoxCoT
from genixer.data.sources.gqa import GQA
from genixer.data.sources.llava_instruct import LLaVAInstruct
from genixer.data.sources.pointqa_local import PointQALocal
from genixer.data.sources.pointqa_v7w import PointQAV7W
from genixer.data.sources.pope import POPEExistence
from genixer.data.sources.refcoco import RefCOCO
from genixer.data.sources.visual_genome import VisualGenomeRegions


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("conv_world")
    build_world(root, seed=0, num_train=40, num_heldout=8)
    return root


@pytest.fixture(params=["world", "fixture"])
def source(request) -> str:
    return request.param


def need(world: Path, *names: str) -> list[Path]:
    """The world's files: build_world writes every converter's input, so a missing one is a failure."""
    paths = [world / "annotations" / n for n in names]
    assert not (missing := [n for n, p in zip(names, paths) if not p.is_file()]), f"mini world wrote no {missing}"
    return paths


def world_meta(world: Path) -> tuple[dict, dict]:
    """(counts, image patterns) from world.json (both required)."""
    meta = json.loads((world / "world.json").read_text())
    return meta["counts"], meta["image_patterns"]


def count_matches(world: Path, key: str, n: int) -> None:
    assert n == world_meta(world)[0][key], key


def png(root: Path, rel: str, w: int = 64, h: int = 48) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (120, 30, 200)).save(path)
    return rel


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def check_records(records: list[dict], keys: set[str]) -> None:
    """Every record has the family's keys, an existing absolute image and its true size."""
    assert records
    sizes: dict[str, tuple[int, int]] = {}
    for r in records:
        assert keys | {"image", "width", "height"} <= r.keys()
        assert Path(r["image"]).is_absolute() and Path(r["image"]).is_file(), r["image"]
        if r["image"] not in sizes:
            sizes[r["image"]] = Image.open(r["image"]).size
        assert (r["width"], r["height"]) == sizes[r["image"]]


def inside(box, w, h) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


# ---- GQA ----------------------------------------------------------------------------------------
def gqa_fixture(tmp: Path) -> tuple[Path, Path, str]:
    png(tmp / "img", "2354786.jpg", 80, 60)
    png(tmp / "img", "n161313.jpg", 50, 40)
    q = {"02930152": {"imageId": "2354786", "question": "Is the sky dark?", "answer": "yes",
                      "fullAnswer": "Yes, the sky is dark.", "types": {}, "isBalanced": True},
         "07333408": {"imageId": "n161313", "question": "What is on the table?", "answer": "cup",
                      "fullAnswer": "The cup is on the table.", "types": {}, "isBalanced": True}}
    return write(tmp / "gqa_train_balanced_questions.json", q), tmp / "img", "{image_id}.jpg"


def test_gqa_common_vqa_records(world, tmp_path, source):
    if source == "world":
        [path] = need(world, "gqa_train_balanced_questions.json")
        root, pattern = world / "images", world_meta(world)[1]["gqa"]
    else:
        path, root, pattern = gqa_fixture(tmp_path)
    raw = json.loads(path.read_text())
    records = GQA(path, root, image_pattern=pattern).load()
    check_records(records, {"question", "answer"})
    assert [r["question_id"] for r in records] == list(raw)
    assert [(r["question"], r["answer"]) for r in records] == [(q["question"], q["answer"]) for q in raw.values()]
    long = GQA(path, root, image_pattern=pattern, full_answer=True).load()
    assert [r["answer"] for r in long] == [q["fullAnswer"] for q in raw.values()]
    if source == "world":
        count_matches(world, "gqa_questions", len(records))
    else:
        assert [(r["width"], r["height"]) for r in records] == [(80, 60), (50, 40)]


def test_gqa_errors(tmp_path):
    path, root, _ = gqa_fixture(tmp_path)
    with pytest.raises(AnnotationError, match="question 02930152: image not found"):
        GQA(path, root, image_pattern="{image_id}.png").load()
    png(root, "000002354786.jpg")  # the digit-string id fits an integer pattern; "n161313" cannot
    with pytest.raises(AnnotationError, match="question 07333408: image pattern .* does not fit"):
        GQA(path, root, image_pattern="{image_id:012d}.jpg").load()
    raw = json.loads(path.read_text())
    del raw["07333408"]["imageId"]
    with pytest.raises(AnnotationError, match="bad.json: question 07333408: missing field 'imageId'"):
        GQA(write(tmp_path / "bad.json", raw), root).load()


# ---- A-OKVQA ------------------------------------------------------------------------------------
def aokvqa_fixture(tmp: Path) -> tuple[Path, Path, str]:
    png(tmp / "coco", "train2017/000000000009.jpg", 70, 50)
    rows = [
        {"split": "train", "image_id": 9, "question_id": "a1", "question": "What sport is this?",
         "choices": ["soccer", "golf", "tennis", "polo"], "correct_choice_idx": 2,
         "direct_answers": ["tennis"] * 6 + ["squash"] * 4, "difficult_direct_answer": False, "rationales": ["r"] * 3},
        {"split": "train", "image_id": 9, "question_id": "a2", "question": "What season is it?",
         "choices": ["winter", "summer", "fall", "spring"], "correct_choice_idx": 1,
         "direct_answers": ["summer", "spring", "spring", "summer"] + ["x", "y", "z", "w", "v", "u"],
         "difficult_direct_answer": False, "rationales": ["r"] * 3},
    ]
    return write(tmp / "aokvqa_v1p0_train.json", rows), tmp / "coco", "{split}2017/{image_id:012d}.jpg"


def test_aokvqa_mc_and_direct_records(world, tmp_path, source):
    if source == "world":
        [path] = need(world, "aokvqa_v1p0_train.json")
        root, pattern = world / "images", world_meta(world)[1]["aokvqa"]
    else:
        path, root, pattern = aokvqa_fixture(tmp_path)
    raw = json.loads(path.read_text())
    mc = AOKVQA(path, root, image_pattern=pattern).load()
    check_records(mc, {"question", "choices", "answer_index"})
    assert len(mc) == len(raw) and all(r["family"] == "mc_vqa" for r in mc)
    for r, q in zip(mc, raw):
        assert r["choices"] == q["choices"] and r["answer_index"] == q["correct_choice_idx"]
    both = AOKVQA(path, root, image_pattern=pattern, also_direct=True).load()
    assert [r["family"] for r in both] == ["mc_vqa", "common_vqa"] * len(raw)
    direct = both[1::2]
    for r, q in zip(direct, raw):
        counts = Counter(q["direct_answers"])
        assert r["question"] == q["question"] and counts[r["answer"]] == max(counts.values())
    if source == "world":
        count_matches(world, "aokvqa_questions", len(mc))
    else:
        assert [r["answer"] for r in direct] == ["tennis", "summer"]  # tie -> the one listed first


def test_aokvqa_errors(tmp_path):
    path, root, _ = aokvqa_fixture(tmp_path)
    raw = json.loads(path.read_text())
    raw[1]["correct_choice_idx"] = 4
    with pytest.raises(AnnotationError, match=r"bad.json: \[1\]: field 'correct_choice_idx' 4"):
        AOKVQA(write(tmp_path / "bad.json", raw), root).load()
    del raw[0]["choices"]
    with pytest.raises(AnnotationError, match=r"bad.json: \[0\]: missing field 'choices'"):
        AOKVQA(write(tmp_path / "bad.json", raw), root).load()
    with pytest.raises(AnnotationError, match="unknown field 'year'"):
        AOKVQA(path, root, image_pattern="{year}/{image_id}.jpg").load()


# ---- POPE (on the world's COCO instances, which it always writes) --------------------------------
def test_pope_balanced_deterministic_and_truthful(world):
    instances = world / "annotations/instances_train.json"
    data = json.loads(instances.read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    present = defaultdict(set)
    for a in data["annotations"]:
        present[a["image_id"]].add(names[a["category_id"]])
    sizes = {i["id"]: (i["width"], i["height"]) for i in data["images"]}
    for strategy in ("random", "popular", "adversarial"):
        pope = POPEExistence(instances, world / "images", strategy=strategy, seed=1)
        records = pope.load()
        assert records == pope.load() == POPEExistence(instances, world / "images", strategy=strategy, seed=1).load()
        check_records(records, {"question", "answer"})
        assert Counter(r["answer"] for r in records) == {"yes": len(records) // 2, "no": len(records) // 2}
        per_image = defaultdict(Counter)
        for r in records:
            per_image[r["image_id"]][r["answer"]] += 1
            assert r["question"] == f"Is there a {r['category']} in the image?"
            assert (r["category"] in present[r["image_id"]]) == (r["answer"] == "yes")
            assert (r["width"], r["height"]) == sizes[r["image_id"]]
        assert all(c["yes"] == c["no"] == min(3, len(present[i]), len(names) - len(present[i]))
                   for i, c in per_image.items())
    random_1 = POPEExistence(instances, world / "images", strategy="random", seed=1).load()
    assert POPEExistence(instances, world / "images", strategy="random", seed=2).load() != random_1


def test_pope_strategies_on_fixture(tmp_path):
    # Image 1 holds only a dog; cat co-occurs with dog twice; car is as frequent as dog but never
    # beside it; bus is rare. So popular picks car and adversarial picks cat for image 1.
    images = [{"id": i, "file_name": f"{i}.png", "width": 10, "height": 10} for i in range(1, 7)]
    placement = {1: [1], 2: [1, 2], 3: [1, 2], 4: [3], 5: [3, 4], 6: [3]}
    anns = [{"id": k, "image_id": i, "category_id": c, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}
            for k, (i, c) in enumerate(((i, c) for i, cs in placement.items() for c in cs), 1)]
    cats = [{"id": c, "name": n, "supercategory": "x"} for c, n in ((1, "dog"), (2, "cat"), (3, "car"), (4, "bus"))]
    path = write(tmp_path / "instances.json", {"images": images, "annotations": anns, "categories": cats})

    def negative(strategy: str) -> str:
        records = POPEExistence(path, tmp_path, strategy=strategy, question_template="{category}?").load()
        assert records[:2] == [{**records[0], "question": "dog?", "answer": "yes"}, records[1]]
        return records[1]["category"]

    assert negative("popular") == "car" and negative("adversarial") == "cat"
    anns[0].pop("bbox")
    with pytest.raises(AnnotationError, match=r"bad.json: annotations\[0\]: missing field 'bbox'"):
        POPEExistence(write(tmp_path / "bad.json", {"images": images, "annotations": anns, "categories": cats}),
                      tmp_path).load()
    with pytest.raises(ValueError, match="strategy"):
        POPEExistence(path, tmp_path, strategy="hard")


# ---- LLaVA-Instruct -----------------------------------------------------------------------------
def llava_fixture(tmp: Path) -> tuple[Path, Path]:
    png(tmp / "coco", "000000033471.jpg")
    rows = [
        {"id": "1", "image": "000000033471.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat color is the bus?"}, {"from": "gpt", "value": "White."},
            {"from": "human", "value": "Is it moving?"}, {"from": "gpt", "value": "No."}]},
        {"id": "2", "image": "000000033471.jpg", "conversations": [
            {"from": "human", "value": "Describe it.\n<image>"}, {"from": "gpt", "value": "A long answer."}]},
    ]
    return write(tmp / "llava_conversations_train.json", rows), tmp / "coco"


@pytest.mark.parametrize("name", ["llava_conversations_train.json", "llava_detail_train.json"])
def test_llava_md_and_pairs(world, tmp_path, source, name):
    if source == "world":
        [path], root = need(world, name), world / "images"
    else:
        path, root = llava_fixture(tmp_path)
    raw = json.loads(path.read_text())
    n_pairs = [len(r["conversations"]) // 2 for r in raw]
    conv = LLaVAInstruct(path, root)
    md = conv.load()
    check_records(md, {"turns"})
    assert len(md) == sum(n >= 2 for n in n_pairs) and conv.skipped["fewer than min_turns"] == len(raw) - len(md)
    pairs = LLaVAInstruct(path, root, as_pairs=True).load()
    check_records(pairs, {"question", "answer"})
    assert len(pairs) == sum(n_pairs)
    for r in pairs:
        assert "<image>" not in r["question"] and r["question"] == r["question"].strip() and r["answer"]
    assert len(LLaVAInstruct(path, root, min_turns=1).load()) == len(raw)
    if source == "fixture":
        assert md[0]["turns"] == [{"question": "What color is the bus?", "answer": "White."},
                                  {"question": "Is it moving?", "answer": "No."}]
        assert pairs[-1]["question"] == "Describe it."  # trailing "\n<image>" removed too


def test_llava_errors(tmp_path):
    path, root = llava_fixture(tmp_path)
    raw = json.loads(path.read_text())
    raw[1]["conversations"].reverse()
    with pytest.raises(AnnotationError, match=r"bad.json: \[1\]: conversations\[0\]: field 'from' must be 'human'"):
        LLaVAInstruct(write(tmp_path / "bad.json", raw), root).load()
    raw[1]["conversations"] = raw[1]["conversations"][:1]
    with pytest.raises(AnnotationError, match=r"\[1\]: field 'conversations' must be human/gpt message pairs"):
        LLaVAInstruct(write(tmp_path / "bad.json", raw), root).load()
    del raw[0]["image"]
    with pytest.raises(AnnotationError, match=r"\[0\]: missing field 'image'"):
        LLaVAInstruct(write(tmp_path / "bad.json", raw), root).load()


# ---- RefCOCO (refer layout) ---------------------------------------------------------------------
def refcoco_fixture(tmp: Path) -> tuple[Path, Path, Path]:
    png(tmp / "coco", "COCO_train2014_000000000001.jpg", 100, 80)
    # ann 11 inside, 12 crosses the corner (clamped), 13 starts at the right edge (degenerate).
    boxes = {11: [10, 20, 30, 40], 12: [90, 70, 30, 40], 13: [100, 5, 10, 10]}
    instances = {"images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "width": 100, "height": 80}],
                 "annotations": [{"id": k, "image_id": 1, "category_id": 1, "bbox": b, "area": b[2] * b[3],
                                  "iscrowd": 0} for k, b in boxes.items()],
                 "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}

    def ref(rid, ann, split, sents):
        return {"ref_id": rid, "ann_id": ann, "image_id": 1, "split": split, "category_id": 1,
                "file_name": f"COCO_train2014_000000000001_{ann}.jpg", "sent_ids": list(range(len(sents))),
                "sentences": [{"sent_id": k, "sent": s, "raw": s, "tokens": s.split()} for k, s in enumerate(sents)]}

    refs = [ref(0, 11, "train", ["left man", "man in red"]), ref(1, 12, "train", ["corner guy"]),
            ref(2, 13, "train", ["off the edge"]), ref(3, 11, "testA", ["the man"])]
    refs_path = tmp / "refcoco" / "refs(unc).p"
    refs_path.parent.mkdir(parents=True, exist_ok=True)
    refs_path.write_bytes(pickle.dumps(refs))
    return refs_path, write(tmp / "refcoco/instances.json", instances), tmp / "coco"


def test_refcoco_boxes_are_coco_boxes_as_xyxy(world, tmp_path, source):
    if source == "world":
        [refs, instances], root = need(world, "refcoco/refs(unc).p", "refcoco/instances.json"), world / "images"
    else:
        refs, instances, root = refcoco_fixture(tmp_path)
    raw = pickle.loads(refs.read_bytes())
    anns = {a["id"]: a for a in json.loads(instances.read_text())["annotations"]}
    conv = RefCOCO(refs, instances, root, split="train")
    records = conv.load()
    check_records(records, {"expression", "bbox"})
    train = [r for r in raw if r["split"] == "train"]
    assert len(records) + conv.skipped["degenerate box"] == sum(len(r["sentences"]) for r in train)
    dropped = {13} if source == "fixture" else set()  # the fixture's degenerate box
    assert [r["expression"] for r in records] == [
        s["sent"] for r in train if r["ann_id"] not in dropped for s in r["sentences"]]
    for r in records:
        x, y, w, h = anns[r["ann_id"]]["bbox"]
        expected = [max(x, 0), max(y, 0), min(x + w, r["width"]), min(y + h, r["height"])]
        assert r["bbox"] == expected and inside(r["bbox"], r["width"], r["height"])
    if source == "world":  # world boxes lie inside their images: exactly the xywh box as xyxy
        assert not conv.skipped
        assert all(r["bbox"] == [x, y, x + w, y + h] for r in records for x, y, w, h in [anns[r["ann_id"]]["bbox"]])
        count_matches(world, "refcoco_sentences", len(RefCOCO(refs, instances, root, split=None).load()))
    else:
        assert [r["bbox"] for r in records] == [[10, 20, 40, 60]] * 2 + [[90, 70, 100, 80]]
        assert conv.skipped == {"degenerate box": 1}
        assert [r["expression"] for r in RefCOCO(refs, instances, root, split="testA").load()] == ["the man"]
        assert len(RefCOCO(refs, instances, root, split=None).load()) == 4


def test_refcoco_errors(tmp_path):
    refs, instances, root = refcoco_fixture(tmp_path)
    with pytest.raises(AnnotationError, match=r"refs\(unc\).p: unknown split 'testC' \(has testA, train\)"):
        RefCOCO(refs, instances, root, split="testC").load()
    raw = pickle.loads(refs.read_bytes())
    raw[1]["ann_id"] = 99
    refs.write_bytes(pickle.dumps(raw))
    with pytest.raises(AnnotationError, match=r"refs\[1\]: field 'ann_id' 99 is not in"):
        RefCOCO(refs, instances, root).load()
    del raw[0]["sentences"][1]["sent"]
    raw[1]["ann_id"] = 12
    refs.write_bytes(pickle.dumps(raw))
    with pytest.raises(AnnotationError, match=r"refs\[0\]: sentences\[1\]: missing field 'sent'"):
        RefCOCO(refs, instances, root).load()
    refs.write_bytes(b"not a pickle")
    with pytest.raises(AnnotationError, match="not a readable refs pickle"):
        RefCOCO(refs, instances, root).load()


# ---- Visual Genome ------------------------------------------------------------------------------
def vg_fixture(tmp: Path) -> tuple[Path, Path, Path, str]:
    png(tmp / "vg", "VG_100K/1.jpg", 800, 600)
    data = [{"image_id": 1, "width": 800, "height": 600, "url": "https://cs.stanford.edu/people/rak248/VG_100K/1.jpg"}]
    regions = [{"id": 1, "regions": [
        {"region_id": 1, "image_id": 1, "phrase": "a red car ", "x": 10, "y": 20, "width": 100, "height": 50},
        {"region_id": 2, "image_id": 1, "phrase": "sky", "x": 700, "y": -5, "width": 200, "height": 105},
        {"region_id": 3, "image_id": 1, "phrase": "nothing", "x": 30, "y": 30, "width": 0, "height": 10},
        {"region_id": 4, "image_id": 1, "phrase": "  ", "x": 30, "y": 30, "width": 5, "height": 10}]}]
    return (write(tmp / "vg/region_descriptions.json", regions), write(tmp / "vg/image_data.json", data),
            tmp / "vg", "{url_dir}/{image_id}.jpg")


def test_visual_genome_regions(world, tmp_path, source):
    if source == "world":
        [regions, image_data] = need(world, "vg/region_descriptions.json", "vg/image_data.json")
        root, pattern = world / "images", world_meta(world)[1]["vg"]
    else:
        regions, image_data, root, pattern = vg_fixture(tmp_path)
    conv = VisualGenomeRegions(regions, image_data, root, image_pattern=pattern)
    records = conv.load()
    check_records(records, {"expression", "bbox"})
    total = sum(len(e["regions"]) for e in json.loads(regions.read_text()))
    assert len(records) + sum(conv.skipped.values()) == total
    assert all(inside(r["bbox"], r["width"], r["height"]) and r["expression"] for r in records)
    if source == "world":
        assert not conv.skipped
        count_matches(world, "vg_regions", len(records))
    else:
        assert [(r["expression"], r["bbox"]) for r in records] == [
            ("a red car", [10, 20, 110, 70]), ("sky", [700, 0, 800, 100])]
        assert conv.skipped == {"degenerate box": 1, "empty phrase": 1}


def test_visual_genome_errors(tmp_path):
    regions, image_data, root, _ = vg_fixture(tmp_path)
    raw = json.loads(regions.read_text())
    raw[0]["regions"][1]["image_id"] = 5
    with pytest.raises(AnnotationError, match=r"\[0\].regions\[1\]: field 'image_id' 5 is not in"):
        VisualGenomeRegions(write(tmp_path / "r.json", raw), image_data, root).load()
    del raw[0]["regions"][0]["height"]
    with pytest.raises(AnnotationError, match=r"\[0\].regions\[0\]: missing field 'height'"):
        VisualGenomeRegions(write(tmp_path / "r.json", raw), image_data, root).load()
    with pytest.raises(AnnotationError, match=r"image_data.json: \[0\]: field 'width' must be a positive integer"):
        VisualGenomeRegions(regions, write(tmp_path / "vg/image_data.json", [{"image_id": 1, "width": 0, "height": 5}]),
                            root).load()


# ---- PointQA ------------------------------------------------------------------------------------
def test_pointqa_local(world, tmp_path, source):
    if source == "world":
        [path], root = need(world, "pointQA_local_train.jsonl"), world / "images"
    else:
        root = tmp_path
        path = jsonl(tmp_path / "pointQA_local_train.jsonl", [
            {"file_path": png(tmp_path, "2.jpg"), "question": "What color is this?", "answer": "red",
             "bbox": [5, 5, 30, 30], "point": [10, 12], "img_h": 48, "img_w": 64},
            {"file_path": "2.jpg", "question": "What is this?", "answer": "cup",  # bbox dropped, point kept
             "bbox": [5, 5, 5, 30], "point": [70, 12], "img_h": 48, "img_w": 64},
            {"file_path": "2.jpg", "question": "Why?", "answer": "x", "bbox": [3, 3, 3, 3], "point": None,
             "img_h": 48, "img_w": 64}])
    conv = PointQALocal(path, root)
    records = conv.load()
    check_records(records, {"question", "answer", "bbox", "point"})
    for r in records:
        assert r["bbox"] is not None or r["point"] is not None
        assert r["bbox"] is None or inside(r["bbox"], r["width"], r["height"])
        assert r["point"] is None or (0 <= r["point"][0] <= r["width"] and 0 <= r["point"][1] <= r["height"])
    if source == "world":
        raw = [json.loads(line) for line in path.read_text().splitlines()]
        assert [(r["question"], r["answer"], r["bbox"], r["point"]) for r in records] == [
            (q["question"], q["answer"], q["bbox"], q["point"]) for q in raw]
        count_matches(world, "pointqa_local", len(records))
    else:
        assert len(records) == 2 and records[1]["bbox"] is None and records[1]["point"] == [64, 12]
        assert conv.skipped == {"degenerate box": 2}
        bad = jsonl(tmp_path / "bad.jsonl", [{**json.loads(path.read_text().splitlines()[0]), "bbox": None,
                                              "point": None}])
        with pytest.raises(AnnotationError, match="bad.jsonl:1: fields 'bbox' and 'point' are both null"):
            PointQALocal(bad, root).load()


def test_pointqa_v7w(world, tmp_path, source):
    if source == "world":
        [path], root = need(world, "v7w_pointing_train.jsonl"), world / "images"
    else:
        root = tmp_path
        row = {"file_path": png(tmp_path, "v7w_1.jpg"), "question": "Which is the cup?",
               "candidates": [[1, 1, 10, 10], [20, 20, 30, 40], [5, 5, 60, 40]], "answer": [20, 20, 30, 40],
               "point": [25, 30], "img_h": 48, "img_w": 64}
        degenerate = {**row, "candidates": [[1, 1, 1, 10], [20, 20, 30, 40]]}
        path = jsonl(tmp_path / "v7w_pointing_train.jsonl", [row, degenerate])
    conv = PointQAV7W(path, root)
    records = conv.load()
    check_records(records, {"question", "candidates", "answer_box", "point"})
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        assert r["answer_box"] == r["candidates"][r["answer_index"]]
        assert all(inside(b, r["width"], r["height"]) for b in r["candidates"])
    if source == "world":
        assert [(r["candidates"], r["answer_box"], r["point"]) for r in records] == [
            (q["candidates"], q["answer"], q["point"]) for q in raw]
        count_matches(world, "v7w_pointing", len(records))
    else:
        assert len(records) == 1 and records[0]["answer_index"] == 1 and conv.skipped == {"degenerate candidate box": 1}
        with pytest.raises(AnnotationError, match="bad.jsonl:1: field 'answer'.*not one of the candidates"):
            PointQAV7W(jsonl(tmp_path / "bad.jsonl", [{**raw[0], "answer": [0, 0, 2, 2]}]), root).load()


# ---- GPT4Gen BoxCoT / RD ------------------------------------------------------------------------
GPT4GEN_ROW = {
    "img_path": "flickr/1.jpg", "boxes": [[0, 0, 20, 20], [10, 10, 60, 40], [30, 5, 50, 25]],
    "question": "What is <ph_st>the man<ph_ed> holding?", "question_boxes_seq": [[0]],
    "cot_with_ans": "<ph_st>The man<ph_ed> holds <ph_st>two cups<ph_ed>. Answer: cups.",
    "answer_boxes_seq": [[0], [1, 2]], "width": 64, "height": 48,
}


@pytest.mark.parametrize("name", ["GPT4GEN_BoxCoT_train.jsonl", "GPT4GEN_RD_BoxCoT_train.jsonl"])
def test_gpt4gen_marks_align_with_boxes(world, tmp_path, source, name):
    if source == "world":
        [path], root = need(world, name), world / "images"
    else:
        root = tmp_path
        png(tmp_path, "flickr/1.jpg")
        outside = {**GPT4GEN_ROW, "boxes": [[0, 0, 20, 20], [10, 10, 60, 40], [70, 5, 90, 25]]}  # box 2 off-image
        path = jsonl(tmp_path / name, [GPT4GEN_ROW, outside])
    conv = GPT4GenBoxCoT(path, root)
    records = conv.load()
    check_records(records, {"question", "answer", "question_boxes_seq", "answer_boxes_seq", "boxes"})
    for r in records:
        assert r["question"].count(PH_ED) == len(r["question_boxes_seq"])
        assert r["answer"].count(PH_ED) == len(r["answer_boxes_seq"])
        assert all(0 <= k < len(r["boxes"]) for g in r["question_boxes_seq"] + r["answer_boxes_seq"] for k in g)
        assert all(inside(b, r["width"], r["height"]) for b in r["boxes"])
    if source == "world":
        raw = [json.loads(line) for line in path.read_text().splitlines()]
        assert [(r["answer"], r["boxes"], r["answer_boxes_seq"]) for r in records] == [
            (q["cot_with_ans"], q["boxes"], q["answer_boxes_seq"]) for q in raw]
        count_matches(world, "boxcot" if "RD" not in name else "rd", len(records))
    else:
        assert len(records) == 1 and records[0]["answer"] == GPT4GEN_ROW["cot_with_ans"]
        assert records[0]["boxes"] == GPT4GEN_ROW["boxes"] and conv.skipped == {"degenerate box": 1}


@pytest.mark.parametrize("change, message", [
    ({"answer_boxes_seq": [[0]]}, "field 'answer_boxes_seq' has 1 box groups but 'cot_with_ans' has 2"),
    ({"question_boxes_seq": [[3]]}, "field 'question_boxes_seq' index 3 is outside 'boxes'"),
    ({"question_boxes_seq": [0]}, "field 'question_boxes_seq' must be a list of non-empty index lists"),
    ({"boxes": [[0, 0, 1]]}, r"boxes\[0\]: field 'boxes' must be \[x1, y1, x2, y2\]"),
    ({"cot_with_ans": None}, "field 'cot_with_ans' must be a string"),
])
def test_gpt4gen_errors(tmp_path, change, message):
    png(tmp_path, "flickr/1.jpg")
    path = jsonl(tmp_path / "g.jsonl", [GPT4GEN_ROW, {**GPT4GEN_ROW, **change}])
    with pytest.raises(AnnotationError, match="g.jsonl:2: " + message):
        GPT4GenBoxCoT(path, tmp_path).load()
    row = dict(GPT4GEN_ROW)
    del row["height"]
    with pytest.raises(AnnotationError, match="g.jsonl:1: missing field 'height'"):
        GPT4GenBoxCoT(jsonl(tmp_path / "g.jsonl", [row]), tmp_path).load()


# ---- every converter: a missing file is one AnnotationError naming it ----------------------------
@pytest.mark.parametrize("make", [
    lambda p: GQA(p / "nope.json", p), lambda p: AOKVQA(p / "nope.json", p),
    lambda p: POPEExistence(p / "nope.json", p), lambda p: LLaVAInstruct(p / "nope.json", p),
    lambda p: RefCOCO(p / "nope.json", p / "nope.json", p),
    lambda p: VisualGenomeRegions(p / "nope.json", p / "nope.json", p),
    lambda p: PointQALocal(p / "nope.json", p), lambda p: PointQAV7W(p / "nope.json", p),
    lambda p: GPT4GenBoxCoT(p / "nope.json", p),
])
def test_missing_file(tmp_path, make):
    with pytest.raises(AnnotationError, match="nope.json: file not found"):
        make(tmp_path).load()
