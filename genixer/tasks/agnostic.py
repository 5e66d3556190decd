"""Task-agnostic mode: no suffix, the generator picks the task; parsing classifies it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import Parsed, Task, parse_qa_pair
from .box_qa import parse_box_qa_pair
from .boxes import find_number_lists
from .dialogue import dialogue_conversation, parse_dialogue
from .mc_vqa import has_options, mc_conversation, parse_mc_pair
from .pointqa_local import parse_pointqa_local_pair, pointqa_local_conversation
from .pointqa_v7w import CANDIDATES, parse_v7w_pair, v7w_conversation
from .rec import ExpressionMatcher, parse_rec_pair, rec_conversation
from .reg import parse_reg_pair, reg_conversation
from .templates import TemplatePool

_Conversation = Callable[[Mapping[str, Any]], list[tuple[str, str]]]
_CONVERSATIONS: dict[str, _Conversation] = {
    "md": dialogue_conversation, "mc_vqa": mc_conversation, "rec": rec_conversation,
    "reg": reg_conversation, "pointqa_local": pointqa_local_conversation, "pointqa_v7w": v7w_conversation,
}


def _tag(task: str, parsed: Parsed) -> Parsed:
    return Parsed.accept({"task": task, **parsed.record}) if parsed.ok else parsed  # type: ignore[arg-type]


def _attached(text: str, coordinate: str) -> bool:
    """True when `coordinate` directly follows a non-space character (no space in between)."""
    before = text[: text.index(coordinate)][-1:]
    return bool(before) and not before.isspace()


class TaskAgnostic(Task):
    """Generic instruction only; the output is classified by its shape into one task record.

    md (2+ pairs), pointqa_v7w ("Candidates:"), mc_vqa (lettered option lines), common_vqa (no
    coordinates), rec (one box as the answer), pointqa_local (a point, or a box attached to the end
    of the question), reg (one box after a space in the question, none in the answer), qca_box
    (other box groups). Adv/long VQA are not told apart from common VQA, nor RD from Q→C^Box A.
    """

    def __init__(self, instructions: TemplatePool, questions: TemplatePool,
                 name: str = "agnostic", suffix: str = "") -> None:
        super().__init__(name, suffix, instructions)
        self.questions = questions
        self.matcher = ExpressionMatcher(questions)

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        raise NotImplementedError(
            "TaskAgnostic has no target format of its own: render the target with the "
            "specific task (CommonVQA, REC, ...) and take only the instruction from here")

    def parse(self, text: str) -> Parsed:
        if text.count("Question:") > 1:
            return _tag("md", parse_dialogue(text))
        pair = parse_qa_pair(text)
        if not pair.ok:
            return pair
        question, answer = pair.record["question"], pair.record["answer"]  # type: ignore[index]
        if CANDIDATES in question:
            return _tag("pointqa_v7w", parse_v7w_pair(question, answer))
        if has_options(question):
            return _tag("mc_vqa", parse_mc_pair(question, answer))
        in_question, in_answer = find_number_lists(question), find_number_lists(answer)
        if not in_question and not in_answer:
            return Parsed.accept({"task": "common_vqa", "question": question, "answer": answer})
        if not in_question and len(in_answer) == 1 and ";" not in in_answer[0]:
            # One box glued to a word is a grounded phrase (Q→C^Box A); otherwise it must be a
            # clean REC sample or it is dropped.
            if not _attached(answer, in_answer[0]):
                return _tag("rec", parse_rec_pair(question, answer, self.matcher))
        if len(in_question) == 1 and not in_answer:
            coordinate = in_question[0]
            # PointQA attaches its coordinate to the question's end, REG writes it after a space,
            # Q→C^Box A attaches box groups to phrases inside the sentence.
            is_point = ";" not in coordinate and coordinate.count(",") == 1
            if is_point or (question.rstrip().endswith(coordinate) and _attached(question, coordinate)):
                return _tag("pointqa_local", parse_pointqa_local_pair(question, answer))
            if not _attached(question, coordinate):
                return _tag("reg", parse_reg_pair(question, answer))
        return _tag("qca_box", parse_box_qa_pair(question, answer))

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        convert = _CONVERSATIONS.get(record["task"])
        return convert(record) if convert else super().conversation(record)
