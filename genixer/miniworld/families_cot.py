"""Per-image grounded language: GPT4Gen BoxCoT (question + grounded chain of thought) and RD dialogue."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .grammar import attrs, normalize_question, parse_question
from .language import (
    NUMBER_WORDS,
    RELATIONS,
    article,
    make_question,
    relation_holds,
    resolve,
)
from .longform import cap, describe_object, group_nouns, true_relation
from .scene import Scene

BOXCOT_TYPES = ("count", "color", "shape", "size", "exist", "relation")
RD_TYPES = ("what", "color", "shape", "size", "relation")
RD_QUESTIONS = {
    "what": ("What is {this}?",), "color": ("What color is {this}?", "What is the color of {this}?"),
    "shape": ("What shape is {this}?",), "size": ("Is {this} small or large?", "What size is {this}?"),
}
Part = str | tuple[str, Sequence[int]]  # plain text, or (phrase, object indices) to ground


class _Grounded:
    """Collects the boxes of one sample; renders parts into `<ph_st>..<ph_ed>` text plus a boxes_seq."""

    def __init__(self, scene: Scene):
        self.scene, self.order = scene, []  # object indices, in the order of the `boxes` list

    def render(self, parts: Sequence[Part]) -> tuple[str, list[list[int]]]:
        text, seq = "", []
        for part in parts:
            if isinstance(part, str):
                text += part
                continue
            phrase, idxs = part
            for i in idxs:
                if i not in self.order:
                    self.order.append(i)
            text += f"<ph_st>{phrase}<ph_ed>"
            seq.append([self.order.index(i) for i in idxs])
        return text, seq

    def record(self, question: Sequence[Part], answer: Sequence[Part]) -> dict[str, Any]:
        q, q_seq = self.render(question)
        a, a_seq = self.render(answer)
        return {"question": q, "question_boxes_seq": q_seq, "cot_with_ans": a, "answer_boxes_seq": a_seq,
                "boxes": [list(self.scene.objects[i].box) for i in self.order]}


def _listing(scene: Scene, idxs: Sequence[int]) -> list[Part]:
    """'a small red circle, a large blue star and a small green square', each grounded alone."""
    parts: list[Part] = []
    for k, i in enumerate(idxs):
        if k:
            parts.append(" and " if k == len(idxs) - 1 else ", ")
        parts.append((describe_object(scene.objects[i]), [i]))
    return parts


def _matching(scene: Scene, g: dict[str, str | None]) -> list[int]:
    return [i for i, o in enumerate(scene.objects) if all(v is None or getattr(o, k) == v for k, v in g.items())]


def _split_refs(scene: Scene, question: str, refs: Sequence[str]) -> list[Part]:
    """Question text with its reference slots ('a', 'b') grounded; the slots are exact spans of it."""
    parsed = parse_question(question)
    assert parsed is not None and question.lower().startswith(normalize_question(question)), question
    m = parsed[1]
    parts: list[Part] = []
    pos = 0
    for p in refs:
        start, end = m.span(f"{p}ref")
        idx, why = resolve(scene.objects, scene.width, scene.height, pos=m.group(f"{p}pos"), **attrs(m, p))
        assert idx is not None, why  # the grammar's generator only writes unique references
        parts += [question[pos:start], (question[start:end], [idx])]
        pos = end
    return parts + [question[pos:]]


def boxcot_of(scene: Scene, rng: np.random.Generator, qtype: str) -> dict[str, Any] | None:
    """A Q->C^Box A sample of one question type (None when the scene cannot ask it)."""
    qa = make_question(scene, rng, qtype)
    if qa is None:
        return None
    g = _Grounded(scene)
    parsed = parse_question(qa.question)
    assert parsed is not None
    m = parsed[1]
    end = f" So the answer is {qa.answer}."
    if qtype in ("count", "exist"):
        wanted = attrs(m, "g")
        idxs = _matching(scene, wanted)
        one, many = group_nouns(m)
        if not idxs:  # name what is there instead (near misses first), so the reasoning still grounds objects
            near = [i for i, o in enumerate(scene.objects)
                    if qtype == "exist" and (o.color == wanted["color"] or o.shape == wanted["shape"])]
            listed = _listing(scene, near or range(len(scene.objects)))
            return g.record([qa.question], ["I can see ", *listed, f", but no {many}.{end}"])
        n = len(idxs)
        if rng.random() < 0.5:  # one phrase grounding the whole group
            if n == 1 and qtype == "exist":
                phrase = f"{article(one)} {one}"
            else:
                phrase = f"{NUMBER_WORDS[n]} {one if n == 1 else many}"
            verb = "is" if n == 1 else "are"
            return g.record([qa.question], [f"There {verb} ", (phrase, idxs), f" in the image.{end}"])
        return g.record([qa.question], ["I can see ", *_listing(scene, idxs), f".{end}"])
    if qtype == "relation":
        q_parts = _split_refs(scene, qa.question, ("a", "b"))
        (a_text, a_idx), (b_text, b_idx) = q_parts[1], q_parts[3]  # type: ignore[misc]
        o_a, o_b = scene.objects[a_idx[0]], scene.objects[b_idx[0]]
        rel = m.group("rel")
        holds = relation_holds(o_a, o_b, rel if rel in RELATIONS else "to the " + rel, scene.width, scene.height)
        said = true_relation(rel, bool(holds))
        return g.record(q_parts, [(cap(a_text), a_idx), f" is {said} ", (b_text, b_idx), f".{end}"])
    q_parts = _split_refs(scene, qa.question, ("a",))
    ref, idx = q_parts[1]  # type: ignore[misc]
    value = f"{article(qa.answer)} {qa.answer}" if qtype == "shape" else qa.answer
    return g.record(q_parts, [(cap(ref), idx), f" is {value}.{end}"])


def boxcot(scene: Scene, rng: np.random.Generator, per_image: int = 1) -> list[dict[str, Any]]:
    """Up to ``per_image`` questions of distinct types, each with a grounded chain of thought ending 'So the
    answer is X.' (types in a random order; one per image is the world's default, and draws as it always did)."""
    if not scene.objects:
        return []
    samples = []
    for k in rng.permutation(len(BOXCOT_TYPES)):
        rec = boxcot_of(scene, rng, BOXCOT_TYPES[int(k)])
        if rec is not None:
            samples.append(rec)
            if len(samples) == per_image:
                break
    return samples


def _relation_pairs(scene: Scene) -> list[tuple[int, int, tuple[str, str]]]:
    objs, w, h = scene.objects, scene.width, scene.height
    return [(a, b, axis) for a in range(len(objs)) for b in range(len(objs)) if a != b
            for axis in (("to the left of", "to the right of"), ("above", "below"))
            if relation_holds(objs[a], objs[b], axis[0], w, h) is not None]


def rd_dialogues(scene: Scene, rng: np.random.Generator, per_image: int = 1, reasoning_first: bool = False,
                 ) -> list[dict[str, Any]]:
    """Up to ``per_image`` referential dialogues of distinct question types: the first is the one-per-image world's
    (drawn as it always was), the others follow in a random order of the remaining types. ``reasoning_first``: a
    relation answer states the relation before its yes / no (the same draws, so the same questions)."""
    if not scene.objects:
        return []
    pairs = _relation_pairs(scene)
    types = RD_TYPES if pairs else RD_TYPES[:-1]   # relation last: only where some pair's relation is clear
    first = types[int(rng.integers(len(types)))]
    samples = [rd_dialogue(scene, rng, first, pairs, reasoning_first)]
    if per_image > 1:
        rest = [t for t in types if t != first]
        samples += [rd_dialogue(scene, rng, rest[int(k)], pairs, reasoning_first)
                    for k in rng.permutation(len(rest))[:per_image - 1]]
    return samples


def rd_dialogue(scene: Scene, rng: np.random.Generator, qtype: str, pairs: list, reasoning_first: bool = False,
                ) -> dict[str, Any]:
    """Referential dialogue: 'What is <ph_st>this<ph_ed>?' -> '<ph_st>It<ph_ed> is a small red circle.'
    (``pairs``: ``_relation_pairs(scene)``, for a relation question). A relation answers 'No, <ph_st>it<ph_ed> is
    below <ph_st>that object<ph_ed>.', or with ``reasoning_first`` '<ph_st>It<ph_ed> is below <ph_st>that
    object<ph_ed>. So the answer is no.' (the GPT4Gen BoxCoT order: the chain, then the answer)."""
    g, objs = _Grounded(scene), scene.objects
    if qtype == "relation":
        a, b, axis = pairs[int(rng.integers(len(pairs)))]
        rel = axis[int(rng.integers(2))]
        holds = bool(relation_holds(objs[a], objs[b], rel, scene.width, scene.height))
        question: list[Part] = ["Is ", ("this object", [a]), f" {rel} ", ("that object", [b]), "?"]
        said: list[Part] = [f" is {true_relation(rel, holds)} ", ("that object", [b])]
        if reasoning_first:
            return g.record(question, [("It", [a]), *said, f". So the answer is {'yes' if holds else 'no'}."])
        return g.record(question, ["Yes, " if holds else "No, ", ("it", [a]), *said, "."])
    i = int(rng.integers(len(objs)))
    o = objs[i]
    this = "this" if rng.random() < 0.5 else "this object"
    template = RD_QUESTIONS[qtype][int(rng.integers(len(RD_QUESTIONS[qtype])))]
    head, tail = template.split("{this}")
    value = {"what": describe_object(o), "color": o.color, "shape": f"{article(o.shape)} {o.shape}", "size": o.size}[qtype]
    return g.record([head, (this, [i]), tail], [("It", [i]), f" is {value}."])

