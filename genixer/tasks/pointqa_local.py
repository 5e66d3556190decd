"""PointQA-Local: a question about a box or point appended to it, and its short answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Parsed, Task, format_qa, require_text, single_pair
from .boxes import (
    Box,
    Point,
    find_number_lists,
    format_coordinate,
    is_point_text,
    normalize_point,
    normalized_target_box,
    parse_coordinate,
)
from .keyed import keyed_rng
from .templates import TemplatePool

VERSIONS = ("b", "p", "bp")


def check_version(version: str) -> str:
    """`version` itself when it is one of b, p, bp."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    return version


def pick_kind(version: str, has_box: bool, has_point: bool, key: object, salt: str) -> str:
    """"b" or "p" for one sample; `bp` draws from the key only when both are annotated."""
    wanted = {"b": ("b",), "p": ("p",), "bp": ("b", "p")}[version]
    present = [k for k, has in (("b", has_box), ("p", has_point)) if has and k in wanted]
    if not present:
        fields = " or ".join({"b": "box", "p": "point"}[k] for k in wanted)
        raise ValueError(f"version {version!r} needs a {fields} annotation")
    if len(present) == 1:
        return present[0]
    return "p" if keyed_rng(key, salt).random() < 0.5 else "b"


def normalized_coordinate(value: Any, width: float, height: float) -> Box | Point:
    """Pixel box (4 values) or point (2 values) -> [0,1]; a box that collapses raises."""
    if len(value) == 2:
        return normalize_point(value, width, height)
    return normalized_target_box(value, width, height)


def parse_pointqa_local_pair(question: str, answer: str) -> Parsed:
    """Record from an already split pair -> {question, box | point, answer}."""
    lists = find_number_lists(question)
    if not lists:
        return Parsed.reject("no box or point in question")
    if len(lists) > 1:
        return Parsed.reject("more than one box in question")
    if not question.rstrip().endswith(lists[0]):
        return Parsed.reject("coordinates not at end of question")
    value, reason = parse_coordinate(lists[0])
    if value is None:
        return Parsed.reject(reason or "malformed box")
    # Released checkpoints attach the coordinate with no space; a space is accepted too.
    head = question.rstrip()[: -len(lists[0])].strip()
    if not head:
        return Parsed.reject("empty question")
    if find_number_lists(answer):
        return Parsed.reject("box in answer")
    return Parsed.accept({"question": head, "box" if len(value) == 4 else "point": value, "answer": answer})


def pointqa_local_conversation(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The question with its coordinate attached, answered by the short answer."""
    value = record["box"] if "box" in record else record["point"]
    return [(record["question"] + format_coordinate(value), record["answer"])]


class PointQALocal(Task):
    """Annotation {"question", "answer", "bbox" and/or "point", "width", "height"} <->
    `Question: {question}[box or point] Answer: {answer}`."""

    def __init__(self, name: str, suffix: str, instructions: TemplatePool, version: str = "bp",
                 family: str | None = None) -> None:
        super().__init__(name, suffix, instructions, family)
        self.version = check_version(version)

    def target(self, annotation: Mapping[str, Any], key: object) -> str:
        question, answer = require_text(annotation, "question"), require_text(annotation, "answer")
        if find_number_lists(question) or find_number_lists(answer):
            raise ValueError(f"pointqa_local text already contains coordinates: {question!r} / {answer!r}")
        kind = pick_kind(self.version, annotation.get("bbox") is not None,
                         annotation.get("point") is not None, key, f"{self.name}:version")
        value = normalized_coordinate(annotation["bbox" if kind == "b" else "point"],
                                      annotation["width"], annotation["height"])
        # No space before the coordinate: what the original builder (and its checkpoints) write.
        return format_qa(question + format_coordinate(value), answer)

    def parse_pair(self, question: str, answer: str) -> Parsed:
        return parse_pointqa_local_pair(question, answer)

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        return pointqa_local_conversation(record)

    def recognizes(self, text: str) -> bool:
        """One point anywhere in the question, or one box ending it; no coordinates in the answer."""
        pair = single_pair(text)
        if pair is None or find_number_lists(pair[1]):
            return False
        lists = find_number_lists(pair[0])
        return len(lists) == 1 and (is_point_text(lists[0]) or pair[0].rstrip().endswith(lists[0]))
