"""Model benchmarks scored from an answers file (LLaVA eval layout), on the mini world's held-out files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import compose_config
from genixer.evaluation.benchmarks import RECBenchmark, VQABenchmark, read_answers
from genixer.pipelines import evaluate
from genixer.tasks import format_box


def write_answers(path: Path, answers: dict) -> Path:
    path.write_text("".join(json.dumps({"question_id": q, "prompt": "p", "text": t, "model_id": "m"}) + "\n"
                            for q, t in answers.items()))
    return path


@pytest.fixture
def vqa(small_world) -> VQABenchmark:
    ann = small_world / "annotations"
    return VQABenchmark("mw", str(ann / "v2_OpenEnded_mini_heldout_questions.json"),
                        str(ann / "v2_mini_heldout_annotations.json"), str(small_world / "images"),
                        "heldout/mw_heldout_{image_id:012d}.png",
                        "\nAnswer the question using a single word or phrase.")


@pytest.fixture
def annotations(small_world) -> list[dict]:
    return json.loads((small_world / "annotations/v2_mini_heldout_annotations.json").read_text())["annotations"]


def test_heldout_vqa_questions_name_existing_images(vqa, small_world):
    questions = vqa.questions()
    assert len(questions) >= 12 * 4 and all((small_world / "images" / q["image"]).is_file() for q in questions)
    assert questions[0]["text"].endswith("?\nAnswer the question using a single word or phrase.")


def test_vqa_scores(vqa, annotations):
    right = {str(a["question_id"]): a["multiple_choice_answer"] for a in annotations}
    assert vqa.score(right)["accuracy"] == 1.0 and vqa.score(right)["missing"] == 0
    wrong = {q: "purple elephant" for q in right}
    assert vqa.score(wrong)["accuracy"] == 0.0
    partial = dict(list(right.items())[1:])  # one question unanswered: it scores 0
    n = len(annotations)
    result = vqa.score(partial)
    assert result["missing"] == 1 and result["accuracy"] == pytest.approx((n - 1) / n)
    words = {q: {"2": "two", "3": "three"}.get(a, a) for q, a in right.items()}  # number words normalize
    assert vqa.score(words)["accuracy"] == 1.0
    with pytest.raises(ValueError, match="does not have"):
        vqa.score({**right, "999": "yes"})



def test_vqa_accuracy_by_question_and_answer_type(tmp_path):
    """Four hand-made questions: count right, one color right and one at 2 of 10 answers (0.6), exist wrong."""
    from genixer.evaluation.tables import benchmark_table

    rows = [(1, "count", "number", ["2"] * 10, "two"), (2, "color", "other", ["red"] * 10, "red"),
            (3, "color", "other", ["blue"] * 8 + ["green"] * 2, "green"), (4, "exist", "yes/no", ["yes"] * 10, "no")]
    annotations = [{"question_id": q, "image_id": 1, "question_type": qt, "answer_type": at, "multiple_choice_answer": given[0],
                    "answers": [{"answer": g, "answer_confidence": "yes", "answer_id": k + 1} for k, g in enumerate(given)]}
                   for q, qt, at, given, _ in rows]
    (tmp_path / "a.json").write_text(json.dumps({"annotations": annotations}))
    (tmp_path / "q.json").write_text(json.dumps({"questions": [
        {"question_id": q, "image_id": 1, "question": f"q{q}?"} for q, *_ in rows]}))
    vqa = VQABenchmark("hand", str(tmp_path / "q.json"), str(tmp_path / "a.json"), str(tmp_path), "{image_id}.png")
    result = vqa.score({str(q): answer for q, *_, answer in rows})
    assert result["score"] == pytest.approx(100 * (1 + 1 + 0.6 + 0) / 4) and result["accuracy"] == pytest.approx(0.65)
    assert result["by_question_type"] == pytest.approx({"color": 80.0, "count": 100.0, "exist": 0.0})
    assert result["by_answer_type"] == pytest.approx({"number": 100.0, "other": 80.0, "yes/no": 0.0})
    assert result["accuracy_other"] == pytest.approx(0.8) and result["accuracy_yes/no"] == 0.0  # as before
    missing = vqa.score({"1": "2", "2": "red", "3": "blue"})  # the unanswered exist question scores 0
    assert missing["missing"] == 1
    assert missing["by_question_type"] == pytest.approx({"color": 100.0, "count": 100.0, "exist": 0.0})
    assert "by_question_type" in benchmark_table({"hand": result})

def test_rec_scores(small_world):
    rec = RECBenchmark("mw_rec", str(small_world / "annotations/rec_heldout.jsonl"), str(small_world / "images"))
    lines = rec.lines()
    truth = {str(k): format_box([r["bbox"][0] / r["width"], r["bbox"][1] / r["height"], r["bbox"][2] / r["width"],
                                  r["bbox"][3] / r["height"]]) for k, r in enumerate(lines)}
    result = rec.score(truth)
    assert (result["accuracy"], result["failed"], result["missing"]) == (1.0, 0, 0) and result["miou"] > 0.99
    result = rec.score({**truth, "0": "somewhere on the left"})  # no parseable box: a miss
    assert result["failed"] == 1 and result["accuracy"] == pytest.approx((len(lines) - 1) / len(lines))
    assert rec.questions()[0]["text"] == f"Where is {lines[0]['expression']}? Answer with a box."


def test_answers_file_is_checked(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"question_id": 1, "text": "yes"}\n{"question_id": 1, "text": "no"}\n')
    with pytest.raises(ValueError, match="answered twice"):
        read_answers(p)
    p.write_text('{"question_id": 1}\n')
    with pytest.raises(ValueError, match="lacks question_id or text"):
        read_answers(p)


def test_evaluate_py_scores_an_answers_file(tmp_path, small_world, annotations):
    answers = write_answers(tmp_path / "answers.jsonl", {a["question_id"]: a["multiple_choice_answer"] for a in annotations})
    out = tmp_path / "eval"
    cfg = compose_config("evaluate", [f"paths.mini_world={small_world}", f"paths.output_dir={out}",
                                      "benchmark=mini_world_vqa", f"answers={answers}"])
    results = evaluate.run(cfg)
    assert results["benchmarks"]["mini_world_vqa"]["accuracy"] == 1.0
    assert json.loads((out / "results.json").read_text()) == results
    assert "mini_world_vqa" in (out / "table.txt").read_text()
    cfg = compose_config("evaluate", [f"paths.mini_world={small_world}", f"paths.output_dir={tmp_path / 'e2'}",
                                      "benchmark=mini_world_vqa"])
    with pytest.raises(ValueError, match="needs model=<run or checkpoint dir>"):
        evaluate.run(cfg)


def test_square_frame_boxes_are_mapped_back_to_the_original_image(small_world, tmp_path):
    from genixer.evaluation.benchmarks import square_to_original

    # A 64x32 image on a 64x64 square sits at dy=16: the square box [0,0.25,0.5,0.75] is the left half.
    assert square_to_original("[0.000,0.250,0.500,0.750]", 64, 32) == format_box([0, 0, 0.5, 1])
    assert square_to_original("[0.000,0.000,0.500,1.000]", 64, 32) == format_box([0, 0, 0.5, 1])  # clamped
    assert square_to_original("no box here", 64, 32) == "no box here"
    line = {"img_path": "a.png", "expression": "the left half", "bbox": [0, 0, 32, 32], "width": 64, "height": 32}
    (tmp_path / "rec.jsonl").write_text(json.dumps(line) + "\n")
    answer = {"0": "[0.000,0.250,0.500,0.750]"}   # right in the square frame, wrong read as the original's
    assert RECBenchmark("r", str(tmp_path / "rec.jsonl"), str(tmp_path)).score(answer)["accuracy"] == 0.0
    assert RECBenchmark("r", str(tmp_path / "rec.jsonl"), str(tmp_path), box_frame="square").score(answer)["accuracy"] == 1.0
    with pytest.raises(ValueError, match="box_frame"):
        RECBenchmark("r", str(tmp_path / "rec.jsonl"), str(tmp_path), box_frame="padded")


def test_rec_questions_from_a_template_pool(small_world, tmp_path):
    pool = tmp_path / "rec.json"
    pool.write_text(json.dumps(["Where is <expr>?", "Locate <expr>.", "Give the box of <expr>."]))
    path, images = str(small_world / "annotations/rec_heldout.jsonl"), str(small_world / "images")
    rec = RECBenchmark("r", path, images, templates=str(pool))
    texts = [q["text"] for q in rec.questions()]
    lines = rec.lines()
    assert all(any(t == x.replace("<expr>", r["expression"]) for x in json.loads(pool.read_text()))
               for t, r in zip(texts, lines))
    assert len({t.split(" ")[0] for t in texts}) > 1   # several templates drawn
    assert texts == [q["text"] for q in RECBenchmark("r", path, images, templates=str(pool)).questions()]   # stable
    pool.write_text(json.dumps(["Where is it?"]))
    with pytest.raises(ValueError, match="<expr>"):
        RECBenchmark("r", path, images, templates=str(pool))
