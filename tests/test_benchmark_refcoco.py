"""RefCOCO-family REC benchmarks on a tiny refer-API layout (a refs pickle + instances.json) in tmp_path.

Image 1 is 256 x 128 (wide, so a model's pad-to-square frame differs from the original), boxes chosen so that
every normalized coordinate and IoU below is exact in binary floating point."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from conftest import CONF, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genixer.data.sources.files import AnnotationError
from genixer.evaluation.refcoco import RefCOCOBenchmark

NAMES = {"refcoco_val": ("refcoco", "unc", "val"), "refcoco_testA": ("refcoco", "unc", "testA"),
         "refcoco_testB": ("refcoco", "unc", "testB"), "refcocop_val": ("refcoco+", "unc", "val"),
         "refcocop_testA": ("refcoco+", "unc", "testA"), "refcocop_testB": ("refcoco+", "unc", "testB"),
         "refcocog_val": ("refcocog", "umd", "val"), "refcocog_test": ("refcocog", "umd", "test")}


def ref(ref_id, ann_id, image_id, split, *sentences):
    return {"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split, "category_id": 1,
            "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
            "sentences": [{"sent_id": s, "sent": t, "raw": t, "tokens": t.split()} for s, t in sentences]}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    folder = root / "refcoco"
    folder.mkdir()
    refs = [ref(10, 100, 1, "val", (500, "left man"), (501, "  the man on the left ")),
            ref(11, 101, 1, "val", (502, "top box")),
            ref(12, 102, 2, "testA", (503, "car")),
            ref(13, 102, 2, "train", (504, "car again")),
            ref(14, 103, 2, "testB", (505, "a line"), (506, "the line")),   # zero-height box: left out
            ref(15, 102, 2, "testB", (507, "the car"))]
    with (folder / "refs(unc).p").open("wb") as f:
        pickle.dump(refs, f, protocol=2)
    (folder / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "width": 256, "height": 128},
                   {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "width": 128, "height": 128}],
        "annotations": [{"id": 100, "image_id": 1, "category_id": 1, "bbox": [64, 32, 128, 64]},   # [.25,.25,.75,.75]
                        {"id": 101, "image_id": 1, "category_id": 1, "bbox": [0, 0, 128, 32]},     # [0,0,.5,.25]
                        {"id": 102, "image_id": 2, "category_id": 1, "bbox": [0, 0, 64, 64]},
                        {"id": 103, "image_id": 2, "category_id": 1, "bbox": [8, 8, 32, 0]}],
        "categories": [{"id": 1, "name": "person"}]}))
    return root


@pytest.fixture(scope="module")
def val(datasets) -> RefCOCOBenchmark:
    cfg = compose_config("evaluate", [f"paths.datasets={datasets}", "paths.output_dir=unused", "benchmark=refcoco_val"])
    return instantiate(cfg.benchmark)


def test_configs_name_the_official_files():
    for name, (folder, owner, split) in NAMES.items():   # the files (read, not composed: composing is checked below)
        b = OmegaConf.to_container(OmegaConf.load(CONF / "benchmark" / f"{name}.yaml"))   # unresolved
        assert (b["_target_"], b["name"], b["split"]) == ("genixer.evaluation.refcoco.RefCOCOBenchmark", name, split)
        assert (b["refs"], b["instances"]) == (f"${{paths.datasets}}/{folder}/refs({owner}).p",
                                         f"${{paths.datasets}}/{folder}/instances.json")
        assert b["image_root"] == "${paths.datasets}/coco/train2014"


def test_one_question_per_sentence(val, datasets):
    assert val.image_root == datasets / "coco/train2014"
    questions = val.questions()
    assert [q["question_id"] for q in questions] == [500, 501, 502]   # the refs' sent_ids; testA / train left out
    assert questions[0] == {"question_id": 500, "image": "COCO_train2014_000000000001.jpg",
                            "text": "Where is left man? Answer with a box.", "ref_id": 10, "ann_id": 100,
                            "width": 256, "height": 128, "bbox": [64, 32, 192, 96]}
    assert questions[1]["text"] == "Where is the man on the left? Answer with a box."   # the sentence stripped
    assert RefCOCOBenchmark.target(val.records()[2]) == [0.0, 0.0, 0.5, 0.25]   # by the ORIGINAL 256 x 128


def test_scores(val):
    result = val.score({
        "500": "[0.250,0.250,0.750,0.750]",   # IoU 1: a hit
        "501": "[0.25,0.25,0.75,0.5]",        # IoU exactly 0.5 (0.125 / 0.25): a miss
        "502": "[0.000,0.250,0.500,0.375]",   # the right box in the padded square frame: IoU 0 with the original
    })
    assert list(result)[:5] == ["benchmark", "metric", "n", "missing", "score"]
    assert (result["n"], result["missing"], result["failed"]) == (3, 0, 0)
    assert result["score"] == pytest.approx(100 / 3) and result["miou"] == pytest.approx(0.5)
    result = val.score({"501": "[0.25,0.25,0.75,0.5625]",    # IoU 0.625: a hit
                        "502": "[0.0, 0.0, 0.5, 0.25]"})     # the original-frame box: a hit
    assert (result["missing"], result["failed"]) == (1, 1)   # the unanswered one has no box
    assert result["score"] == pytest.approx(200 / 3) and result["miou"] == pytest.approx((1 + 0.625) / 3)
    result = val.score({"500": "[0.25,0.25,0.75,0.75] or [0,0,0.5,0.25]", "501": "on the left", "502": "0.0,0.0,0.5"})
    assert (result["score"], result["failed"]) == (0.0, 3)   # two boxes, no box, three numbers
    with pytest.raises(ValueError, match="does not have"):
        val.score({"503": "[0,0,0.5,0.5]"})   # a testA sentence


def test_square_frame_answers_are_mapped_back(datasets):
    cfg = compose_config("evaluate", [f"paths.datasets={datasets}", "paths.output_dir=unused", "benchmark=refcoco_val",
                                      "benchmark.box_frame=square"])
    square = instantiate(cfg.benchmark)
    # 502 in the padded square frame (256 x 128 sits at dy = 64 of 256): a hit once mapped back; 500's
    # original-frame box is now read as a square-frame one, and misses.
    result = square.score({"500": "[0.250,0.250,0.750,0.750]", "502": "[0.000,0.250,0.500,0.375]"})
    assert result["score"] == pytest.approx(100 / 3) and result["missing"] == 1


def test_splits_and_prompt(datasets, tmp_path):
    folder = datasets / "refcoco"
    args = (str(folder / "refs(unc).p"), str(folder / "instances.json"), str(tmp_path))
    test_a = RefCOCOBenchmark("a", *args, split="testA", prompt="Locate <expr> in the image.")
    assert [(q["question_id"], q["text"]) for q in test_a.questions()] == [(503, "Locate car in the image.")]
    assert test_a.score({"503": "[0,0,0.5,0.5]"})["score"] == 100.0
    test_b = RefCOCOBenchmark("b", *args, split="testB")
    assert [q["question_id"] for q in test_b.questions()] == [507]
    result = test_b.score({"507": "[0,0,0.5,0.5]"})
    assert (result["n"], result["score"], result["skipped"]) == (1, 100.0, 2)   # the degenerate ref's 2 sentences
    assert "skipped" not in test_a.score({})
    with pytest.raises(AnnotationError, match="unknown split 'testC'"):
        RefCOCOBenchmark("c", *args, split="testC").questions()
    with pytest.raises(ValueError, match="exactly once"):
        RefCOCOBenchmark("p", *args, split="val", prompt="Where is it?")
