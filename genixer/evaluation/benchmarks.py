"""Model benchmarks, scored from an answers file in the LLaVA-1.5 eval layout.

A benchmark (conf/benchmark/<name>.yaml, instantiated) has:

- ``name``; ``image_root``: the folder its question ``image`` paths are relative to;
- ``questions() -> list[dict]``: the LLaVA eval question layout ``{"question_id", "image", "text"}``, ``text``
  the whole prompt with the benchmark's suffix (extra keys allowed);
- ``score(answers: Mapping[str, str]) -> dict``: ``benchmark``, ``metric``, ``n``, ``missing`` and ``score``,
  the paper table's number in its unit (accuracy in percent, MME perception points), or None where a
  server scores the split; any detail keys after them;
- optionally ``upload(answers, out_dir) -> Path``: the file a scoring server takes (VQAv2 test-dev, VizWiz
  test, MMBench test); ``answering``: generation settings for answering it (long-answer benchmarks:
  ``{"max_new_tokens": 1024}``).

An answers file is JSON lines, one per question: ``{"question_id", "prompt", "text", "model_id", ...}``
(``text`` is the model's answer); ours and the LLaVA scripts' look the same. A question without an
answer scores 0 and is counted in ``missing``; an answer to no question of the benchmark, or two answers
to one question, is an error (the file belongs to another benchmark, or two runs were concatenated).
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from genixer.evaluation.metrics import parse_box, rec_accuracy, vqa_accuracy
from genixer.runs.files import read_jsonl
from genixer.tasks import TemplatePool, format_box

BOX_FRAMES = ("original", "square")


def read_answers(path: str | Path) -> dict[str, str]:
    """question_id (as a string) -> answer text; duplicates and lines without the two keys are errors."""
    answers: dict[str, str] = {}
    for k, line in enumerate(read_jsonl(Path(path)), 1):
        if "question_id" not in line or "text" not in line:
            raise ValueError(f"{path}: line {k} lacks question_id or text (the LLaVA answers layout)")
        qid = str(line["question_id"])
        if qid in answers:
            raise ValueError(f"{path}: question {qid} is answered twice (line {k})")
        answers[qid] = str(line["text"])
    return answers


def _check_known(answers: Mapping[str, str], known: set[str], name: str) -> None:
    unknown = sorted(set(answers) - known)
    if unknown:
        raise ValueError(f"{len(unknown)} answers are to questions {name} does not have (first: {unknown[0]})")


def square_to_original(prediction: str, width: int, height: int) -> str:
    """A prediction's box given in the pad-to-square frame (normalized by the square's side, the image centred
    on it as ``genixer.data.images.pad_to_square`` / Shikra's ``Expand2square`` put it) as text normalized by the
    original image, clamped to it. Text without exactly one box is returned unchanged (it stays a miss)."""
    box = parse_box(prediction)
    if box is None:
        return prediction
    side = max(width, height)
    dx, dy = (side - width) // 2, (side - height) // 2
    x1, y1, x2, y2 = ((v * side - d) / n for v, d, n in zip(box, (dx, dy, dx, dy), (width, height, width, height)))
    return format_box([min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2)])


class RECPrompt:
    """The question a REC benchmark asks about an expression: the fixed ``prompt`` (``<expr>`` once), or with
    ``templates`` (a pool file: a JSON list, ``<expr>`` once in each, e.g. ``${paths.templates}/rec_questions.json``,
    Genixer_S's REC question pool, or Shikra's REC.json with its ``<image>`` prefixes dropped) one template per
    question, picked by a stable hash of its id, as Shikra's evaluation draws one per item."""

    def __init__(self, prompt: str, templates: str | None = None) -> None:
        if prompt.count("<expr>") != 1:
            raise ValueError(f"prompt must hold '<expr>' exactly once, got {prompt!r}")
        self.prompt, self.pool = prompt, TemplatePool(templates, "<expr>") if templates else None

    def __call__(self, question_id: object, expression: str) -> str:
        template = self.pool.pick(str(question_id))[1] if self.pool else self.prompt
        return template.replace("<expr>", expression)


def original_box(record: Mapping) -> list[float]:
    """A record's pixel ``bbox`` (xyxy) normalized by its ``width`` / ``height`` (the original image; unrounded)."""
    x1, y1, x2, y2 = record["bbox"]
    w, h = record["width"], record["height"]
    return [x1 / w, y1 / h, x2 / w, y2 / h]


def rec_result(name: str, records: list[dict], ids: list[str], answers: Mapping[str, str], box_frame: str) -> dict:
    """A REC benchmark's result: ``answers`` (by id) against each record's box (``original_box``); a missing
    answer has no box (a miss); ``box_frame="square"`` maps padded-square boxes back first."""
    _check_known(answers, set(ids), name)
    predictions = [answers.get(q, "") for q in ids]
    if box_frame == "square":
        predictions = [square_to_original(p, r["width"], r["height"]) for p, r in zip(predictions, records)]
    result = rec_accuracy(predictions, [original_box(r) for r in records])
    return {"benchmark": name, "metric": "REC accuracy (IoU > 0.5)", "n": len(records),
            "missing": sum(q not in answers for q in ids), "score": 100 * result["accuracy"], **result}


def check_box_frame(box_frame: str) -> str:
    if box_frame not in BOX_FRAMES:
        raise ValueError(f"box_frame must be one of {BOX_FRAMES}, got {box_frame!r}")
    return box_frame


class VQABenchmark:
    """VQAv2-layout questions + annotations (10 answers each), scored with the VQA accuracy.

    ``prompt_suffix`` is what a model gets after the question (LLaVA-1.5: "Answer the question using
    a single word or phrase.").
    """

    def __init__(self, name: str, questions: str, annotations: str, image_root: str, image_pattern: str,
                 prompt_suffix: str = "") -> None:
        self.name, self.questions_path, self.annotations_path = name, Path(questions), Path(annotations)
        self.image_root, self.image_pattern, self.prompt_suffix = Path(image_root), image_pattern, prompt_suffix

    def questions(self) -> list[dict]:
        """The LLaVA eval question layout: ``{"question_id", "image", "text"}``; VQAv2 files name images by id
        only, so ``image_pattern`` (e.g. "COCO_val2014_{image_id:012d}.jpg") gives the file."""
        data = json.loads(self.questions_path.read_text())
        return [{"question_id": q["question_id"], "image": self.image_pattern.format(image_id=q["image_id"]),
                 "text": q["question"] + self.prompt_suffix} for q in data["questions"]]

    def score(self, answers: Mapping[str, str]) -> dict:
        """The VQA accuracy over all questions (``score``: percent; ``accuracy``: fraction), and per answer type
        (``accuracy_<type>``: fraction; ``by_answer_type``: percent) and per ``question_type`` of the annotations
        (``by_question_type``: percent; VQAv2's "what color is the", ..., the mini world's count / color / ...)."""
        annotations = json.loads(self.annotations_path.read_text())["annotations"]
        _check_known(answers, {str(a["question_id"]) for a in annotations}, self.name)
        by_type: dict[str, list[float]] = defaultdict(list)
        by_question_type: dict[str, list[float]] = defaultdict(list)
        for a in annotations:
            prediction = answers.get(str(a["question_id"]))
            value = 0.0 if prediction is None else vqa_accuracy(prediction, [x["answer"] for x in a["answers"]])
            by_type["all"].append(value)
            by_type[a.get("answer_type", "other")].append(value)
            by_question_type[a.get("question_type", "unknown")].append(value)
        accuracy = sum(by_type["all"]) / max(1, len(annotations))
        answer_types = {t: sum(v) / len(v) for t, v in sorted(by_type.items()) if t != "all"}
        return {"benchmark": self.name, "metric": "VQA accuracy", "n": len(annotations),
                "missing": sum(str(a["question_id"]) not in answers for a in annotations),
                "score": 100 * accuracy, "accuracy": accuracy,
                **{f"accuracy_{t}": v for t, v in answer_types.items()},
                "by_answer_type": {t: 100 * v for t, v in answer_types.items()},
                "by_question_type": {t: 100 * sum(v) / len(v) for t, v in sorted(by_question_type.items())}}


class RECBenchmark:
    """Referring expressions with their boxes, one JSON line each (``img_path``, ``expression``, ``bbox``
    xyxy pixels, ``width``, ``height``: the Shikra REC layout); question_id = the line's 0-based index.
    Boxes are compared normalized to the original image. ``box_frame``: the frame the model answers in:
    "original" (ours and Genixer's generators: boxes normalized by the unpadded image) or "square" (Shikra's
    released checkpoints: normalized by the padded square; mapped back before scoring).
    """

    def __init__(self, name: str, expressions: str, image_root: str,
                 prompt: str = "Where is <expr>? Answer with a box.", box_frame: str = "original",
                 templates: str | None = None) -> None:
        self.name, self.path, self.image_root = name, Path(expressions), Path(image_root)
        self.prompt, self.box_frame = RECPrompt(prompt, templates), check_box_frame(box_frame)

    def lines(self) -> list[dict]:
        return read_jsonl(self.path)

    def questions(self) -> list[dict]:
        return [{"question_id": k, "image": r["img_path"], "text": self.prompt(k, r["expression"])}
                for k, r in enumerate(self.lines())]

    def score(self, answers: Mapping[str, str]) -> dict:
        lines = self.lines()
        return rec_result(self.name, lines, [str(k) for k in range(len(lines))], answers, self.box_frame)
