"""Trivial baselines per task family, graded by the same oracle checks as generated samples."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable, Mapping, Sequence

from .grammar import parse_question
from .grounding import Groups, split_groups
from .oracle import CENTRAL_BOX, Oracle
from .verdicts import (
    GroundedVerdict,
    MCVerdict,
    PointQAVerdict,
    QAVerdict,
    RECVerdict,
    REGVerdict,
    V7WVerdict,
)

BASELINE_EXPRESSION = "the object"  # refers uniquely only in one-object images
# Used for a question type the majority table lacks.
FALLBACK_ANSWERS: dict[str, str] = {
    "color": "red", "shape": "circle", "what": "circle", "size": "large", "count": "1", "exist": "yes", "relation": "no",
}


def majority_from_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Most common answer per question type from (qtype, answer) pairs (ties -> alphabetically first)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for qtype, answer in pairs:
        counts[qtype][answer] += 1
    return {qt: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for qt, c in sorted(counts.items())}


class Baselines:
    """One trivial answer per family, checked like a generated sample; print `.correct` rates beside accuracy.

    qa / point_qa: majority answer of the question's type (yes/no types: always-yes or always-no);
    mc: first option ("A"); rec: `CENTRAL_BOX`; reg: "the object"; v7w: first candidate;
    grounded: every box group -> one central box grounding "it", final answer -> majority answer.
    """

    def __init__(self, oracle: Oracle, majority: Mapping[str, str] | None = None):
        self.oracle = oracle
        self.majority = {**FALLBACK_ANSWERS, **(majority or {})}
        if majority and "shape" in majority and "what" not in majority:
            self.majority["what"] = majority["shape"]

    def answer_for(self, question: str) -> str | None:
        parsed = parse_question(question)
        return self.majority[parsed[0]] if parsed else None

    def qa(self, image_id: int, question: str) -> QAVerdict:
        answer = self.answer_for(question)
        if answer is None:
            return self.oracle.truth(image_id, question)
        return self.oracle.check_qa(image_id, question, answer)

    def mc(self, image_id: int, question: str, choices: Sequence[str]) -> MCVerdict:
        return self.oracle.check_mc(image_id, question, choices, 0)

    def rec(self, image_id: int, expression: str) -> RECVerdict:
        return self.oracle.check_rec(image_id, expression, CENTRAL_BOX)

    def reg(self, image_id: int, box: Sequence[float], unique: bool = True) -> REGVerdict:
        return self.oracle.check_reg(image_id, box, BASELINE_EXPRESSION, unique)

    def point_qa(self, image_id: int, question: str, box: Sequence[float] | None = None,
                 point: Sequence[float] | None = None) -> PointQAVerdict:
        return self.oracle.check_point_qa(image_id, question, self.answer_for(question) or "", box, point)

    def v7w(self, image_id: int, question: str, candidates: Sequence[Sequence[float]]) -> V7WVerdict:
        return self.oracle.check_v7w(image_id, question, candidates, candidates[0])

    def grounded(self, image_id: int, question: str, answer: str, question_boxes: Groups,
                 answer_boxes: Groups) -> GroundedVerdict:
        """The sample's question with central boxes, and a contentless grounded answer with the majority answer."""
        n_answer = len(split_groups(answer)[1])
        final = self.answer_for(split_groups(question)[0]) or "yes"
        text = "".join("<ph_st>it<ph_ed> " for _ in range(n_answer)) + f"So the answer is {final}."
        return self.oracle.check_grounded(image_id, question, text, [[CENTRAL_BOX] for _ in question_boxes],
                                          [[CENTRAL_BOX] for _ in range(n_answer)])
