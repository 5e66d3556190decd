"""Oracle check for grounded question / chain-of-thought answers (Q->C^Box A) and referential dialogue."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from .grammar import MIN_IOU, normalize_answer, normalize_question, parse_question, phrase_attributes, sole_attributes
from .language import RELATIONS, position_contradiction, resolve
from .longform import group_nouns, true_relation
from .verdicts import GroundedVerdict, GroupCheck, QAVerdict

if TYPE_CHECKING:
    from .oracle import Oracle

PH_ST, PH_ED = "<ph_st>", "<ph_ed>"
_NUM = r"-?\d+(?:\.\d+)?"
# A token that closes a phrase: Shikra's <ph_ed>, or an inline coordinate list "[x1,y1,x2,y2;...]".
_TOKEN = re.compile(rf"<ph_st>|<ph_ed>|\[\s*{_NUM}(?:\s*[,;]\s*{_NUM})+\s*\]")
# Without <ph_st>, a phrase starts after the last clause boundary before its box group.
_BOUNDARY = re.compile(
    r"[.?!;:,]|\b(?:is|are|was|were|of|and|or|with|has|have|than|but|contains?|see|shows?|between|there)\b", re.I)
_FINAL = re.compile(r"(?:so )?the answer is\s*:?\s*", re.I)
Groups = Sequence[Sequence[Sequence[float]]]


def split_groups(text: str) -> tuple[str, list[tuple[str, int]]]:
    """Plain text without marks / coordinates, and per box group (phrase, end offset in the plain text)."""
    plain, groups, open_at, last_end, pos = "", [], None, 0, 0
    for tok in _TOKEN.finditer(text):
        plain += text[pos:tok.start()]
        pos = tok.end()
        if tok.group() == PH_ST:
            open_at = len(plain)
            continue
        if open_at is not None:
            phrase = plain[open_at:]
        else:
            seg = plain[last_end:]
            phrase = seg[max((b.end() for b in _BOUNDARY.finditer(seg)), default=0):]
        groups.append((phrase.strip(), len(plain)))
        open_at, last_end = None, len(plain)
    return plain + text[pos:], groups


def groups_from_seq(boxes: Sequence[Sequence[float]], boxes_seq: Sequence[Sequence[int]] | None,
                    width: int, height: int) -> list[list[tuple[float, ...]]]:
    """Shikra `boxes` (pixels) + `*_boxes_seq` -> groups of normalized boxes for `check_grounded`."""
    return [[(boxes[i][0] / width, boxes[i][1] / height, boxes[i][2] / width, boxes[i][3] / height) for i in g]
            for g in boxes_seq or ()]


_SAID_VALUE = re.compile(r"\bis (?:an? )?(\w+)\.?$", re.I)   # '... is a square.' (colour / shape / size chains)
_SAID_NONE = re.compile(r"\bbut no ([\w ]+?)\.?$", re.I)   # '... but no red stars.' (count / exist chains)
# a relation word, not a position word ('the circle on the left'), maybe denied ('is not above')
_SAID_RELATION = re.compile(r"\b(not )?(?:to the )?(?<!on the )(left|right|above|below)\b", re.I)
_NONE_ANSWERS = {"no", "0", "zero", "none"}
_LEADING_YES_NO = re.compile(r"\s*(yes|no)\b[,.]?", re.I)


def _relation(word: str) -> str:
    """'left' / 'left of' / 'to the left of' -> 'to the left of'; 'above' -> 'above'."""
    word = word.removeprefix("to the ").removesuffix(" of")
    return word if word in RELATIONS else f"to the {word} of"


def chain_contradiction(qtype: str, m: re.Match, answer_plain: str, grounded: int = 0) -> str | None:
    """How the chain of thought (the text before the last 'So the answer is'; in a referential dialogue's relation
    answer or a long relation answer, the words after its leading yes / no) contradicts the answer it ends with,
    where it states the answer in one of the training data's forms: '<ref> is <value>.' must give the final value;
    '..., but no <group>.' must name the question's group and end in no / 0; otherwise the ``grounded`` objects (the
    answer's boxes) are what a count answers and an exist answer's yes; '<a> is <relation> <b>.' must be the asked
    relation for yes, its opposite (or the asked one denied: 'is not above') for no. None: no contradiction (or no
    chain)."""
    hits = list(_FINAL.finditer(answer_plain))
    if hits:
        chain = answer_plain[:hits[-1].start()].strip()
        final = answer_plain[hits[-1].end():].strip().rstrip(".").strip().lower()
    elif qtype == "relation" and (lead := _LEADING_YES_NO.match(answer_plain)):   # RD: 'Yes, it is left of that object.'
        chain, final = answer_plain[lead.end():].strip(), lead.group(1).lower()
    else:
        return None
    if qtype in ("color", "shape", "size") and (said := _SAID_VALUE.search(chain)):
        if normalize_answer(said.group(1)) != normalize_answer(final):
            return f"the chain says '{said.group(1)}', the answer '{final}'"
    if qtype in ("count", "exist") and (none := _SAID_NONE.search(chain)):
        many = group_nouns(m)[1]
        if none.group(1).lower() != many:
            return f"the chain denies '{none.group(1)}', the question asks about '{many}'"
        if final not in _NONE_ANSWERS:
            return f"the chain finds no {many}, the answer is '{final}'"
    elif qtype == "count" and grounded and (n := normalize_answer(final)).isdigit() and int(n) != grounded:
        return f"the chain grounds {grounded} objects, the answer is '{final}'"
    elif qtype == "exist" and grounded and final != "yes":
        return f"the chain grounds {grounded} matching objects, the answer is '{final}'"
    if qtype == "relation" and (said := _SAID_RELATION.search(chain)):
        asked, stated = _relation(m.group("rel").lower()), _relation(said.group(2).lower())
        if said.group(1):   # 'is not to the left of': only the asked relation, denied
            implied = "no" if stated == asked else None
        else:
            implied = "yes" if stated == asked else "no" if stated == true_relation(asked, False) else None
        if implied != final:
            return f"the chain says '{said.group(1) or ''}{stated}', the answer '{final}' to '{asked}'"
    return None


def final_answer(answer_plain: str) -> str:
    """The text after the last 'So the answer is', else the whole answer."""
    hits = list(_FINAL.finditer(answer_plain))
    return answer_plain[hits[-1].end():].strip() if hits else answer_plain.strip()


def grounds_other_object(t: QAVerdict, answer_checks: Sequence[GroupCheck], objects: Sequence) -> str | None:
    """How the answer's box groups ground other objects than the question asks about, else None. As the training
    files write them, every group of an answer about one object grounds that object ('It', 'The star'), and a
    relation's k-th group its k-th object; count / exist answers ground the objects they count (checked elsewhere)."""
    if t.qtype in ("count", "exist") or t.object_index is None:
        return None
    asked = (t.object_index, t.other_index) if t.qtype == "relation" else (t.object_index,) * len(answer_checks)
    for k, c in enumerate(answer_checks):
        if k >= len(asked):
            return f"answer group {k} ('{c.phrase}') grounds an object beyond the two the question relates"
        want = asked[k]
        if c.object_indices != (want,):
            got = ", ".join(objects[i].label for i in c.object_indices if i is not None)
            other = f"another {got} than the asked one" if got == objects[want].label else \
                f"the {got}, not the asked {objects[want].label}"
            return f"answer group {k} ('{c.phrase}') grounds {other}"
    return None


class GroundedChecks:
    """Mixin of `Oracle`: grade qca_box / rd samples."""

    def check_grounded(self: "Oracle", image_id: int, question: str, answer: str,
                       question_boxes: Groups, answer_boxes: Groups) -> GroundedVerdict:
        """Check every box group and the final answer of a grounded QA / referential-dialogue sample.

        Texts mark where each box group sits, in either convention:
        - Shikra marks: `What color is <ph_st>the star<ph_ed>?` (phrase = the marked words), or
        - inline coordinates as the task parsers leave them: `What color is the star[0.1,0.2,0.3,0.4]?`
          (the numbers are ignored; phrase = the words since the last clause boundary).
        The k-th mark takes `question_boxes[k]` / `answer_boxes[k]`: a group of normalized xyxy boxes.
        Group check: each box matches a distinct object (IoU >= 0.5) and the phrase fits them (every
        size / colour / shape word names them, a number word equals the group size, a position word
        does not pick another object). A question group designates its object for 'this' / 'the star'.
        Final answer: the text after 'So the answer is', else the whole answer (referential dialogue),
        graded like `check_qa`. `correct` = every group passes, the final answer is verified true, the answer
        grounds the objects the question asks about (``grounds_other_object``) and the chain of thought does not
        contradict it (``chain_contradiction``);
        an answer that cannot be verified (question outside the grammar, the same object twice, a
        position gap too small to judge) leaves the sample unverifiable, never correct.
        """
        q_plain, q_groups = split_groups(question)
        a_plain, a_groups = split_groups(answer)
        for where, found, given in (("question", q_groups, question_boxes), ("answer", a_groups, answer_boxes)):
            if len(found) != len(given):
                reason = f"{where} has {len(found)} box marks but {len(given)} box groups"
                return GroundedVerdict(False, reason, (), None, None, "unverifiable")
        checks = tuple(
            self._check_group(image_id, where, k, phrase, list(boxes))
            for where, groups, given in (("question", q_groups, question_boxes), ("answer", a_groups, answer_boxes))
            for k, ((phrase, _), boxes) in enumerate(zip(groups, given))
        )
        t = self._grounded_truth(image_id, q_plain, q_groups, checks)
        contradiction = None
        if t.status == "correct":
            parsed = parse_question(q_plain)
            assert parsed is not None
            t = self._grade(image_id, t, parsed[1], final_answer(a_plain))
            if t.status == "correct":
                grounded = sum(len(boxes) for boxes in answer_boxes)
                contradiction = (grounds_other_object(t, [c for c in checks if c.where == "answer"],
                                                      self._image(image_id).objects)
                                 or chain_contradiction(t.qtype, parsed[1], a_plain, grounded))
        answer_status = t.status
        bad = [c for c in checks if not c.correct]
        correct = not bad and answer_status == "correct" and contradiction is None
        if bad:
            reason = f"{bad[0].where} group {bad[0].index} ('{bad[0].phrase}'): {bad[0].reason}"
        elif contradiction:
            reason = f"chain of thought: {contradiction}"
        else:
            reason = "ok" if correct else f"final answer: {t.reason}"
        return GroundedVerdict(correct, reason, checks, t.qtype, t.truth, answer_status)

    def _grounded_truth(self: "Oracle", image_id: int, q_plain: str, q_groups: list[tuple[str, int]],
                        checks: tuple[GroupCheck, ...]) -> QAVerdict:
        """Truth of the plain question, with references designated by the question's box groups."""
        parsed = parse_question(q_plain)
        if parsed is None:
            return QAVerdict("unverifiable", None, None, "question outside the mini-world grammar")
        qtype, m = parsed
        ends = [len(normalize_question(q_plain[:end])) for _, end in q_groups]
        designated: dict[str, int] = {}
        for p in ("a", "b"):
            if f"{p}ref" not in m.re.groupindex or m.group(f"{p}ref") is None:
                continue
            for k, end in enumerate(ends):
                c = checks[k]  # question checks come first
                if end == m.end(f"{p}ref") and c.correct and len(c.object_indices) == 1:
                    designated[p] = c.object_indices[0]  # type: ignore[assignment]
        return self._answer(self._image(image_id), qtype, m, designated)

    def _check_group(self: "Oracle", image_id: int, where: str, k: int, phrase: str,
                     boxes: list[Sequence[float]]) -> GroupCheck:
        im = self._image(image_id)
        matches = [self.best_object(image_id, b) for b in boxes]
        idxs = tuple(i for i, _ in matches)
        ious = tuple(iou for _, iou in matches)

        def verdict(ok: bool, reason: str) -> GroupCheck:
            return GroupCheck(where, k, phrase, ok, reason, idxs, ious)

        if not boxes:
            return verdict(False, "empty box group")
        for j, (i, iou) in enumerate(matches):
            if i is None or iou < MIN_IOU:
                return verdict(False, f"box {j} matches no object (best IoU {iou:.2f})")
        if len(set(idxs)) < len(idxs):
            return verdict(False, "two boxes designate the same object")
        at = phrase_attributes(phrase)
        for i in idxs:
            o = im.objects[i]  # type: ignore[index]
            for kind in ("size", "color", "shape"):
                if at[kind] and getattr(o, kind) not in at[kind]:
                    return verdict(False, f"phrase does not fit the boxed {o.size} {o.color} {o.shape}")
        if len(at["number"]) == 1 and int(next(iter(at["number"]))) != len(boxes):
            return verdict(False, f"phrase names {next(iter(at['number']))} objects but the group has {len(boxes)} boxes")
        if len(at["pos"]) == 1 and len(idxs) == 1:
            pos, single = next(iter(at["pos"])), sole_attributes(at)
            ref, _ = resolve(im.objects, im.width, im.height, pos=pos, **single)
            if ref is not None and ref != idxs[0]:
                return verdict(False, "the position word picks another object")
            if false := position_contradiction(im.objects, im.width, im.height, idxs[0], pos, **single):
                return verdict(False, false)
        return verdict(True, "ok")
