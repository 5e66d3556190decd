"""Every task family: config protocol strings, seeded target/parse round trips, rejects, agnostic."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import compose_config
from genixer.tasks import (BoxQA, MultiTurnDialogue, OneOf, PointQALocal, PointQAV7W, Task,
                           TemplatePool, box_problem, format_box, format_box_group, format_point, normalize_box,
                           normalize_point)

REPO = Path(__file__).resolve().parents[1]
TASK_CONF = REPO / "conf" / "task"
MD_INSTRUCTION = ("Design a conversation between you and a person asking about this photo. The answers "
                  "should be in a tone that a visual AI assistant is seeing the image and answering the "
                  "question. Ask diverse questions and give corresponding answers.")
SUFFIXES = {
    "agnostic": "",
    "common_vqa": "\nThis is the Common VQA task.",
    "adv_vqa": "\nThis is an Adversarial-based VQA task.",
    "mc_vqa": "\nThis is a Multi-choice VQA task.",
    "long_qa": "\nThis is the long sentence VQA task.",
    "md": "",
    "md_long": " This the long MD task.",
    "rec": (" This is a Referring Expression Comprehension (REC) task. The question will give an expression"
            " of a specific region of the image. Please provide the coordinates in the answer."),
    "reg": (" This is a Referring Expression Generation (REG) task. The purpose of REG is to generate a"
            " unique description for a specified location."),
    "pointqa_local": " This is a PointQA task.",
    "pointqa_v7w": " This is a PointQA task.",
    "qca_box": " This is a QCA with box task.",
    "rd": " This is a Referential Dialogue task.",
}
WORDS = ("red blue small large man woman dog cat car tree left right front back second "
         "striped wooden near behind under shirt hat bike bench window top bottom with on").split()
B1, B2, B3 = "[0.100,0.200,0.300,0.400]", "[0.500,0.500,0.900,0.900]", "[0.000,0.000,1.000,1.000]"


def load_task(name: str, **overrides) -> Task:
    """Instantiate conf/task/<name>.yaml as composed by Hydra (defaults lists included)."""
    cfg = compose_config("generate", [f"task={name}", *(f"task.{k}={v}" for k, v in overrides.items())])
    return instantiate(cfg.task)


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return {name: load_task(name) for name in SUFFIXES}


# ---- random records --------------------------------------------------------------------------

def phrase(rng: random.Random, lo: int = 1, hi: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def size(rng: random.Random) -> tuple[int, int]:
    while True:
        w, h = rng.randint(20, 1600), rng.randint(20, 1600)
        if w != h:
            return w, h


def pixel_box(rng: random.Random, w: int, h: int) -> list[int]:
    """A pixel box that survives normalization (3 decimals can collapse tiny boxes)."""
    while True:
        x1, x2 = sorted(rng.sample(range(w + 1), 2))
        y1, y2 = sorted(rng.sample(range(h + 1), 2))
        if box_problem(normalize_box([x1, y1, x2, y2], w, h)) is None:
            return [x1, y1, x2, y2]


def pixel_point(rng: random.Random, w: int, h: int) -> list[float]:
    return [rng.uniform(0, w), rng.uniform(0, h)]


Case = tuple[dict, Callable[[Task, object], list[dict]]]  # record, allowed parse records for a key


def qa_case(rng: random.Random, answer: str, parsed_answer: str | None = None) -> Case:
    question = phrase(rng).capitalize() + "?"
    rec = {"question": question, "answer": answer}
    return rec, lambda task, key: [{"question": question, "answer": parsed_answer or answer}]


def common_case(rng):
    return qa_case(rng, rng.choice(["yes", "no", "2", phrase(rng) + "."]))


def adv_case(rng):
    answer = rng.choice(["yes", "no", "Yes", "No.", "yes."])
    return qa_case(rng, answer, answer.rstrip(".").lower())


def long_case(rng):
    return qa_case(rng, phrase(rng, 3, 14).capitalize() + ".")


def mc_case(rng):
    n = rng.randint(2, 6)
    choices = []
    while len(choices) < n:
        c = phrase(rng, 1, 3)
        if c.casefold() not in {x.casefold() for x in choices}:
            choices.append(c)
    index = rng.randrange(n)
    rec = {"question": phrase(rng).capitalize() + "?", "choices": choices, "answer_index": index}
    return rec, lambda task, key: [{**rec, "answer": "ABCDEF"[index]}]


def md_case(rng):
    turns = [{"question": phrase(rng).capitalize() + "?", "answer": phrase(rng, 1, 20).capitalize() + "."}
             for _ in range(rng.randint(2, 5))]
    return {"turns": turns}, lambda task, key: [{"turns": turns}]


def expression(rng: random.Random) -> str:
    text = phrase(rng)
    return text.capitalize() + rng.choice([".", "!", "?"]) if rng.random() < 0.3 else text


def rec_case(rng):
    w, h = size(rng)
    expr = phrase(rng)
    rec = {"expression": expr, "bbox": pixel_box(rng, w, h), "width": w, "height": h}
    box = normalize_box(rec["bbox"], w, h)
    return rec, lambda task, key: [{"question": task.question(expr, key)[1], "expression": expr, "box": box}]


def reg_case(rng):
    w, h = size(rng)
    expr = expression(rng)
    rec = {"expression": expr, "bbox": pixel_box(rng, w, h), "width": w, "height": h}
    box = normalize_box(rec["bbox"], w, h)
    # A trailing "." terminates the sample, so it is not part of the parsed expression.
    return rec, lambda task, key: [{"question": task.question(format_box(box), key)[1], "box": box,
                                    "expression": expr.rstrip(".")}]


def pointqa_local_case(rng):
    w, h = size(rng)
    rec = {"question": phrase(rng).capitalize() + "?", "answer": phrase(rng, 1, 3), "width": w, "height": h}
    has = rng.choice([("bbox",), ("point",), ("bbox", "point")])
    if "bbox" in has:
        rec["bbox"] = pixel_box(rng, w, h)
    if "point" in has:
        rec["point"] = pixel_point(rng, w, h)

    def expected(task, key):
        base = {"question": rec["question"], "answer": rec["answer"]}
        out = []
        if "bbox" in rec and task.version in ("b", "bp"):
            out.append({**base, "box": normalize_box(rec["bbox"], w, h)})
        if "point" in rec and task.version in ("p", "bp"):
            out.append({**base, "point": normalize_point(rec["point"], w, h)})
        return out
    return rec, expected


def v7w_case(rng):
    w, h = size(rng)
    boxes: list[list[int]] = []
    while len(boxes) < rng.randint(2, 6):
        b = pixel_box(rng, w, h)
        if normalize_box(b, w, h) not in {normalize_box(x, w, h) for x in boxes}:
            boxes.append(b)
    rec = {"question": phrase(rng).capitalize() + "?", "candidates": boxes, "answer_box": rng.choice(boxes),
           "point": pixel_point(rng, w, h), "width": w, "height": h}
    norm = [normalize_box(b, w, h) for b in boxes]

    def expected(task, key):
        order = task.candidate_order(len(norm), key)
        base = {"question": rec["question"], "candidates": [norm[i] for i in order]}
        out = []
        if task.version in ("b", "bp"):
            out.append({**base, "answer": normalize_box(rec["answer_box"], w, h)})
        if task.version in ("p", "bp"):
            out.append({**base, "answer": normalize_point(rec["point"], w, h)})
        return out
    return rec, expected


def marked_text(rng: random.Random, n_marks: int, n_boxes: int, norm: list) -> tuple[str, str, list, list]:
    """(text with <ph_st>/<ph_ed> marks, expected filled text, boxes_seq, expected box groups)."""
    marked, filled, seq, groups = [phrase(rng).capitalize()], [phrase(rng).capitalize()], [], []
    filled[0] = marked[0]
    for _ in range(n_marks):
        words, tail = phrase(rng, 1, 3), " " + phrase(rng) if rng.random() < 0.8 else ""
        group = rng.sample(range(n_boxes), rng.randint(1, min(3, n_boxes)))
        seq.append(group)
        groups.append([norm[i] for i in group])
        marked.append(f" <ph_st>{words}<ph_ed>{tail}")
        filled.append(f" {words}{format_box_group(groups[-1])}{tail}")
    end = rng.choice(["?", ".", ""])
    return "".join(marked) + end, "".join(filled) + end, seq, groups


def box_qa_case(rng, min_answer_marks: int = 0):
    w, h = size(rng)
    boxes = [pixel_box(rng, w, h) for _ in range(rng.randint(1, 5))]
    norm = [normalize_box(b, w, h) for b in boxes]
    n_q = rng.randint(0, 2)
    q, q_text, q_seq, q_groups = marked_text(rng, n_q, len(boxes), norm)
    a, a_text, a_seq, a_groups = marked_text(rng, rng.randint(max(min_answer_marks, 0 if n_q else 1), 3), len(boxes), norm)
    rec = {"question": q, "answer": a, "question_boxes_seq": q_seq, "answer_boxes_seq": a_seq,
           "boxes": boxes, "width": w, "height": h}
    return rec, lambda task, key: [{"question": q_text, "answer": a_text, "question_boxes": q_groups,
                                    "answer_boxes": a_groups}]


CASES: dict[str, Callable[[random.Random], Case]] = {
    "common_vqa": common_case, "adv_vqa": adv_case, "long_qa": long_case, "mc_vqa": mc_case,
    "md": md_case, "md_long": md_case, "rec": rec_case, "reg": reg_case,
    "pointqa_local": pointqa_local_case, "pointqa_v7w": v7w_case, "qca_box": box_qa_case, "rd": box_qa_case,
}
AGNOSTIC_LABEL = {"common_vqa": "common_vqa", "adv_vqa": "common_vqa", "long_qa": "common_vqa",
                  "mc_vqa": "mc_vqa", "md": "md", "md_long": "md", "rec": "rec", "reg": "reg",
                  "pointqa_local": "pointqa_local", "pointqa_v7w": "pointqa_v7w", "qca_box": "qca_box",
                  "rd": "qca_box"}
VERSIONED = [("pointqa_local", v) for v in ("b", "p", "bp")] + [("pointqa_v7w", v) for v in ("b", "p", "bp")]


def round_trip(task: Task, make: Callable[[random.Random], Case], seed: int, n: int = 300) -> None:
    """parse(target(record)) recovers the record, for n records and until every template id was used."""
    rng = random.Random(seed)
    questions = getattr(task, "questions", None)
    used_instr, used_q = set(), set()
    i = 0
    while i < n or len(used_instr) < len(task.instructions) or (questions and len(used_q) < len(questions)):
        record, expected = make(rng)
        key = (seed, 0, i)
        index, instruction = task.instruction(key)
        assert instruction == task.instructions[index] + task.suffix
        used_instr.add(index)
        if questions is not None:
            used_q.add(questions.pick(key)[0])
        if not expected(task, key):  # e.g. a point-only record for version "b"
            with pytest.raises(ValueError, match="needs a"):
                task.target(record, key)
            continue
        text = task.target(record, key)
        assert text == task.target(record, key)  # deterministic per key
        parsed = task.parse(text)
        assert parsed.ok, (text, parsed.reason)
        assert parsed.record in expected(task, key), (text, parsed.record, expected(task, key))
        assert task.conversation(parsed.record)
        i += 1
        assert i < 20000, "some template id is never picked"


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip(tasks, name):
    round_trip(tasks[name], CASES[name], seed=sorted(CASES).index(name))


@pytest.mark.parametrize("name,version", VERSIONED)
def test_round_trip_versions(name, version):
    round_trip(load_task(name, version=version), CASES[name], seed=100 + "bp".find(version[0]), n=200)


@pytest.mark.parametrize("name", sorted(CASES))
def test_agnostic_classifies_every_family(tasks, name):
    task, agnostic, rng = tasks[name], tasks["agnostic"], random.Random(7)
    # A Q->C^Box A sample whose only box ends the question reads as PointQA: boxes in the answer too.
    make = partial(box_qa_case, min_answer_marks=1) if task.name in ("qca_box", "rd") else CASES[name]
    for i in range(100):
        record, _ = make(rng)
        text = task.target(record, (7, i))
        parsed, specific = agnostic.parse(text), task.parse(text)
        assert parsed.ok, (text, parsed.reason)
        assert parsed.task.family == AGNOSTIC_LABEL[name], text
        if name == "adv_vqa":  # agnostic keeps the answer as written
            continue
        if name == "rec" and parsed.record["expression"] is None:
            continue  # the agnostic REC matcher only knows the REC pool; same text otherwise
        assert parsed.record == specific.record, text


# ---- configs and protocol strings ------------------------------------------------------------

GENERATION_ONLY = {"pointqa"}  # OneOf over families that share a suffix
TRAINING_ONLY = {"rec_listener"}  # trains beside a family (REC asked as a REC model is), never generated


def test_configs_cover_every_family(tasks):
    assert sorted(p.stem for p in TASK_CONF.glob("*.yaml") if p.stem not in GENERATION_ONLY | TRAINING_ONLY) == sorted(SUFFIXES)
    for name, task in tasks.items():
        assert (task.name, task.suffix) == (name, SUFFIXES[name])
        assert OmegaConf.load(TASK_CONF / f"{name}.yaml").get("suffix", "") == SUFFIXES[name]


def test_md_fixed_instruction(tasks):
    for name in ("md", "md_long"):
        assert isinstance(tasks[name], MultiTurnDialogue)
        assert tasks[name].instructions.templates == (MD_INSTRUCTION,)
        assert tasks[name].instruction(("any", 3)) == (0, MD_INSTRUCTION + SUFFIXES[name])
    assert tasks["md_long"].instruction(0)[1].endswith("corresponding answers. This the long MD task.")


def test_reg_pool(tasks):
    pool = tasks["reg"].questions
    assert len(pool) >= 30 and all(t.count("<objs>") == 1 for t in pool.templates)
    assert not any(m in t for t in pool.templates for m in ("Question:", "Answer:", "<image>", "["))


def test_reg_never_double_period(tasks):
    reg, rng = tasks["reg"], random.Random(11)
    ends = set()
    for i in range(500):
        record, _ = reg_case(rng)
        text = reg.target(record, i)
        assert ".." not in text and text[-1] in ".!?", text
        ends.add(record["expression"][-1])
    assert {".", "!", "?"} <= ends
    rec = {"expression": "The sunflower is yellow.", "bbox": [1, 2, 30, 40], "width": 64, "height": 48}
    assert reg.target(rec, 0).endswith("Answer: The sunflower is yellow.")
    assert reg.parse(reg.target(rec, 0)).record["expression"] == "The sunflower is yellow"
    # Checkpoints trained on the original ".." bug still parse cleanly.
    assert reg.parse(f"Question: What is at {B1}? Answer: a red car..").record["expression"] == "a red car"


def test_v7w_candidate_order_seeded(tasks):
    v7w = tasks["pointqa_v7w"]
    orders = [tuple(v7w.candidate_order(4, ("s", i))) for i in range(400)]
    assert orders == [tuple(v7w.candidate_order(4, ("s", i))) for i in range(400)]
    assert len(set(orders)) == 24  # every permutation of 4 shows up
    record = {"question": "Which is the cat?", "candidates": [[0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 40, 40]],
              "answer_box": [20, 20, 30, 30], "width": 100, "height": 50}
    texts = {v7w.target(record, ("s", i)) for i in range(60)}
    assert len(texts) == 6 and v7w.target(record, ("s", 1)) == v7w.target(record, ("s", 1))
    code = ("from genixer.tasks import PointQAV7W, TemplatePool as P;"
            "t=PointQAV7W('pointqa_v7w','',P.from_strings(['x']));print([t.candidate_order(5,(1,i)) for i in range(20)])")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}).stdout
            for seed in ("1", "2")}
    assert outs == {str([v7w.candidate_order(5, (1, i)) for i in range(20)]) + "\n"}


def test_pointqa_formats(tasks):
    local = load_task("pointqa_local", version="b")
    record = {"question": "What color is this?", "answer": "red", "bbox": [10, 5, 50, 25], "point": [30, 15],
              "width": 100, "height": 50}
    assert local.target(record, 0) == "Question: What color is this?[0.100,0.100,0.500,0.500] Answer: red"
    assert load_task("pointqa_local", version="p").target(record, 0) == (
        "Question: What color is this?[0.300,0.300] Answer: red")
    spaced = local.parse("Question: What color is this? [0.100,0.100,0.500,0.500] Answer: red")
    assert spaced.record == {"question": "What color is this?", "box": (0.1, 0.1, 0.5, 0.5), "answer": "red"}
    kinds = {("box" in tasks["pointqa_local"].parse(tasks["pointqa_local"].target(record, i)).record)
             for i in range(40)}
    assert kinds == {True, False}  # bp uses both forms
    v7w = load_task("pointqa_v7w", version="p")
    rec = {"question": "Which?", "candidates": [[0, 0, 10, 10], [20, 20, 30, 30]], "answer_box": [0, 0, 10, 10],
           "point": [5, 5], "width": 100, "height": 50}
    assert v7w.target(rec, 0).endswith(f"Answer: {format_point((0.05, 0.1))}")


def test_box_qa_format(tasks):
    record = {"question": "What is <ph_st>the man<ph_ed> holding?",
              "answer": "<ph_st>The man<ph_ed> holds <ph_st>two cups<ph_ed>. So the answer is cups.",
              "question_boxes_seq": [[0]], "answer_boxes_seq": [[0], [1, 2]],
              "boxes": [[10, 5, 50, 25], [0, 0, 10, 10], [60, 30, 90, 50]], "width": 100, "height": 50}
    assert tasks["qca_box"].target(record, 0) == (
        "Question: What is the man[0.100,0.100,0.500,0.500] holding? Answer: The man[0.100,0.100,0.500,0.500]"
        " holds two cups[0.000,0.000,0.100,0.200;0.600,0.600,0.900,1.000]. So the answer is cups.")
    assert tasks["rd"].target(record, 0) == tasks["qca_box"].target(record, 0)


TARGET_ERRORS = [
    ("adv_vqa", {"question": "Is there a dog?", "answer": "maybe"}, "yes or no"),
    ("long_qa", {"question": "What is it?", "answer": "A dog."}, "words"),
    ("mc_vqa", {"question": "Q?", "choices": ["a"], "answer_index": 0}, "choices"),
    ("mc_vqa", {"question": "Q?", "choices": ["a", "A"], "answer_index": 0}, "distinct"),
    ("mc_vqa", {"question": "Q?", "choices": ["a", "b"], "answer_index": 2}, "out of range"),
    ("md", {"turns": [{"question": "q?", "answer": "a"}]}, "turns"),
    ("md", {"turns": [{"question": "q?", "answer": "a"}, {"question": "r? Answer: x", "answer": "b"}]}, "marker"),
    ("reg", {"expression": "...", "bbox": [0, 0, 5, 5], "width": 10, "height": 10}, "no words"),
    ("reg", {"expression": "a dot", "bbox": [3, 3, 3, 5], "width": 10, "height": 10}, "degenerate"),
    ("pointqa_local", {"question": "q?", "answer": "a", "width": 10, "height": 10}, "annotation"),
    ("pointqa_v7w", {"question": "q?", "candidates": [[0, 0, 5, 5], [1, 1, 6, 6]], "answer_box": [0, 0, 9, 9],
                     "width": 10, "height": 10}, "not one of the candidates"),
    ("qca_box", {"question": "<ph_st>a<ph_ed> b<ph_ed>?", "answer": "c", "question_boxes_seq": [[0]],
                 "answer_boxes_seq": [], "boxes": [[0, 0, 5, 5]], "width": 10, "height": 10}, "marks"),
    ("qca_box", {"question": "q?", "answer": "c", "question_boxes_seq": [], "answer_boxes_seq": [],
                 "boxes": [], "width": 10, "height": 10}, "no box"),
]


@pytest.mark.parametrize("name,record,match", TARGET_ERRORS)
def test_target_errors(tasks, name, record, match):
    with pytest.raises(ValueError, match=match):
        tasks[name].target(record, 0)


def test_bad_version():
    for cls in (PointQALocal, PointQAV7W):
        with pytest.raises(ValueError, match="version"):
            cls("x", "", TemplatePool.from_strings(["t"]), version="x")


# ---- rejects ---------------------------------------------------------------------------------

REJECTS = {
    "adv_vqa": {
        "Question: Is there a dog? Answer: maybe": "answer not yes/no",
        "Question: Is there a dog? Answer: yes, there is one": "answer not yes/no",
        "Question: Is there a dog? Answer: [0.1,0.2,0.3,0.4]": "box in answer",
        "Question: Is there a dog?": "missing answer",
    },
    "long_qa": {
        "Question: What is the man doing? Answer: Running.": "answer too short",
        "Question: What is the man doing? Answer: He runs.": "answer too short",
        "Question: What? Answer: ": "empty answer",
    },
    "mc_vqa": {
        "Question: What sport is this?\nAnswer: A": "no options",
        "Question: What sport is this? A. soccer B. golf\nAnswer: A": "no options",
        "Question: Q?\nA. soccer\nC. golf\nAnswer: A": "non-consecutive option letters",
        "Question: Q?\nB. soccer\nA. golf\nAnswer: A": "non-consecutive option letters",
        "Question: Q?\nA. soccer\nB. Soccer\nAnswer: A": "duplicate options",
        "Question: Q?\nA. soccer\nB. golf\nAnswer: C": "answer not among options",
        "Question: Q?\nA. soccer\nB. golf\nAnswer: A. soccer": "answer not a single letter",
        "Question: Q?\nA. soccer\nB. golf\nAnswer: soccer": "answer not a single letter",
        "Question: Q?\nA. soccer\nB. golf\nAnswer: AB": "answer not a single letter",
        "Question: Q?\nA. soccer\nAnswer: A": "wrong number of options",
        "Question: Q?\nA. a\nB. b\nC. c\nD. d\nE. e\nF. f\nG. g\nAnswer: A": "wrong number of options",
        "Question: Q?\nA. soccer\nB.\nAnswer: A": "empty option",
        "Question: Q?\nA. soccer\nB. golf\nPick one.\nAnswer: A": "text after options",
        "Question: A. soccer\nB. golf\nAnswer: A": "empty question",
        "Question: Q?\nA. soccer\nB. golf": "missing answer",
    },
    "md": {
        "Question: What is it?\nAnswer: A dog.": "too few turns",
        "Question: What is it?\nAnswer: A dog.\nQuestion: What color?": "question without answer",
        "Question: What is it?\nQuestion: What color?\nAnswer: Brown.": "question without answer",
        "Question: What is it?\nAnswer: \nQuestion: What color?\nAnswer: Brown.": "empty answer",
        "Question: \nAnswer: A dog.\nQuestion: What color?\nAnswer: Brown.": "empty question",
        "Sure!\nQuestion: a?\nAnswer: b\nQuestion: c?\nAnswer: d": "text before question",
        "Answer: b": "missing question",
    },
    "reg": {
        "Question: What is in the region? Answer: a dog.": "no box in question",
        f"Question: What is at {B1} and {B2}? Answer: a dog.": "more than one box in question",
        "Question: What is at [0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6]? Answer: dogs": "more than one box in question",
        "Question: What is at [0.1,0.2,0.3]? Answer: a dog.": "malformed box",
        "Question: What is at [0.1,0.2,1.3,0.4]? Answer: a dog.": "box out of range",
        "Question: What is at [0.3,0.2,0.1,0.4]? Answer: a dog.": "degenerate box",
        f"Question: What is at {B1}? Answer: a dog at {B2}": "box in answer",
        f"Question: What is at {B1}? Answer: .": "empty answer",
        f"Question: What is at {B1}?": "missing answer",
    },
    "pointqa_local": {
        "Question: What color is this? Answer: red": "no box or point in question",
        f"Question: What color is {B1} this? Answer: red": "coordinates not at end of question",
        f"Question: What color is {B1}?{B2} Answer: red": "more than one box in question",
        "Question: What color is this?[0.1,0.2,0.3] Answer: red": "malformed box",
        "Question: What color is this?[1.5,0.2] Answer: red": "point out of range",
        "Question: What color is this?[0.3,0.2,0.1,0.4] Answer: red": "degenerate box",
        "Question: What color is this?[0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6] Answer: red": "more than one box",
        "Question: [0.1,0.2] Answer: red": "empty question",
        f"Question: What is this?{B1} Answer: {B2}": "box in answer",
    },
    "pointqa_v7w": {
        f"Question: Which is the cat? Answer: {B1}": "no candidates",
        f"Question: Which? Candidates: {B1} {B2} Candidates: {B3} Answer: {B1}": "more than one candidates list",
        f"Question: Which? Candidates: {B1} or {B2} Answer: {B1}": "text among candidates",
        f"Question: Which? Candidates: {B1} Answer: {B1}": "too few candidates",
        f"Question: Which? Candidates: {B1} {B1} Answer: {B1}": "duplicate candidates",
        f"Question: Which? Candidates: {B1} [0.5,0.5] Answer: {B1}": "malformed candidate",
        f"Question: Which? Candidates: {B1} [0.5,0.5,0.2,0.9] Answer: {B1}": "degenerate box",
        f"Question: Which? Candidates: {B1} {B2} Answer: {B3}": "answer not among candidates",
        f"Question: Which? Candidates: {B1} {B2} Answer: the first one": "no box or point in answer",
        f"Question: Which? Candidates: {B1} {B2} Answer: {B1} {B2}": "more than one box in answer",
        f"Question: Which? Candidates: {B1} {B2} Answer: it is {B1}": "text beyond box",
        f"Question: Which? Candidates: {B1} {B2} Answer: [1.5,0.5]": "point out of range",
        f"Question: Candidates: {B1} {B2} Answer: {B1}": "empty question",
        f"Question: Which {B3} is it? Candidates: {B1} {B2} Answer: {B1}": "box in question",
    },
    "qca_box": {
        "Question: What is the man holding? Answer: He holds a cup.": "no box",
        "Question: What is the man[0.1,0.2,0.3] holding? Answer: a cup.": "malformed box",
        f"Question: What is the man{B1} holding? Answer: a cup[0.5,0.5].": "malformed box",
        "Question: What is the man[0.1,0.2,0.3,0.4;0.5,0.5,0.4,0.9] holding? Answer: a cup.": "degenerate box",
        f"Question: What is the man{B1} holding? Answer: a cup[0.5,0.5,0.9,1.9].": "box out of range",
        f"Question: What is the man{B1} holding?": "missing answer",
    },
}
REJECT_CASES = [(name, text, reason) for name, cases in REJECTS.items() for text, reason in cases.items()]
REJECT_CASES += [("md_long", t, r) for t, r in REJECTS["md"].items()]
REJECT_CASES += [("rd", t, r) for t, r in REJECTS["qca_box"].items()]


@pytest.mark.parametrize("name,text,reason", REJECT_CASES)
def test_rejects(tasks, name, text, reason):
    parsed = tasks[name].parse(text)
    assert (parsed.ok, parsed.record, parsed.reason) == (False, None, reason)


def test_accepts_tolerated_variants(tasks):
    assert tasks["adv_vqa"].parse("Question: Is there a cat? Answer: No.").record["answer"] == "no"
    mc = tasks["mc_vqa"].parse("Question: Q?\nA) soccer\nB) golf\nAnswer: B.")
    assert mc.record == {"question": "Q?", "choices": ["soccer", "golf"], "answer_index": 1, "answer": "B"}
    v7w = tasks["pointqa_v7w"].parse(f"Question: Which? Candidates: {B1} {B2} Answer: [0.250,0.500].")
    assert v7w.record["answer"] == (0.25, 0.5)
    md = tasks["md"].parse("Question: a?\nAnswer: line one\nline two\nQuestion: c?\nAnswer: d")
    assert md.record["turns"][0]["answer"] == "line one\nline two"


def test_agnostic_rejects_and_conversations(tasks):
    agnostic: OneOf = tasks["agnostic"]  # type: ignore[assignment]
    assert agnostic.parse("Question: a?\nAnswer: b\nQuestion: c?").reason == "question without answer"
    assert agnostic.parse("Question: Q?\nA. x\nB. x\nAnswer: A").reason == "duplicate options"
    assert agnostic.parse(f"Question: Which? Candidates: {B1} {B2} Answer: {B3}").reason == (
        "answer not among candidates")
    assert agnostic.parse("Question: What color is this? [0.1,0.2] here Answer: red").reason == (
        "coordinates not at end of question")
    reg = agnostic.parse(f"Question: Describe the region {B1}. Answer: a dog.")
    assert reg.task.name == "reg" and reg.record == {"question": f"Describe the region {B1}.", "box": (0.1, 0.2, 0.3, 0.4),
                                                     "expression": "a dog"}
    assert reg.task.conversation(reg.record) == [(f"Describe the region {B1}.", "a dog.")]
    local = agnostic.parse(f"Question: What color is this?{B1} Answer: red")
    assert local.task.name == "pointqa_local"
    assert local.task.conversation(local.record) == [(f"What color is this?{B1}", "red")]
    mid = agnostic.parse(f"Question: Why is the dog{B1} wet? Answer: It swam.")
    assert mid.task.name == "qca_box" and mid.record["question_boxes"] == [[(0.1, 0.2, 0.3, 0.4)]]
    qca = agnostic.parse(f"Question: What does the man{B1} hold? Answer: The man{B1} holds a cup{B2}.")
    assert qca.task.name == "qca_box" and qca.record["answer_boxes"] == [[(0.1, 0.2, 0.3, 0.4)], [(0.5, 0.5, 0.9, 0.9)]]


def test_conversations(tasks):
    md = tasks["md"].parse("Question: a?\nAnswer: b\nQuestion: c?\nAnswer: d")
    assert tasks["md"].conversation(md.record) == [("a?", "b"), ("c?", "d")]
    mc = tasks["mc_vqa"].parse("Question: Q?\nA. x\nB. y\nAnswer: B")
    assert tasks["mc_vqa"].conversation(mc.record) == [("Q?\nA. x\nB. y", "B")]
    v7w = tasks["pointqa_v7w"].parse(f"Question: Which? Candidates: {B1} {B2} Answer: {B2}")
    assert tasks["pointqa_v7w"].conversation(v7w.record) == [(f"Which? Candidates: {B1} {B2}", B2)]
    rec = tasks["rec"].parse(f"Question: Where is the cat? Answer: {B1}")
    assert tasks["rec"].conversation(rec.record) == [("Where is the cat?", B1)]
    assert isinstance(tasks["rd"], BoxQA) and isinstance(tasks["pointqa_local"], PointQALocal)
    assert isinstance(tasks["pointqa_v7w"], PointQAV7W)
