"""Open-ended VQA benchmarks of LLaVA-1.5, read from their official files (protocol: genixer.evaluation.benchmarks).

- :class:`GQABenchmark`: ``testdev_balanced_questions.json``; scored here, GQA ``eval.py`` exact match after
  LLaVA's ``convert_gqa_for_eval.py``.
- :class:`VizWizBenchmark`: ``val.json`` scored here (VQA accuracy); ``test.json`` by the EvalAI server, from
  :meth:`~VizWizBenchmark.upload` (LLaVA's ``convert_vizwiz_for_submission.py``).
- :class:`TextVQABenchmark`: ``TextVQA_0.5.1_val.json``; scored here, VQA accuracy (LLaVA's ``eval_textvqa.py``).
- :class:`VQAv2TestDevBenchmark`: ``v2_OpenEnded_mscoco_test-dev2015_questions.json`` (+ the test2015 one for
  the upload); by the EvalAI server, from :meth:`~VQAv2TestDevBenchmark.upload` (``convert_vqav2_for_submission.py``).

Prompts are LLaVA-1.5's question files (``llava_gqa_testdev_balanced.jsonl``, ``vizwiz/llava_test.jsonl``,
``llava_textvqa_val_v051_ocr.jsonl``, ``llava_vqav2_mscoco_test-dev2015.jsonl``) rebuilt from the official
files. Where LLaVA's ids differ from the official ones, the official ids are used (each class says so).
An upload file is ``<out_dir>/<name>.json``.
"""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from genixer.data.sources.files import AnnotationError, field, read_json
from genixer.evaluation.benchmarks import _check_known
from genixer.evaluation.metrics import normalize_vqa_answer, vqa_accuracy
from genixer.runs.files import atomic_write

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
VIZWIZ_SUFFIX = "\nWhen the provided information is insufficient, respond with 'Unanswerable'." + SHORT_ANSWER
OCR_PREFIX = "\nReference OCR token: "


def _header(name: str, metric: str, n: int, missing: int, score: float | None) -> dict:
    return {"benchmark": name, "metric": metric, "n": n, "missing": missing, "score": score}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _write_upload(path: Path, rows: list[dict]) -> Path:
    """The server file: one JSON array, no indentation (what LLaVA's converters write)."""
    return atomic_write(path, json.dumps(rows))


def gqa_answer(text: str) -> str:
    """LLaVA ``scripts/convert_gqa_for_eval.py``: trailing periods stripped, then lowercased; nothing else
    (no whitespace strip, no article removal), so ``"Yes."`` -> ``"yes"`` but ``" yes"`` stays wrong."""
    return text.rstrip(".").lower()



def read_list(path: Path, key: str, layout: str) -> list[dict]:
    """The list under ``key`` of a JSON object file, or an error naming the file and the layout expected."""
    data = read_json(path)
    items = field(data, key, str(path)) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise AnnotationError(f"{path}: expected {{\"{key}\": [...]}} ({layout})")
    return items

class GQABenchmark:
    """GQA testdev-balanced: ``testdev_balanced_questions.json`` ({questionId: {imageId, question, answer,
    types, isBalanced, ...}}), images ``<image_root>/<imageId>.jpg``.

    Prompt: the question as written + ``prompt_suffix`` (LLaVA's file keeps the official casing). Score: GQA
    ``eval.py`` accuracy, percent: a prediction (after :func:`gqa_answer`) is right when it *equals* the
    answer; only ``isBalanced`` questions count (all of testdev-balanced). Details: accuracy per structural
    and semantic type (``eval.py``'s ``accuracyPer*Type``). question_id = the official questionId (LLaVA's too).
    """

    def __init__(self, name: str, questions: str, image_root: str, prompt_suffix: str = SHORT_ANSWER) -> None:
        self.name, self.questions_path, self.image_root = name, Path(questions), Path(image_root)
        self.prompt_suffix = prompt_suffix
        self._data: dict | None = None

    def data(self) -> dict[str, dict]:
        if self._data is None:
            data = read_json(self.questions_path)
            if not isinstance(data, dict):
                raise AnnotationError(f"{self.questions_path}: expected {{questionId: question}} (GQA questions layout)")
            self._data = {str(k): v for k, v in data.items()}
        return self._data

    def questions(self) -> list[dict]:
        where = str(self.questions_path)
        return [{"question_id": qid, "image": f"{field(q, 'imageId', f'{where}: {qid}')}.jpg",
                 "text": field(q, "question", f"{where}: {qid}") + self.prompt_suffix}
                for qid, q in self.data().items()]

    def score(self, answers: Mapping[str, str]) -> dict:
        data = self.data()
        _check_known(answers, set(data), self.name)
        scored = {qid: q for qid, q in data.items() if q.get("isBalanced", True)}
        right: dict[str, float] = {}
        structural: dict[str, list[float]] = defaultdict(list)
        semantic: dict[str, list[float]] = defaultdict(list)
        for qid, q in scored.items():
            prediction = answers.get(qid)
            gold = field(q, "answer", f"{self.questions_path}: {qid}")
            right[qid] = float(prediction is not None and gqa_answer(prediction) == gold)
            types = q.get("types") or {}
            if "structural" in types:
                structural[types["structural"]].append(right[qid])
            if "semantic" in types:
                semantic[types["semantic"]].append(right[qid])
        accuracy = _mean(list(right.values()))
        return {**_header(self.name, "GQA accuracy (exact match)", len(scored),
                          sum(qid not in answers for qid in scored), 100 * accuracy),
                "accuracy": accuracy,
                **{f"structural_{t}": _mean(v) for t, v in sorted(structural.items())},
                **{f"semantic_{t}": _mean(v) for t, v in sorted(semantic.items())}}


class VizWizBenchmark:
    """VizWiz-VQA: ``val.json`` or ``test.json`` (a list of {image, question, answers: [{answer,
    answer_confidence}] x10, answerable, answer_type}; test has no answers), images ``<image_root>/<image>``.

    question_id = the item's 0-based index in the file (LLaVA's ``llava_test.jsonl``). Prompt: the question
    ``str.capitalize()``-d (first letter up, the rest lowered, trailing spaces kept, as in LLaVA's file) +
    ``prompt_suffix`` (the "respond with 'Unanswerable'" line + the short-answer line).

    A file with answers (val) is scored here: the VQA accuracy (:func:`vqa_accuracy`, both sides normalized,
    so "Unanswerable." matches the annotators' "unanswerable"), percent; details per answer_type. A file
    without them (test) gives ``score`` None and a note: :meth:`upload` writes the EvalAI file.
    """

    def __init__(self, name: str, annotations: str, image_root: str, prompt_suffix: str = VIZWIZ_SUFFIX) -> None:
        self.name, self.path, self.image_root, self.prompt_suffix = name, Path(annotations), Path(image_root), prompt_suffix
        self._items: list[dict] | None = None

    def items(self) -> list[dict]:
        if self._items is None:
            items = read_json(self.path)
            if not isinstance(items, list):
                raise AnnotationError(f"{self.path}: expected a list of {{image, question, ...}} (VizWiz layout)")
            self._items = items
        return self._items

    def questions(self) -> list[dict]:
        return [{"question_id": k, "image": field(item, "image", f"{self.path}[{k}]"),
                 "text": field(item, "question", f"{self.path}[{k}]").capitalize() + self.prompt_suffix}
                for k, item in enumerate(self.items())]

    def has_answers(self) -> bool:
        return all("answers" in item for item in self.items())

    def score(self, answers: Mapping[str, str]) -> dict:
        items = self.items()
        _check_known(answers, {str(k) for k in range(len(items))}, self.name)
        missing = sum(str(k) not in answers for k in range(len(items)))
        if not self.has_answers():
            return {**_header(self.name, "VQA accuracy", len(items), missing, None),
                    "note": "scored by the VizWiz EvalAI server (challenge 2185): submit the file upload() writes"}
        by_type: dict[str, list[float]] = defaultdict(list)
        values = []
        for k, item in enumerate(items):
            prediction = answers.get(str(k))
            value = 0.0 if prediction is None else vqa_accuracy(prediction, [a["answer"] for a in item["answers"]])
            values.append(value)
            by_type[item.get("answer_type", "other")].append(value)
        accuracy = _mean(values)
        return {**_header(self.name, "VQA accuracy", len(items), missing, 100 * accuracy), "accuracy": accuracy,
                **{f"accuracy_{t}": _mean(v) for t, v in sorted(by_type.items())}}

    def upload(self, answers: Mapping[str, str], out_dir: Path) -> Path:
        """``[{"image", "answer"}]`` in file order, answers through :func:`normalize_vqa_answer` (LLaVA's
        converter); an unanswered question gets ``""`` (LLaVA's converter asserts instead)."""
        items = self.items()
        _check_known(answers, {str(k) for k in range(len(items))}, self.name)
        rows = [{"image": item["image"], "answer": normalize_vqa_answer(answers[str(k)]) if str(k) in answers else ""}
                for k, item in enumerate(items)]
        return _write_upload(Path(out_dir) / f"{self.name}.json", rows)


class TextVQABenchmark:
    """TextVQA 0.5.1 val: ``TextVQA_0.5.1_val.json`` ({"data": [{question_id, image_id, question, answers x10,
    ...}]}), images ``<image_root>/<image_id>.jpg`` (image_root = the ``train_images`` folder).

    Prompt as LLaVA's ``llava_textvqa_val_v051_ocr.jsonl``: ``question.capitalize()``, then (``ocr_tokens``
    on, LLaVA-1.5's setting) ``"\\nReference OCR token: "`` + the image's OCR tokens joined by ``", "`` (the
    line is there, empty, when an image has none), then ``prompt_suffix``. The tokens come from ``ocr``, the
    official Rosetta file ``TextVQA_Rosetta_OCR_v0.2_val.json`` ({"data": [{image_id, ocr_tokens, ...}]}), or,
    with ``ocr`` None, from an ``ocr_tokens`` field of each question. ``ocr_tokens=False`` drops the line
    (lmms-eval's default; its numbers are not comparable with the paper's).

    question_id = the official question_id (LLaVA's file uses the image_id, shared by an image's questions,
    and its scorer matches answers back by (image_id, lowercased question)). Score: VQA accuracy over the
    10 answers, percent (``TextVQAAccuracyEvaluator``; same as :func:`vqa_accuracy`).
    """

    def __init__(self, name: str, annotations: str, image_root: str, ocr_tokens: bool = True,
                 ocr: str | None = None, prompt_suffix: str = SHORT_ANSWER) -> None:
        self.name, self.path, self.image_root = name, Path(annotations), Path(image_root)
        self.ocr_tokens, self.ocr_path, self.prompt_suffix = ocr_tokens, Path(ocr) if ocr else None, prompt_suffix
        self._items: list[dict] | None = None
        self._tokens: dict[str, list[str]] | None = None

    def items(self) -> list[dict]:
        if self._items is None:
            self._items = read_list(self.path, "data", "TextVQA layout")
        return self._items

    def tokens(self, item: dict, where: str) -> list[str]:
        """The OCR tokens of the item's image: from the Rosetta file (``ocr``), else the item's own field."""
        if self.ocr_path is None:
            return field(item, "ocr_tokens", f"{where} (without ocr=<TextVQA_Rosetta_OCR_v0.2 file> the questions "
                                             "must carry ocr_tokens; ocr_tokens=false drops the line)")
        if self._tokens is None:
            self._tokens = {str(field(r, "image_id", f"{self.ocr_path}: data[{k}]")): list(r.get("ocr_tokens") or [])
                            for k, r in enumerate(read_list(self.ocr_path, "data", "TextVQA Rosetta OCR layout"))}
        image_id = str(field(item, "image_id", where))
        if image_id not in self._tokens:
            raise AnnotationError(f"{self.ocr_path}: no OCR entry for image {image_id} ({where})")
        return self._tokens[image_id]

    def prompt(self, item: dict, where: str) -> str:
        text = str(field(item, "question", where)).capitalize()
        if self.ocr_tokens:
            text += OCR_PREFIX + ", ".join(self.tokens(item, where))
        return text + self.prompt_suffix

    def questions(self) -> list[dict]:
        out = []
        for k, item in enumerate(self.items()):
            where = f"{self.path}: data[{k}]"
            out.append({"question_id": field(item, "question_id", where),
                        "image": f"{field(item, 'image_id', where)}.jpg",
                        "text": self.prompt(item, where), "image_id": item["image_id"]})
        return out

    def score(self, answers: Mapping[str, str]) -> dict:
        items = self.items()
        ids = [str(field(item, "question_id", f"{self.path}: data[{k}]")) for k, item in enumerate(items)]
        _check_known(answers, set(ids), self.name)
        values = [0.0 if qid not in answers else vqa_accuracy(answers[qid], field(item, "answers", f"{self.path}: {qid}"))
                  for qid, item in zip(ids, items)]
        accuracy = _mean(values)
        return {**_header(self.name, "VQA accuracy", len(items), sum(q not in answers for q in ids), 100 * accuracy),
                "accuracy": accuracy}


class VQAv2TestDevBenchmark:
    """VQAv2 test-dev, scored by the EvalAI server (challenge 830).

    ``questions``: ``v2_OpenEnded_mscoco_test-dev2015_questions.json`` (what is asked);
    ``test_questions``: ``v2_OpenEnded_mscoco_test2015_questions.json`` (what the upload must cover).
    Images ``<image_root>/<image_pattern>`` (default ``COCO_test2015_{image_id:012d}.jpg`` in ``test2015``).
    Prompt: the question as written + ``prompt_suffix``. ``score`` checks the ids, counts missing answers and
    returns ``score`` None with a note; :meth:`upload` writes the file for the server.
    """

    def __init__(self, name: str, questions: str, test_questions: str, image_root: str,
                 image_pattern: str = "COCO_test2015_{image_id:012d}.jpg", prompt_suffix: str = SHORT_ANSWER) -> None:
        self.name, self.questions_path, self.test_path = name, Path(questions), Path(test_questions)
        self.image_root, self.image_pattern, self.prompt_suffix = Path(image_root), image_pattern, prompt_suffix

    def _questions(self) -> list[dict]:
        return read_list(self.questions_path, "questions", "VQAv2 questions layout")

    def questions(self) -> list[dict]:
        return [{"question_id": q["question_id"], "image": self.image_pattern.format(image_id=q["image_id"]),
                 "text": q["question"] + self.prompt_suffix} for q in self._questions()]

    def score(self, answers: Mapping[str, str]) -> dict:
        ids = [str(q["question_id"]) for q in self._questions()]
        _check_known(answers, set(ids), self.name)
        return {**_header(self.name, "VQA accuracy", len(ids), sum(q not in answers for q in ids), None),
                "note": "scored by the VQAv2 EvalAI server (challenge 830, test-dev phase): submit the file upload() writes"}

    def upload(self, answers: Mapping[str, str], out_dir: Path) -> Path:
        """``[{"question_id": int, "answer": str}]`` for every test2015 question, in that file's order (LLaVA's
        ``convert_vqav2_for_submission.py``): answers through :func:`normalize_vqa_answer`, ``""`` for a
        question not answered (all the non-test-dev ones)."""
        dev = {str(q["question_id"]) for q in self._questions()}
        _check_known(answers, dev, self.name)
        test = read_list(self.test_path, "questions", "VQAv2 questions layout")
        absent = dev - {str(q["question_id"]) for q in test}
        if absent:
            raise ValueError(f"{self.test_path}: lacks {len(absent)} test-dev questions of {self.questions_path} "
                             f"(first: {min(absent)}); test_questions must be the test2015 questions file")
        rows = [{"question_id": int(q["question_id"]),
                 "answer": normalize_vqa_answer(answers[str(q["question_id"])]) if str(q["question_id"]) in answers else ""}
                for q in test]
        return _write_upload(Path(out_dir) / f"{self.name}.json", rows)
