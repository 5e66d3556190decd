"""Coverage: kinds of generated rows (question types, expression slots), masked forms, distinct-n, share
ratios against a training mixture, and the coverage block / table of an evaluate run."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import compose_config, task, write_generation_run
from genixer.data.mixture import Component, Mixture
from genixer.miniworld.coverage import Coverage, distinct_n, form, kinds, share_ratios

BOX = "[0.100,0.200,0.300,0.400]"


def qa(family: str, question: str, answer: str = "x", **parsed) -> dict:
    pair = {"question": question, "answer": answer}
    return {"family": family, "parsed": {**pair, **parsed}, "qa_pairs": [pair], "regions": []}


def region(family: str, expression: str | None, question: str = "Where is it?") -> dict:
    return {"family": family, "parsed": {"question": question, "expression": expression},
            "qa_pairs": [], "regions": [{"expression": expression, "box": [0.1, 0.2, 0.3, 0.4]}]}


@pytest.mark.parametrize("row,expected", [
    (qa("common_vqa", "What color is the small star on the left?"), ["color"]),
    (qa("common_vqa", "How many red objects are there?"), ["count"]),
    (qa("common_vqa", "What is the weather like?"), ["other"]),
    (qa("adv_vqa", "Is there a red circle in the image?"), ["exist"]),
    (qa("long_qa", "Is the blue star small or large?", "The blue star is small."), ["size"]),
    ({"family": "mc_vqa", "parsed": {"question": "How many diamonds are in the image?", "choices": ["1", "2"],
                                     "answer_index": 0, "answer": "A"},
      "qa_pairs": [{"question": "How many diamonds are in the image?\nA. 1\nB. 2", "answer": "A. 1"}], "regions": []},
     ["count"]),
    ({"family": "md", "parsed": {"turns": [{"question": q, "answer": "a"} for q in (
        "What is shown in this image?", "What shape is the blue object?", "Is the red circle above the blue square?")]},
      "qa_pairs": [], "regions": []}, ["caption", "shape", "relation"]),
    (qa("pointqa_local", "What is this object?", "square", box=[0.1, 0.2, 0.3, 0.4]), ["what"]),
    (qa("pointqa_local", "Is this object small or large?", "large"), ["size"]),
    (qa("qca_box", f"What shape is the orange object{BOX}?", f"The orange object{BOX} is a star."), ["shape"]),
    (qa("qca_box", "What color is <ph_st>the star<ph_ed>?"), ["color"]),
    (qa("rd", f"Is this object{BOX} to the left of that object{BOX}?"), ["relation"]),
    (qa("rd", f"Why is this{BOX} here?"), ["other"]),
    (region("rec", "the small red circle on the left"), ["size+color+shape+position"]),
    (region("rec", "purple object on the right"), ["color+position"]),
    (region("rec", None, "Where is the red circle?"), ["other"]),   # no template matched: not an expression
    (region("reg", "a large red triangle"), ["size+color+shape"]),
    (region("reg", "this object"), ["pronoun"]),
    (region("reg", "the object"), ["object"]),
    (region("reg", "a fluffy cat"), ["other"]),
    (qa("pointqa_v7w", "Which one is the red circle?", candidates=[], answer=[0.1, 0.2, 0.3, 0.4]), ["color+shape"]),
    (qa("pointqa_v7w", "Where is the large star located?"), ["size+shape"]),
    (qa("pointqa_v7w", "Count the stars."), ["other"]),
    (qa("toy", "What shape is the red object?"), ["shape"]),   # a family of its own: question types
])
def test_kinds(row, expected):
    assert kinds(row) == expected


def test_form_masks_attribute_words():
    assert form("What color is the small star on the left?") == "what color is the <size> <shape> <pos>"
    assert form("How many red circles are there? ") == "how many <color> <shape> are there"
    assert form(f"What shape is the orange object{BOX}?") == "what shape is the <color> object"
    assert form("Is <ph_st>this one<ph_ed> above the 2 big stars?") == "is this one above the <n> <size> <shape>"
    assert form("Are there three squares at the top") == form("are there five  diamonds at the bottom.")


def test_distinct_n():
    texts = ["a b a b", "A b c?"]
    assert distinct_n(texts, 1) == 3 / 7          # a b a b a b c
    assert distinct_n(texts, 2) == 3 / 5          # ab ba ab | ab bc
    assert distinct_n(["a"], 2) == 0.0 and distinct_n([], 1) == 0.0


def test_share_ratios():
    gen = {"color": 0.5, "shape": 0.5}
    train = {"color": 0.25, "shape": 0.5, "count": 0.24, "other": 0.01}
    assert share_ratios(gen, train, 0.02) == {"color": 2.0, "shape": 1.0, "count": 0.0}   # other: under 2%


class Listed:
    def __init__(self, records):
        self.records = records

    def load(self):
        return list(self.records)


def test_coverage_against_a_training_mixture():
    """Shares, per-kind accuracy and the covered rule on a two-type training set; no reference for other families."""
    train = [{"question": q, "answer": "1"} for q in ["How many stars are there?"] * 3 + ["What color is the star?"]]
    coverage = Coverage({"vqa": Mixture({"vqa": Component(Listed(train), task("common_vqa"))}, seed=0)})
    rows = [{**qa("common_vqa", "How many stars are there?"), "status": "ok", "image": "a.png", "ok": True},
            {**qa("common_vqa", "How many circles can you see?"), "status": "ok", "image": "a.png", "ok": False},
            {**qa("common_vqa", "What is shown?"), "status": "ok", "image": "a.png", "ok": True},
            {**qa("toy", "What color is the star?"), "status": "ok", "image": "a.png"},
            {"status": "rejected", "family": "common_vqa"}]
    md = {"family": "md", "status": "ok", "image": "a.png", "parsed": {"turns": [
        {"question": "How many stars are there?", "answer": "1"}, {"question": "What is shown?", "answer": "x"}]}}

    def check(row):   # a stand-in oracle: (correct, baseline correct, status)
        shown = row["parsed"].get("question") == "What is shown?"
        return row.get("ok", row["parsed"].get("answer") == "1"), False, "unverifiable" if shown else "checked"

    result = coverage.evaluate_run(rows + [md], "some_generator", check)
    f = result["common_vqa"]
    assert f["reference"] == "vqa" and f["n"] == 3 and f["forms"] == 3 and f["train_forms"] == 2
    assert f["types"]["count"] == {"share": 2 / 3, "train_share": 0.75, "accuracy": 0.5, "n": 2}
    assert f["types"]["color"] == {"share": 0.0, "train_share": 0.25, "accuracy": None, "n": 0}
    assert f["types"]["other"]["accuracy"] == 1.0 and list(f["types"]) == ["count", "color", "other"]
    assert (f["min_share_ratio"], f["worst"], f["covered"]) == (0.0, "color", False)
    toy = result["toy"]
    assert toy["reference"] is None and toy["min_share_ratio"] is None and toy["covered"] is None
    assert toy["types"] == {"color": {"share": 1.0, "accuracy": None, "n": 1}}   # no oracle check for "toy"
    # MD: each turn checked as its own QA row; an unverifiable turn is not graded
    assert result["md"]["types"]["count"]["accuracy"] == 1.0 and result["md"]["types"]["other"]["accuracy"] is None
    with pytest.raises(ValueError, match="unknown references"):
        Coverage({}, prefer={"x*": "nope"})
    # two mixtures with the family: the one prefer names for the generator, else none (not the first listed)
    mixture = lambda family: Mixture({family: Component(Listed(train), task(family))}, seed=0)  # noqa: E731
    two = Coverage({"a": mixture("common_vqa"), "b": mixture("common_vqa"), "c": mixture("rec")},
                   prefer={"gen_b*": "b", "gen_c*": "c"})
    assert [two.reference(g, "common_vqa") for g in ("gen_b1", "gen_c1", "other")] == ["b", None, None]
    assert two.reference("gen_b1", "rec") == "c" and two.reference("gen_c1", "rec") == "c"
    assert two.evaluate_run(rows, "gen_c1", check)["common_vqa"]["ambiguous"] == ["a", "b"]
    assert "ambiguous" not in two.evaluate_run(rows, "gen_b1", check)["common_vqa"]


def test_evaluate_reports_coverage(tmp_path, small_world):
    """An evaluate run adds a coverage block (metrics.json) and table (table.txt); coverage=null turns it off."""
    from genixer.pipelines import evaluate

    instances = json.loads((small_world / "annotations/instances_heldout.json").read_text())
    objects = Counter(a["image_id"] for a in instances["annotations"])
    rows = []
    for k, image in enumerate(instances["images"][:6]):
        question = "How many objects are there?" if k % 2 else "What is shown?"
        rows.append({"id": f"{k}/mixed/0", "image": image["file_name"], "status": "ok", "text": question,
                     **qa("common_vqa", question, str(objects[image["id"]]))})
    rows.append({"id": "9/mixed/0", "image": instances["images"][0]["file_name"], "status": "ok", "text": "",
                 **qa("toy", "What is it?")})
    run = write_generation_run(tmp_path / "gen", rows, small_world / "images")
    common = [f"paths.mini_world={small_world}", f"runs=[{run}]"]
    results = evaluate.run(compose_config("evaluate", [*common, f"paths.output_dir={tmp_path / 'eval'}",
                                                      "+coverage.prefer.by-hand=genixer_l_all"]))
    f = results["coverage"]["by-hand:mixed"]["common_vqa"]
    assert f["reference"] == "genixer_l_all" and f["types"]["count"]["share"] == 0.5
    assert f["types"]["count"]["accuracy"] == 1.0 and f["types"]["count"]["train_share"] > 0.05
    assert f["covered"] is False and f["worst"] in ("color", "shape", "size", "exist", "relation")
    assert results["coverage"]["by-hand:mixed"]["toy"]["reference"] is None
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert metrics["coverage"]["by-hand:mixed"]["common_vqa"]["forms"] == 2
    table = (tmp_path / "eval/table.txt").read_text()
    assert "worst kind" in table and "no reference" in table and "count 50%/" in table
    assert "training reference of by-hand: genixer_l_all (common_vqa); none (toy)" in table
    results = evaluate.run(compose_config("evaluate", [*common, f"paths.output_dir={tmp_path / 'unnamed'}"]))
    table = (tmp_path / "unnamed/table.txt").read_text()
    # a generator no prefer glob names, and two mixtures with common_vqa: no comparison, and the table says why
    ambiguous = results["coverage"]["by-hand:mixed"]["common_vqa"]
    assert ambiguous["reference"] is None and ambiguous["ambiguous"] == ["genixer_l_all", "genixer_l"]
    assert ambiguous["min_share_ratio"] is None and ambiguous["covered"] is None
    assert ("training reference of by-hand: ambiguous, set coverage.prefer: genixer_l_all / genixer_l (common_vqa); "
            "none (toy)") in table
    off = evaluate.run(compose_config("evaluate", [*common, f"paths.output_dir={tmp_path / 'off'}", "coverage=null"]))
    assert "coverage" not in off and "generation" in off
