"""Frozen verdict records the oracle returns, one per task family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QAVerdict:
    status: str  # "correct" | "incorrect" | "unverifiable"
    qtype: str | None
    truth: str | None
    reason: str
    object_index: int | None = None  # the object the question is about, when it names one
    other_index: int | None = None  # a relation question's second object

    @property
    def correct(self) -> bool:
        return self.status == "correct"


@dataclass(frozen=True)
class RECVerdict:
    correct: bool
    status: str  # "correct" | "incorrect" | "unverifiable" (expression outside the grammar)
    reason: str
    referent: int | None  # the one object the expression denotes (None: none / ambiguous / unparsed)
    iou: float  # box vs the referent; vs the best-overlapping object when there is no referent
    object_index: int | None  # object the box overlaps best


@dataclass(frozen=True)
class MCVerdict:
    correct: bool
    status: str  # "correct" | "incorrect" | "unverifiable"
    reason: str
    truth: str | None
    true_index: int | None  # the one true option, if exactly one is


@dataclass(frozen=True)
class REGVerdict:
    correct: bool
    status: str
    reason: str
    object_index: int | None  # object the box covers best
    iou: float
    referent: int | None  # object the expression denotes (None: none / ambiguous / unparsed)


@dataclass(frozen=True)
class PointQAVerdict:
    correct: bool
    status: str
    reason: str
    qtype: str | None
    truth: str | None
    object_index: int | None  # the designated object
    iou: float | None  # box vs designated object (None when only a point was given)


@dataclass(frozen=True)
class V7WVerdict:
    correct: bool
    status: str
    reason: str
    target_index: int | None  # object the question names
    iou: float | None  # answer box vs target (None for a point answer)
    candidate_index: int | None  # candidate closest to the answer (best IoU), if candidates were given


@dataclass(frozen=True)
class GroupCheck:
    where: str  # "question" | "answer"
    index: int  # k-th box group of that text
    phrase: str  # the words the group grounds
    correct: bool
    reason: str
    object_indices: tuple[int | None, ...]  # best-IoU object per box
    ious: tuple[float, ...]


@dataclass(frozen=True)
class GroundedVerdict:
    correct: bool
    reason: str  # "ok" or the first failure
    groups: tuple[GroupCheck, ...]
    qtype: str | None
    truth: str | None
    answer_status: str  # "correct" | "incorrect" | "unverifiable" (question outside the grammar)

    @property
    def status(self) -> str:
        """'unverifiable' when every box group passes but the final answer cannot be checked."""
        if self.correct:
            return "correct"
        unverified = self.answer_status == "unverifiable" and all(g.correct for g in self.groups)
        return "unverifiable" if unverified else "incorrect"
