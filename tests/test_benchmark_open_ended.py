"""GQA, VizWiz, TextVQA and VQAv2 test-dev benchmarks on tiny files in their official layouts (built in
tmp_path under paths.datasets), instantiated from conf/benchmark; every expected number is worked out by hand."""
from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
from conftest import compose_config
from hydra.utils import instantiate

from genixer.data.sources.files import AnnotationError
from genixer.evaluation.open_ended import GQABenchmark, TextVQABenchmark, VizWizBenchmark, VQAv2TestDevBenchmark, gqa_answer
from genixer.evaluation.tables import benchmark_table

SHORT = "\nAnswer the question using a single word or phrase."
VIZWIZ = "\nWhen the provided information is insufficient, respond with 'Unanswerable'." + SHORT


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Path:
    """paths.datasets with the official file names and layouts of the four benchmarks (read-only: tests that
    change a file copy it first)."""
    root = tmp_path_factory.mktemp("datasets")
    write_json(root / "gqa/testdev_balanced_questions.json", {
        "201307251": {"imageId": "n161313", "question": "Is it overcast?", "answer": "no", "isBalanced": True,
                      "types": {"structural": "verify", "semantic": "global", "detailed": "weatherVerifyC"}},
        "201640614": {"imageId": "n235859", "question": "Who is wearing the dress?", "answer": "woman", "isBalanced": True,
                      "types": {"structural": "query", "semantic": "rel", "detailed": "relS"}},
        "202225914": {"imageId": "n336443", "question": "What color is the car?", "answer": "red", "isBalanced": True,
                      "types": {"structural": "query", "semantic": "attr", "detailed": "directOf"}},
        "2062325": {"imageId": "n179136", "question": "Is the surfer wet?", "answer": "yes", "isBalanced": False,
                    "types": {"structural": "verify", "semantic": "attr", "detailed": "verifyAttr"}},
    })
    val = [
        {"image": "VizWiz_val_00000000.jpg", "question": "what is this? I think it's a can ",
         "answers": [{"answer": a, "answer_confidence": "yes"} for a in ["soda can"] * 4 + ["can"] * 3 + ["unanswerable"] * 3],
         "answerable": 1, "answer_type": "other"},
        {"image": "VizWiz_val_00000001.jpg", "question": "Is this readable?",
         "answers": [{"answer": "unanswerable", "answer_confidence": "yes"}] * 10, "answerable": 0,
         "answer_type": "unanswerable"},
        {"image": "VizWiz_val_00000002.jpg", "question": "Is the light on?",
         "answers": [{"answer": a, "answer_confidence": "maybe"} for a in ["yes"] * 5 + ["no"] * 5],
         "answerable": 1, "answer_type": "yes/no"},
    ]
    write_json(root / "vizwiz/val.json", val)
    write_json(root / "vizwiz/test.json", [{"image": "VizWiz_test_00000000.jpg", "question": "What is this?"},
                                           {"image": "VizWiz_test_00000001.jpg", "question": "what color is it?"}])
    write_json(root / "textvqa/TextVQA_0.5.1_val.json", {"dataset_name": "textvqa", "dataset_version": "0.5.1", "data": [
        {"question_id": 34602, "image_id": "003a8ae2ef43b901", "question": "what is the brand of this camera?",
         "answers": ["dakota"] * 7 + ["nikon"] * 3, "set_name": "val"},
        {"question_id": 34603, "image_id": "003a8ae2ef43b901", "question": "what year is shown?",
         "answers": ["2012"] * 10, "set_name": "val"},
        {"question_id": 34604, "image_id": "97b1112b17015396", "question": "whats the lowest number yard line?",
         "answers": ["10"] * 10, "set_name": "val"},
    ]})
    write_json(root / "textvqa/TextVQA_Rosetta_OCR_v0.2_val.json", {"data": [
        {"image_id": "003a8ae2ef43b901", "ocr_tokens": ["DAKOTA", "DIGITAL", "Single-Use"], "ocr_info": []},
        {"image_id": "97b1112b17015396", "ocr_tokens": [], "ocr_info": []}]})
    questions = lambda ids: {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco",
                             "questions": [{"question_id": q, "image_id": q // 1000, "question": f"What is {q}?"}
                                           for q in ids]}
    write_json(root / "vqav2/v2_OpenEnded_mscoco_test-dev2015_questions.json", questions([1001, 2002]))
    write_json(root / "vqav2/v2_OpenEnded_mscoco_test2015_questions.json", questions([1000, 1001, 2002, 3003]))
    return root


@functools.cache
def _config(name: str, datasets: Path, overrides: tuple[str, ...]):
    return compose_config("evaluate", [f"paths.datasets={datasets}", "paths.output_dir=unused",
                                       f"benchmark={name}", *overrides]).benchmark


def bench(name: str, datasets: Path, tmp_path: Path, *overrides: str):
    """conf/benchmark/<name>.yaml on ``datasets``, instantiated afresh (configs composed once per module)."""
    return instantiate(_config(name, datasets, overrides))


def test_gqa_questions_and_exact_match(datasets, tmp_path):
    gqa = bench("gqa", datasets, tmp_path)
    assert isinstance(gqa, GQABenchmark) and gqa.image_root == datasets / "gqa/images"
    questions = gqa.questions()
    assert questions[0] == {"question_id": "201307251", "image": "n161313.jpg", "text": "Is it overcast?" + SHORT}
    assert len(questions) == 4   # every question is asked; the unbalanced one is not scored
    # "No." -> "no" right; " woman" keeps its space -> wrong; "The red" keeps its article -> wrong.
    result = gqa.score({"201307251": "No.", "201640614": " woman", "202225914": "The red", "2062325": "yes"})
    assert list(result)[:5] == ["benchmark", "metric", "n", "missing", "score"]
    assert (result["benchmark"], result["n"], result["missing"]) == ("gqa", 3, 0)
    assert result["score"] == pytest.approx(100 / 3) and result["accuracy"] == pytest.approx(1 / 3)
    assert (result["structural_verify"], result["structural_query"]) == (1.0, 0.0)
    assert (result["semantic_global"], result["semantic_rel"], result["semantic_attr"]) == (1.0, 0.0, 0.0)
    result = gqa.score({"201640614": "Woman..", "202225914": "RED"})   # periods stripped, case folded
    assert (result["missing"], result["score"]) == (1, pytest.approx(200 / 3))
    assert gqa_answer("Yes.") == "yes" and gqa_answer("yes ") == "yes " and gqa_answer("3.5") == "3.5"
    with pytest.raises(ValueError, match="does not have"):
        gqa.score({"999": "no"})


def test_vizwiz_val_vqa_accuracy(datasets, tmp_path):
    vizwiz = bench("vizwiz_val", datasets, tmp_path)
    assert isinstance(vizwiz, VizWizBenchmark) and vizwiz.image_root == datasets / "vizwiz/val"
    questions = vizwiz.questions()
    # capitalize(): first letter up, the rest lowered ("I" -> "i"), the trailing space kept (LLaVA's llava_test.jsonl)
    assert questions[0] == {"question_id": 0, "image": "VizWiz_val_00000000.jpg",
                            "text": "What is this? i think it's a can " + VIZWIZ}
    # "Can." -> "can": 3 of 10 annotators; the 3 "can" positions see 2 others (2/3), the other 7 see 3 (1).
    result = vizwiz.score({"0": "Can.", "1": "Unanswerable"})
    assert (result["n"], result["missing"]) == (3, 1)
    assert result["accuracy_other"] == pytest.approx(0.9) and result["accuracy_unanswerable"] == 1.0
    assert result["accuracy_yes/no"] == 0.0   # the unanswered question
    assert result["score"] == pytest.approx(100 * (0.9 + 1.0 + 0.0) / 3)
    result = vizwiz.score({"0": "soda can", "1": "unsuitable", "2": "Yes"})   # 5 of 10 say yes -> 1.0
    assert result["score"] == pytest.approx(100 * (1.0 + 0.0 + 1.0) / 3)
    with pytest.raises(ValueError, match="does not have"):
        vizwiz.score({"3": "no"})


def test_vizwiz_test_upload(datasets, tmp_path):
    vizwiz = bench("vizwiz_test", datasets, tmp_path)
    assert vizwiz.questions()[1]["text"] == "What color is it?" + VIZWIZ
    result = vizwiz.score({"0": "Unanswerable."})
    assert (result["score"], result["n"], result["missing"]) == (None, 2, 1) and "EvalAI" in result["note"]
    path = vizwiz.upload({"0": "The Soda-Can."}, tmp_path / "up")
    assert path == tmp_path / "up/vizwiz_test.json"
    assert path.read_text() == ('[{"image": "VizWiz_test_00000000.jpg", "answer": "soda can"}, '
                                '{"image": "VizWiz_test_00000001.jpg", "answer": ""}]')
    with pytest.raises(ValueError, match="does not have"):
        vizwiz.upload({"2": "x"}, tmp_path / "up")


def test_textvqa_prompt_with_and_without_ocr(datasets, tmp_path):
    textvqa = bench("textvqa", datasets, tmp_path)
    assert isinstance(textvqa, TextVQABenchmark) and textvqa.image_root == datasets / "textvqa/train_images"
    first, second, third = textvqa.questions()
    assert first == {"question_id": 34602, "image": "003a8ae2ef43b901.jpg", "image_id": "003a8ae2ef43b901",
                     "text": "What is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL, Single-Use" + SHORT}
    assert second["question_id"] == 34603   # official ids: unique though both questions share the image
    assert third["text"] == "Whats the lowest number yard line?\nReference OCR token: " + SHORT   # the line stays, empty
    plain = bench("textvqa", datasets, tmp_path, "benchmark.ocr_tokens=false")
    assert plain.questions()[0]["text"] == "What is the brand of this camera?" + SHORT
    # Without the Rosetta file the tokens must be a field of each question.
    data = json.loads((datasets / "textvqa/TextVQA_0.5.1_val.json").read_text())
    path = write_json(tmp_path / "no_ocr.json", data)
    with pytest.raises(AnnotationError, match="ocr_tokens"):
        TextVQABenchmark("t", str(path), str(tmp_path)).questions()
    assert "Reference" not in TextVQABenchmark("t", str(path), str(tmp_path), ocr_tokens=False).questions()[0]["text"]
    for item in data["data"]:
        item["ocr_tokens"] = ["A", "b"]
    path = write_json(tmp_path / "inline.json", data)
    assert TextVQABenchmark("t", str(path), str(tmp_path)).questions()[2]["text"].endswith("token: A, b" + SHORT)
    write_json(tmp_path / "ocr.json", {"data": [{"image_id": "003a8ae2ef43b901", "ocr_tokens": ["x"]}]})
    with pytest.raises(AnnotationError, match="no OCR entry for image 97b1112b17015396"):
        TextVQABenchmark("t", str(path), str(tmp_path), ocr=str(tmp_path / "ocr.json")).questions()


def test_textvqa_scores(datasets, tmp_path):
    textvqa = bench("textvqa", datasets, tmp_path)
    result = textvqa.score({"34602": "Dakota", "34603": "2012.", "34604": "ten"})
    assert (result["score"], result["missing"]) == (100.0, 0)
    result = textvqa.score({"34602": "nikon", "34604": "10"})   # 3 of 10 -> 0.9; 34603 missing -> 0
    assert (result["n"], result["missing"]) == (3, 1) and result["score"] == pytest.approx(100 * 1.9 / 3)
    with pytest.raises(ValueError, match="does not have"):
        textvqa.score({"003a8ae2ef43b901": "dakota"})   # LLaVA's image-id question ids are not ours


def test_vqav2_testdev_upload_covers_test2015(datasets, tmp_path):
    vqav2 = bench("vqav2_testdev", datasets, tmp_path)
    assert vqav2.image_root == datasets / "coco/test2015"
    assert vqav2.questions() == [
        {"question_id": 1001, "image": "COCO_test2015_000000000001.jpg", "text": "What is 1001?" + SHORT},
        {"question_id": 2002, "image": "COCO_test2015_000000000002.jpg", "text": "What is 2002?" + SHORT}]
    result = vqav2.score({"1001": "Two."})
    assert (result["score"], result["n"], result["missing"]) == (None, 2, 1) and "EvalAI" in result["note"]
    path = vqav2.upload({"1001": "Two.", "2002": "t-shirt"}, tmp_path / "up")
    rows = json.loads(path.read_text())
    assert rows == [{"question_id": 1000, "answer": ""}, {"question_id": 1001, "answer": "2"},
                    {"question_id": 2002, "answer": "t shirt"}, {"question_id": 3003, "answer": ""}]
    assert all(type(r["question_id"]) is int for r in rows) and "\n" not in path.read_text()
    with pytest.raises(ValueError, match="does not have"):   # in test2015 but never asked (not test-dev)
        vqav2.score({"1000": "yes"})
    shutil.copy(datasets / "vqav2/v2_OpenEnded_mscoco_test-dev2015_questions.json", tmp_path / "dev.json")
    write_json(tmp_path / "test.json", {"questions": [{"question_id": 1001, "image_id": 1, "question": "?"}]})
    wrong = VQAv2TestDevBenchmark("v", str(tmp_path / "dev.json"), str(tmp_path / "test.json"), str(tmp_path))
    with pytest.raises(ValueError, match="lacks 1 test-dev questions"):
        wrong.upload({}, tmp_path / "up")


def test_server_scored_results_print(datasets, tmp_path):
    """A server-scored split's result (score None, a note) goes through the results table evaluate.py prints."""
    result = bench("vqav2_testdev", datasets, tmp_path).score({"1001": "2"})
    table = benchmark_table({"vqav2_testdev": result, "gqa": bench("gqa", datasets, tmp_path).score({"201307251": "no"})})
    row = next(line for line in table.splitlines() if line.startswith("vqav2_testdev"))
    assert " - " in row and "note scored by the VQAv2 EvalAI server" in row
    assert "33.3" in next(line for line in table.splitlines() if line.startswith("gqa"))
