"""Tests for genixer.tasks: box protocol, template pools, target/parse round trips, rejects."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from genixer.tasks import (REC, RECListener, CommonVQA, OneOf, TemplatePool, box_problem, denormalize_box,
                           find_box_groups, find_point_groups, format_box, format_box_group,
                           format_point, normalize_box, normalize_point, parse_qa_pairs)

COMMON_SUFFIX = "\nThis is the Common VQA task."
REC_SUFFIX = (" This is a Referring Expression Comprehension (REC) task. The question will give an "
              "expression of a specific region of the image. Please provide the coordinates in the answer.")
WORDS = ("red blue small large man woman dog cat car tree left right front back second "
         "striped wooden near behind under shirt hat bike bench window top bottom with on").split()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def instructions() -> TemplatePool:
    return TemplatePool.builtin("generic_instructions")


@pytest.fixture(scope="module")
def questions() -> TemplatePool:
    return TemplatePool.builtin("rec_questions", placeholder="<expr>")


@pytest.fixture(scope="module")
def common(instructions) -> CommonVQA:
    return CommonVQA("common_vqa", COMMON_SUFFIX, instructions)


@pytest.fixture(scope="module")
def rec(instructions, questions) -> REC:
    return REC("rec", REC_SUFFIX, instructions, questions)


@pytest.fixture(scope="module")
def agnostic(instructions, rec, common) -> OneOf:
    return OneOf("agnostic", {"rec": rec, "common_vqa": common}, instructions, suffix="")


def random_box(rng: random.Random, w: int, h: int) -> list[int]:
    x1, x2 = sorted(rng.sample(range(w + 1), 2))
    y1, y2 = sorted(rng.sample(range(h + 1), 2))
    return [x1, y1, x2, y2]


def random_phrase(rng: random.Random, lo: int = 1, hi: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


# ---- box protocol ---------------------------------------------------------------------------

def test_box_round_trip_random():
    rng = random.Random(0)
    for _ in range(2000):
        w, h = rng.randint(2, 2000), rng.randint(2, 2000)  # mostly non-square
        box_px = random_box(rng, w, h)
        box = normalize_box(box_px, w, h)
        assert all(0.0 <= v <= 1.0 and round(v, 3) == v for v in box)
        assert find_box_groups(format_box(box)) == [[box]]
        back = denormalize_box(box, w, h)
        # 3 decimals quantize to 0.0005 * side, i.e. at most 1 px up to 2000 px.
        assert all(abs(a - b) <= 1 for a, b in zip(back, box_px)), (box_px, back, w, h)
        if max(w, h) <= 1000:
            assert list(back) == box_px


def test_normalize_uses_original_size_clamps_and_rounds():
    assert normalize_box([64, 48, 320, 240], 640, 480) == (0.1, 0.1, 0.5, 0.5)
    assert normalize_box([-10, -5, 700, 500], 640, 480) == (0.0, 0.0, 1.0, 1.0)
    assert normalize_box([1, 1, 2, 2], 3, 7) == (0.333, 0.143, 0.667, 0.286)
    assert normalize_point([320, 600], 640, 480) == (0.5, 1.0)
    assert denormalize_box((0.5, 0.25, 0.75, 1.0), 3, 2) == (2, 1, 2, 2)  # 1.5 -> 2, not 1
    with pytest.raises(ValueError):
        normalize_box([0, 0, 1], 10, 10)
    with pytest.raises(ValueError):
        normalize_box([0, 0, 1, 1], 0, 10)


def test_formatting():
    assert format_box((0.1, 0.2, 0.3, 0.4)) == "[0.100,0.200,0.300,0.400]"
    assert format_box((0, 1, 0.5, 0.12345)) == "[0.000,1.000,0.500,0.123]"
    assert format_point((0.5, 0.3333)) == "[0.500,0.333]"
    group = format_box_group([(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.9, 0.9)])
    assert group == "[0.100,0.200,0.300,0.400;0.500,0.500,0.900,0.900]"
    assert find_box_groups(f"the dogs{group} run") == [[(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.9, 0.9)]]


def test_find_box_groups_tolerance_and_garbage():
    assert find_box_groups("[0.1, 0.2, 1, 0]") == [[(0.1, 0.2, 1.0, 0.0)]]
    assert find_box_groups("a[0,0,1,1] b [0.5,0.5,0.6,0.6]") == [[(0, 0, 1, 1)], [(0.5, 0.5, 0.6, 0.6)]]
    for bad in ("[0.1,0.2,0.3]", "[0.1,0.2,0.3,0.4,0.5]", "[0.1,0.2,x,0.4]", "[0.1,,0.2,0.3,0.4]",
                "[0.1.2,0.2,0.3,0.4]", "[.1,0.2,0.3,0.4]", "(0.1,0.2,0.3,0.4)", "[0.1,0.2,0.3,0.4;]"):
        assert find_box_groups(bad) == [], bad
    assert find_point_groups("point [0.512,0.333] here") == [[(0.512, 0.333)]]


def test_box_problem():
    assert box_problem((0.1, 0.2, 0.3, 0.4)) is None
    assert box_problem((0.1, 0.2, 0.3)) == "wrong box arity"
    assert box_problem((0.1, 0.2, 1.3, 0.4)) == "box out of range"
    assert box_problem((-0.1, 0.2, 0.3, 0.4)) == "box out of range"
    assert box_problem((0.3, 0.2, 0.3, 0.4)) == "degenerate box"
    assert box_problem((0.1, 0.5, 0.3, 0.4)) == "degenerate box"


# ---- template pools -------------------------------------------------------------------------

def test_builtin_pools(instructions, questions):
    assert len(instructions) >= 60 and len(questions) >= 30
    assert all("<image>" not in t for t in instructions.templates)
    assert all(t.count("<expr>") == 1 for t in questions.templates)


def test_pool_validation(tmp_path):
    cases = {"empty": [], "notlist": {"a": 1}, "blank": ["ok", "  "], "nonstr": ["ok", 3],
             "dup": ["a", "a"]}
    for name, items in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(items))
        with pytest.raises(ValueError, match=name):  # message names the file
            TemplatePool(path)
    path = tmp_path / "noexpr.json"
    path.write_text(json.dumps(["Where is <expr>?", "Find it."]))
    with pytest.raises(ValueError, match=r"noexpr.*entry 1.*Find it"):
        TemplatePool(path, placeholder="<expr>")
    assert len(TemplatePool(path)) == 2


def test_pick_deterministic_and_spread(instructions, questions):
    keys = [(7, epoch, idx) for epoch in range(3) for idx in range(2000)]
    picks = [instructions.pick(k) for k in keys]
    assert picks == [instructions.pick(k) for k in keys]
    assert all(instructions[i] == t for i, t in picks)
    counts = [0] * len(instructions)
    for i, _ in picks:
        counts[i] += 1
    mean = len(keys) / len(instructions)
    assert min(counts) > 0.5 * mean and max(counts) < 1.5 * mean
    # The epoch changes the choice for most samples.
    assert sum(instructions.pick((7, 0, i)) != instructions.pick((7, 1, i)) for i in range(500)) > 400
    # Two pools picked with one key are not tied together.
    pairs = {(instructions.pick(k)[0], questions.pick(k)[0]) for k in keys}
    assert len(pairs) > 5 * len(instructions)
    with pytest.raises(TypeError):
        instructions.pick(object())


def test_pick_independent_of_process_hash_seed(instructions):
    code = ("from genixer.tasks import TemplatePool as P;"
            "p=P.builtin('generic_instructions');print([p.pick((1,'x',i))[0] for i in range(50)])")
    outs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, check=True).stdout)
    assert outs == {str([instructions.pick((1, "x", i))[0] for i in range(50)]) + "\n"}


# ---- instructions ---------------------------------------------------------------------------

def test_instruction_suffixes(common, rec, agnostic, instructions):
    for task, suffix in ((common, COMMON_SUFFIX), (rec, REC_SUFFIX), (agnostic, "")):
        index, text = task.instruction((0, 0, 5))
        assert text == instructions[index] + suffix
        assert (index, text) == task.instruction((0, 0, 5))
    assert common.instruction("k")[1].endswith(".\nThis is the Common VQA task.")
    assert rec.instruction("k")[1].endswith(". This is a Referring Expression Comprehension (REC) task."
                                            " The question will give an expression of a specific region"
                                            " of the image. Please provide the coordinates in the answer.")


# ---- target / parse round trips -------------------------------------------------------------

def test_common_vqa_round_trip(common):
    rng = random.Random(1)
    for i in range(500):
        question = random_phrase(rng).capitalize() + "?"
        answer = rng.choice(["yes", "no", "2", random_phrase(rng) + "."])
        text = common.target({"question": question, "answer": answer}, (0, i))
        assert text == f"Question: {question} Answer: {answer}"
        assert common.parse(text).record == {"question": question, "answer": answer}


def test_rec_round_trip_all_templates(rec, questions):
    rng = random.Random(2)
    used: set[int] = set()
    i = 0
    while len(used) < len(questions) or i < 500:
        w, h = rng.randint(20, 1600), rng.randint(20, 1600)
        expression = random_phrase(rng)
        if rng.random() < 0.2:
            expression = expression.capitalize() + "."
        ann = {"expression": expression, "bbox": random_box(rng, w, h), "width": w, "height": h}
        box = normalize_box(ann["bbox"], w, h)
        if box_problem(box):  # tiny boxes can collapse at 3 decimals
            continue
        key = (3, 0, i)
        text = rec.target(ann, key)
        qid = questions.pick(key)[0]
        used.add(qid)
        assert text.endswith(f"Answer: {format_box(box)}")
        parsed = rec.parse(text)
        assert parsed.ok, (text, parsed.reason)
        assert parsed.record == {"question": questions[qid].replace("<expr>", expression),
                                 "expression": expression, "box": box}
        i += 1
        assert i < 20000, "some template is never picked"


def test_rec_templates_unambiguous(rec, questions):
    # Filling any template must be recovered by that very template, not a looser one.
    for index, template in enumerate(questions.templates):
        assert rec.matcher.match(template.replace("<expr>", "the qqq zzz")) == (index, "the qqq zzz")


def test_rec_expression_matching_tolerance(rec):
    box = "[0.100,0.200,0.300,0.400]"
    parsed = rec.parse(f"Question: WHERE IS   the red car? Answer: {box}")
    assert parsed.record["expression"] == "the red car"
    parsed = rec.parse(f"Question: Is the red car here? Answer: {box}")
    assert parsed.ok and parsed.record["expression"] is None
    assert parsed.record["question"] == "Is the red car here?"
    assert rec.parse("Question: Where is a cat? Answer: [0.1, 0.2, 0.3, 0.4].").record["box"] == (
        0.1, 0.2, 0.3, 0.4)


def test_rec_target_rejects_degenerate_box(rec):
    with pytest.raises(ValueError, match="degenerate"):
        rec.target({"expression": "dot", "bbox": [10, 10, 10, 20], "width": 100, "height": 100}, 0)
    with pytest.raises(ValueError, match="expression"):
        rec.target({"expression": " ", "bbox": [10, 10, 50, 20], "width": 100, "height": 100}, 0)


def test_rec_listener_asks_the_item_question_and_answers_the_box(rec, instructions, questions):
    """The generator's REC sample split the other way: the item question as the human turn (no instruction, no
    suffix), the box alone as the answer; the same question for the same key, the same checks on the box."""
    listener = RECListener("rec_listener", REC_SUFFIX, instructions, questions)
    ann = {"expression": "the small red circle on the left", "bbox": [10, 20, 30, 40], "width": 100, "height": 80}
    for key in range(20):
        ((question, answer),) = listener.turns(ann, key)
        assert rec.target(ann, key) == f"Question: {question} Answer: {answer}"
        assert "the small red circle on the left" in question and REC_SUFFIX.strip() not in question
        assert answer == "[0.100,0.250,0.300,0.500]"   # bbox in pixels, xyxy
    assert len({listener.turns(ann, key)[0][0] for key in range(40)}) > 5   # the pool's questions, not one
    with pytest.raises(ValueError, match="degenerate"):
        listener.turns({**ann, "bbox": [10, 10, 10, 20]}, 0)


# ---- agnostic -------------------------------------------------------------------------------

def test_agnostic_classifies(agnostic, rec, common):
    rec_text = rec.target({"expression": "the man", "bbox": [10, 20, 30, 40], "width": 100, "height": 80}, 1)
    parsed = agnostic.parse(rec_text)
    assert parsed.ok and parsed.task is rec
    assert parsed.record["expression"] == "the man" and parsed.record["box"] == (0.1, 0.25, 0.3, 0.5)
    parsed = agnostic.parse(common.target({"question": "What color is the bus?", "answer": "red"}, 1))
    assert parsed.task is common and parsed.record == {"question": "What color is the bus?", "answer": "red"}
    assert agnostic.parse("Question: Where is it? Answer: [0.5,0.5,0.4,0.9]").reason == "degenerate box"
    assert agnostic.parse("Question: Where? Answer: it is at [0.1,0.1,0.4,0.9]").reason == "text beyond box"
    assert agnostic.parse("Answer: yes").reason == "missing question"
    with pytest.raises(NotImplementedError):
        agnostic.target({"question": "q", "answer": "a"}, 0)


# ---- rejects --------------------------------------------------------------------------------

COMMON_REJECTS = {
    "What is this? It is a cat.": "missing question",
    "Question: What is this?": "missing answer",
    "Question:   Answer: a cat": "empty question",
    "Question: What is this? Answer:  ": "empty answer",
    "Question: a? Answer: b Question: c? Answer: d": "more than one pair",
    "Sure! Question: a? Answer: b": "text before question",
    "Question: Where is the cat? Answer: [0.1,0.2,0.3,0.4]": "box in answer",
    "Question: Where is the cat? Answer: around [0.1,0.2]": "box in answer",
}

REC_REJECTS = {
    "Where is the cat? [0.1,0.2,0.3,0.4]": "missing question",
    "Question: Where is the cat?": "missing answer",
    "Question: Where is the cat? Answer:": "empty answer",
    "Question: Where is the cat? Answer: on the sofa": "no box in answer",
    "Question: Where is the cat? Answer: [0.1,0.2,0.3]": "malformed box",
    "Question: Where is the cat? Answer: [0.1,0.2,0.3,0.4] [0.5,0.5,0.6,0.6]": "more than one box in answer",
    "Question: Where is the cat? Answer: [0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6]": "more than one box in answer",
    "Question: Where is the cat? Answer: [0.1,0.2,0.3,0.4] on the sofa": "text beyond box",
    "Question: Where is the cat? Answer: [0.1,0.2,1.3,0.4]": "box out of range",
    "Question: Where is the cat? Answer: [0.1,0.2,-0.3,0.4]": "box out of range",
    "Question: Where is the cat? Answer: [0.3,0.2,0.1,0.4]": "degenerate box",
    "Question: Where is [0.1,0.1,0.2,0.2]? Answer: [0.1,0.2,0.3,0.4]": "box in question",
}


@pytest.mark.parametrize("text,reason", COMMON_REJECTS.items())
def test_common_vqa_rejects(common, text, reason):
    parsed = common.parse(text)
    assert (parsed.ok, parsed.record, parsed.reason) == (False, None, reason)


@pytest.mark.parametrize("text,reason", REC_REJECTS.items())
def test_rec_rejects(rec, text, reason):
    parsed = rec.parse(text)
    assert (parsed.ok, parsed.record, parsed.reason) == (False, None, reason)


def test_multi_pair_parsing():
    text = "Question: What is the girl wearing?\nAnswer: A pink dress.\nQuestion: What is she doing?\nAnswer: Running."
    parsed = parse_qa_pairs(text)
    assert parsed.record == {"pairs": [{"question": "What is the girl wearing?", "answer": "A pink dress."},
                                       {"question": "What is she doing?", "answer": "Running."}]}
    assert parse_qa_pairs("Question: a? Question: b? Answer: c").reason == "unbalanced pairs"
    assert parse_qa_pairs("Question: a? Answer: b Answer: c Question: d?").reason == "malformed pair"
    assert parse_qa_pairs("Question: a? Answer: \nQuestion: b? Answer: c").reason == "empty answer"
