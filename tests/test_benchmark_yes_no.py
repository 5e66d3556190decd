"""POPE and MME read from tiny fixtures in their official layouts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate
from PIL import Image

from conftest import compose_config
from genixer.evaluation.metrics import MME_CATEGORIES, MME_COGNITION
from genixer.evaluation.yes_no import MMEBenchmark, POPEBenchmark

SHORT = "\nAnswer the question using a single word or phrase."
SPLIT_LAYOUT = ("artwork", "celebrity", "landmark", "posters", "scene")   # images/ + questions_answers_YN/ in MME


def write_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (10, 200, 10)).save(path)


def pope_files(data: Path) -> Path:
    """Each split numbers its questions from 1 (as the official files do): 2 yes + 2 no per split."""
    folder = data / "pope" / "coco"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("adversarial", "popular", "random"):
        lines = [{"question_id": k + 1, "image": f"COCO_val2014_{k:012d}.jpg", "text": f"Is there a {obj} in the image?",
                  "label": label} for k, (obj, label) in enumerate([("dog", "yes"), ("cat", "yes"), ("car", "no"),
                                                                     ("bus", "no")])]
        (folder / f"coco_pope_{split}.json").write_text("".join(json.dumps(x) + "\n" for x in lines))
    for k in range(4):
        write_png(data / "coco" / "val2014" / f"COCO_val2014_{k:012d}.jpg")
    return folder


def mme_folder(data: Path) -> Path:
    """All 14 categories, one image each (two questions: the first Yes, the second No), in both layouts."""
    root = data / "MME" / "MME_Benchmark_release_version"
    for category in MME_CATEGORIES:
        folder = root / category
        images, texts = (folder / "images", folder / "questions_answers_YN") if category in SPLIT_LAYOUT else (folder, folder)
        write_png(images / "0001.png")
        texts.mkdir(parents=True, exist_ok=True)
        (texts / "0001.txt").write_text(f"Is this {category}? Please answer yes or no.\tYes\n"
                                        f"Is this not {category}  Please answer yes or no.\tNo\n")
    return root


@pytest.fixture
def pope(tmp_path) -> POPEBenchmark:
    return POPEBenchmark("pope", str(pope_files(tmp_path)), str(tmp_path / "coco" / "val2014"))


@pytest.fixture
def mme(tmp_path) -> MMEBenchmark:
    return MMEBenchmark("mme", str(mme_folder(tmp_path)))


# ------------------------------------------------------------------------------------------ POPE

def test_pope_questions_keep_splits_apart(pope):
    qs = pope.questions()
    assert len(qs) == 12 and len({q["question_id"] for q in qs}) == 12
    assert qs[0] == {"question_id": "adversarial/1", "image": "COCO_val2014_000000000000.jpg",
                     "text": "Is there a dog in the image?" + SHORT, "category": "adversarial"}
    assert qs[-1]["question_id"] == "random/4" and all((pope.image_root / q["image"]).is_file() for q in qs)


def test_pope_scores_mean_f1_over_splits(pope):
    right = {f"{s}/{k}": a for s in ("adversarial", "popular", "random") for k, a in enumerate(["Yes.", "yes", "No", "no"], 1)}
    result = pope.score(right)   # "Yes." and "yes" both read as yes
    assert (result["score"], result["n"], result["missing"], result["random_yes_ratio"]) == (100.0, 12, 0, 0.5)
    # random: the 'car' (label no) answered yes -> tp 2, fp 1: precision 2/3, recall 1, F1 0.8
    # popular: 'cat' (label yes) unanswered -> a miss (fn): precision 1, recall 1/2, F1 2/3
    result = pope.score({k: v for k, v in right.items() if k != "popular/2"} | {"random/3": "Yes, a car."})
    assert result["random_f1"] == pytest.approx(0.8) and result["popular_f1"] == pytest.approx(2 / 3)
    assert result["popular_recall"] == 0.5 and result["missing"] == 1
    assert result["score"] == pytest.approx(100 * (1 + 0.8 + 2 / 3) / 3)
    # the official reading: "NO" is not a no (only No/no/not as a word), "There is no bus" is
    result = pope.score({**right, "adversarial/3": "NO", "adversarial/4": "There is no bus."})
    assert result["adversarial_f1"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="does not have"):
        pope.score({**right, "1": "yes"})   # a bare id: which split?


def test_pope_bad_files_are_named(tmp_path):
    folder = pope_files(tmp_path)
    (folder / "coco_pope_popular.json").unlink()
    with pytest.raises(FileNotFoundError, match="coco_pope_popular.json"):
        POPEBenchmark("p", str(folder), str(tmp_path)).questions()
    (folder / "coco_pope_random.json").write_text('{"question_id": 1, "image": "a.jpg", "text": "Is it?", "label": "maybe"}\n')
    with pytest.raises(ValueError, match="coco_pope_random.json: line 1 has label 'maybe'"):
        POPEBenchmark("p", str(folder), str(tmp_path), splits=["random"]).questions()


# ------------------------------------------------------------------------------------------ MME

def test_mme_questions_in_llava_form(mme):
    qs = mme.questions()
    assert len(qs) == 28 and len({q["question_id"] for q in qs}) == 28
    by_id = {q["question_id"]: q for q in qs}
    assert by_id["artwork/images/0001.png#0"]["text"] == "Is this artwork?" + SHORT
    assert by_id["existence/0001.png#1"]["text"] == "Is this not existence" + SHORT   # two spaces before "Please"
    assert all((mme.image_root / q["image"]).is_file() for q in qs)


def test_mme_scores_perception_total(mme):
    ids = [q["question_id"] for q in mme.questions()]
    right = {i: ("Yes." if i.endswith("#0") else "no") for i in ids}
    result = mme.score(right)
    assert (result["score"], result["cognition"], result["n"], result["missing"]) == (2000.0, 800.0, 28, 0)
    # existence: one question of the image wrong -> acc 0.5, acc_plus 0 (needs both): 50 points, not 150
    result = mme.score({**right, "existence/0001.png#1": "Yes"})
    assert result["score_existence"] == 50.0 and result["score"] == 1850.0
    # a missing answer is wrong; "I think yes" reads as 'other' (MME looks at the first 4 characters)
    result = mme.score({k: v for k, v in right.items() if k != "OCR/0001.png#0"} | {"code_reasoning/0001.png#0": "I think yes"})
    assert (result["missing"], result["score_OCR"], result["score"], result["score_code_reasoning"]) == (1, 50.0, 1850.0, 50.0)
    assert result["cognition"] == 650.0
    with pytest.raises(ValueError, match="does not have"):
        mme.score({**right, "existence/0001.png": "yes"})   # LLaVA's own id, shared by both questions


def test_mme_layout_errors_are_named(tmp_path):
    root = mme_folder(tmp_path)
    with pytest.raises(ValueError, match="unknown MME categories"):
        MMEBenchmark("m", str(root), categories=["ocr"])
    (root / "OCR" / "0001.txt").write_text("Is it? Please answer yes or no.\tYes\n")
    with pytest.raises(ValueError, match=r"OCR/0001.txt: 1 questions"):
        MMEBenchmark("m", str(root), categories=["OCR"]).questions()
    (root / "count" / "0001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"count/0001.txt: no image"):
        MMEBenchmark("m", str(root), categories=["count"]).questions()
    sub = MMEBenchmark("m", str(root), categories=list(MME_COGNITION))
    assert sub.score({})["score"] is None   # no perception category: no MME table number


# ------------------------------------------------------------------------------------------ configs

@pytest.mark.parametrize("name, cls", [("pope", POPEBenchmark), ("mme", MMEBenchmark)])
def test_configs_read_the_official_layout(name, cls, tmp_path):
    data = tmp_path / "datasets"
    pope_files(data)
    mme_folder(data)
    cfg = compose_config("evaluate", [f"benchmark={name}", f"paths.datasets={data}", f"paths.output_dir={tmp_path}"])
    bench = instantiate(cfg.benchmark)
    assert isinstance(bench, cls) and bench.name == name and data in bench.image_root.parents
    qs = bench.questions()
    assert len(qs) == (12 if name == "pope" else 28) and all((bench.image_root / q["image"]).is_file() for q in qs)
    assert all(q["text"].endswith(SHORT) for q in qs)
    result = bench.score({})
    assert result["missing"] == len(qs) and result["score"] == 0.0
