"""Oracle checks for multiple choice, REG, PointQA (local) and Visual7W pointing samples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .grammar import (
    EXPRESSION,
    MIN_IOU,
    V7W_PATTERNS,
    attrs,
    box_ious,
    normalize_question,
    parse_question,
    strip_coordinates,
)
from .language import position_contradiction, resolve
from .verdicts import MCVerdict, PointQAVerdict, REGVerdict, V7WVerdict

if TYPE_CHECKING:
    from .oracle import Oracle


class FamilyChecks:
    """Mixin of `Oracle`: checks for the families beyond plain QA and REC (normalized boxes / points)."""

    def check_mc(self: "Oracle", image_id: int, question: str, choices: Sequence[str],
                 answer_index: int) -> MCVerdict:
        """Correct iff exactly one option is true and `answer_index` picks it; unverifiable outside the grammar."""
        t, m = self._truth(image_id, question)
        if t.status != "correct":
            return MCVerdict(False, t.status, t.reason, None, None)
        true = [k for k, c in enumerate(choices) if self._grade(image_id, t, m, c).correct]
        true_index = true[0] if len(true) == 1 else None
        if len(true) != 1:
            return MCVerdict(False, "incorrect", f"{len(true)} options are true (truth {t.truth!r})", t.truth, None)
        if not 0 <= answer_index < len(choices):
            reason = f"answer index {answer_index} outside {len(choices)} options"
            return MCVerdict(False, "incorrect", reason, t.truth, true_index)
        if answer_index != true_index:
            return MCVerdict(False, "incorrect", f"chose {choices[answer_index]!r} but the truth is {t.truth!r}",
                             t.truth, true_index)
        return MCVerdict(True, "correct", "ok", t.truth, true_index)

    def check_reg(self: "Oracle", image_id: int, box: Sequence[float], expression: str, unique: bool = True) -> REGVerdict:
        """The expression must denote the object the box covers (IoU >= 0.5).

        unique=True (REG / RefCOCO): the grammar's resolve must pick exactly that object.
        unique=False (Visual Genome region phrases): every attribute named must fit the object, and
        the phrase must name its colour or shape; a position word must not pick another object.
        """
        im = self._image(image_id)
        idx, iou = self.best_object(image_id, box)
        if idx is None or iou < MIN_IOU:
            return REGVerdict(False, "incorrect", f"box matches no object (best IoU {iou:.2f})", idx, iou, None)
        o = im.objects[idx]
        m = EXPRESSION.fullmatch(normalize_question(expression))
        if m is None:
            return REGVerdict(False, "unverifiable", "expression outside the mini-world grammar", idx, iou, None)
        if m.group("apron"):
            return REGVerdict(False, "incorrect", "a deictic expression names no object by itself", idx, iou, None)
        a, pos = attrs(m, "a"), m.group("apos")
        ref, why = resolve(im.objects, im.width, im.height, pos=pos, **a)
        if unique:
            if ref is None:
                return REGVerdict(False, "incorrect", why, idx, iou, None)
            if ref != idx:
                return REGVerdict(False, "incorrect", f"expression denotes the {im.objects[ref].label}, "
                                  f"not the boxed {o.label}", idx, iou, ref)
            return REGVerdict(True, "correct", "ok", idx, iou, ref)
        for k, v in a.items():
            if v is not None and getattr(o, k) != v:
                return REGVerdict(False, "incorrect", f"says {v} but the boxed object is a {o.label}", idx, iou, ref)
        if a["color"] is None and a["shape"] is None:
            return REGVerdict(False, "incorrect", "phrase names neither colour nor shape", idx, iou, ref)
        if pos is not None and ref is not None and ref != idx:
            return REGVerdict(False, "incorrect", f"'{pos}' picks the {im.objects[ref].label}", idx, iou, ref)
        if false := position_contradiction(im.objects, im.width, im.height, idx, pos, **a):
            return REGVerdict(False, "incorrect", false, idx, iou, ref)
        return REGVerdict(True, "correct", "ok", idx, iou, idx)

    def check_point_qa(
        self: "Oracle", image_id: int, question: str, answer: str,
        box: Sequence[float] | None = None, point: Sequence[float] | None = None,
    ) -> PointQAVerdict:
        """Answer about the designated object: best IoU (>= 0.5) with `box`, or the object containing `point`.

        'this object' in the question means the designated object; a question naming an object
        by its attributes must name the designated one.
        """
        if box is None and point is None:
            raise ValueError("check_point_qa needs a box or a point")
        idx, iou = self.best_object(image_id, box) if box is not None else (None, None)
        if box is not None and (idx is None or iou < MIN_IOU):
            return PointQAVerdict(False, "incorrect", f"box designates no object (best IoU {iou:.2f})", None, None, None, iou)
        if point is not None:
            at = self.object_at(image_id, point)
            if at is None:
                return PointQAVerdict(False, "incorrect", "point lies on no object", None, None, None, iou)
            if idx is not None and at != idx:
                return PointQAVerdict(False, "incorrect", "box and point designate different objects", None, None, idx, iou)
            idx = at
        assert idx is not None
        parsed = parse_question(strip_coordinates(question))
        if parsed is None:
            return PointQAVerdict(False, "unverifiable", "question outside the mini-world grammar", None, None, idx, iou)
        qtype, m = parsed
        if qtype in ("count", "exist") or "apron" not in m.re.groupindex:
            return PointQAVerdict(False, "unverifiable", f"a {qtype} question is not about one object", qtype, None, idx, iou)
        designated = {"a": idx} if m.group("apron") else {}
        t = self._answer(self._image(image_id), qtype, m, designated)
        if t.status != "correct":
            return PointQAVerdict(False, t.status, t.reason, qtype, t.truth, idx, iou)
        if t.object_index != idx:
            return PointQAVerdict(False, "incorrect", "the question names another object than the designated one",
                                  qtype, t.truth, idx, iou)
        v = self._grade(image_id, t, m, answer)
        return PointQAVerdict(v.correct, v.status, v.reason, qtype, t.truth, idx, iou)

    def check_v7w(
        self: "Oracle", image_id: int, question: str, candidates: Sequence[Sequence[float]] | None,
        answer: Sequence[float],
    ) -> V7WVerdict:
        """`answer` (a box, or an (x, y) point) must designate the object the question names.

        A box needs IoU >= 0.5 with it, a point must lie inside it. `candidates` (optional) must be a
        real choice: each designates an object (IoU >= 0.5), no two the same one, one of them the named
        object (as the training files list the scene's objects); the verdict reports which candidate the
        answer picked. Baseline: `answer=candidates[0]`.
        """
        im = self._image(image_id)
        q = normalize_question(strip_coordinates(question))
        m = next((mm for p in V7W_PATTERNS if (mm := p.fullmatch(q))), None)
        if m is None:
            return V7WVerdict(False, "unverifiable", "question outside the pointing grammar", None, None, None)
        if m.group("apron"):
            return V7WVerdict(False, "unverifiable", "a deictic question names no object", None, None, None)
        target, why = resolve(im.objects, im.width, im.height, pos=m.group("apos"), **attrs(m, "a"))
        if target is None:
            return V7WVerdict(False, "incorrect", why, None, None, None)
        if bad := self._bad_candidates(image_id, candidates or (), target):
            return V7WVerdict(False, "incorrect", bad, target, None, None)
        sx, sy = im.width, im.height
        cand_px = [self.pixels(image_id, c) for c in candidates or ()]
        if len(answer) == 4:
            ans = self.pixels(image_id, answer)
            # one torchvision call (~0.1 ms each) for the target and every candidate
            iou, *scores = box_ious(ans, [im.objects[target].box, *cand_px])
            ok = iou >= MIN_IOU
        elif len(answer) == 2:
            iou, ok = None, self.object_at(image_id, answer) == target
            px, py = answer[0] * sx, answer[1] * sy
            scores = [float(c[0] <= px <= c[2] and c[1] <= py <= c[3]) for c in cand_px]
        else:
            raise ValueError(f"answer must be a box (4 numbers) or a point (2), got {answer!r}")
        cand = max(range(len(scores)), key=lambda k: scores[k]) if scores and max(scores) > 0 else None
        t = im.objects[target]
        reason = "ok" if ok else f"answer does not designate the {t.label}" + (f" (IoU {iou:.2f})" if iou is not None else "")
        return V7WVerdict(ok, "correct" if ok else "incorrect", reason, target, iou, cand)

    def _bad_candidates(self: "Oracle", image_id: int, candidates: Sequence[Sequence[float]], target: int) -> str | None:
        """Why a candidate list is no real choice (a box on no object, two on one, none on the target), else None."""
        if not candidates:
            return None
        objects = self._image(image_id).objects
        picks = []
        for k, box in enumerate(candidates, 1):
            idx, iou = self.best_object(image_id, box)
            if idx is None or iou < MIN_IOU:
                return f"candidate {k} designates no object (best IoU {iou:.2f})"
            if idx in picks:
                return f"candidates {picks.index(idx) + 1} and {k} both designate the {objects[idx].label}"
            picks.append(idx)
        return None if target in picks else f"no candidate designates the {objects[target].label}"
