"""Referring expressions, VQA pairs, captions and conversations generated from a scene."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .scene import COLORS, SHAPES, SIZES, Scene, SceneObject

# A position word picks the extreme candidate along an axis: (axis, -1 = smallest coordinate).
POSITIONS: dict[str, tuple[int, int]] = {
    "on the left": (0, -1),
    "on the right": (0, 1),
    "at the top": (1, -1),
    "at the bottom": (1, 1),
}
# Relation word -> (axis, sign of (a - b) that makes it true).
RELATIONS: dict[str, tuple[int, int]] = {
    "to the left of": (0, -1),
    "to the right of": (0, 1),
    "above": (1, -1),
    "below": (1, 1),
}
CLEAR_GAP = 0.15  # centre distance, as a fraction of the image side, that counts as a clear position gap
QUESTION_TYPES: tuple[str, ...] = ("color", "shape", "count", "exist", "size", "relation")
ANSWER_TYPES: dict[str, str] = {
    "color": "other", "shape": "other", "size": "other", "count": "number", "exist": "yes/no", "relation": "yes/no",
}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

COLOR_TEMPLATES = ("What color is {ref}?", "What is the color of {ref}?", "Which color is {ref}?")
SHAPE_TEMPLATES = ("What shape is {ref}?", "What is the shape of {ref}?", "Which shape is {ref}?")
SIZE_TEMPLATES = ("Is {ref} small or large?", "Is {ref} large or small?", "What size is {ref}?")
COUNT_TEMPLATES = ("How many {x} are there?", "How many {x} are in the image?", "How many {x} can you see?")
EXIST_TEMPLATES = ("Is there {a} {x} in the image?", "Are there any {xs}?", "Does the image contain {a} {x}?")
RELATION_TEMPLATES = ("Is {a} {rel} {b}?", "Is {a} positioned {rel} {b}?", "Does {a} appear {rel} {b}?")
CAPTION_TEMPLATES = (
    "{List} on a {bg} background.",
    "A {bg} background with {list}.",
    "An image showing {list}.",
)
DESCRIBE_PROMPTS = ("Describe the image briefly.", "What is shown in this image?", "Give a short description of the image.")


def plural(shape: str) -> str:
    return shape + "s"


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def resolve(
    objects: Sequence[SceneObject],
    width: int,
    height: int,
    *,
    size: str | None = None,
    color: str | None = None,
    shape: str | None = None,
    pos: str | None = None,
) -> tuple[int | None, str]:
    """Index of the single object a description denotes, else (None, reason). Shared with the oracle.

    A position word picks among the objects the attributes fit; where they fit one alone, it must still hold of
    that object (``position_contradiction``)."""
    cands = [
        i for i, o in enumerate(objects)
        if (size is None or o.size == size) and (color is None or o.color == color) and (shape is None or o.shape == shape)
    ]
    if not cands:
        return None, "no such object"
    if len(cands) == 1:
        false = _false_position(objects[cands[0]], pos, width, height, size, color, shape)
        return (None, false) if false else (cands[0], "ok")
    if pos is None:
        return None, "ambiguous reference"
    axis, sign = POSITIONS[pos]
    ranked = sorted(cands, key=lambda i: -sign * objects[i].center[axis])
    gap = abs(objects[ranked[0]].center[axis] - objects[ranked[1]].center[axis])
    if gap <= CLEAR_GAP * (width if axis == 0 else height):
        return None, "ambiguous reference (no clear position)"
    return ranked[0], "ok"


def _false_position(o: SceneObject, pos: str | None, width: int, height: int, size: str | None, color: str | None,
                    shape: str | None) -> str | None:
    """Why ``pos`` is false of ``o``, the only object that fits the other words: its centre is not in that half of
    the image. None: no position word, or it holds."""
    if pos is None:
        return None
    axis, sign = POSITIONS[pos]
    side = width if axis == 0 else height
    if sign * (o.center[axis] - side / 2) > 0:
        return None
    return f"the only {ref_text(size, color, shape, None).removeprefix('the ')} is not {pos}"


def position_contradiction(objects: Sequence[SceneObject], width: int, height: int, index: int, pos: str | None,
                           size: str | None = None, color: str | None = None, shape: str | None = None) -> str | None:
    """``resolve``'s verdict on a position word beside a phrase that need not be unique (a region phrase, a box
    group): where the other words fit object ``index`` alone, why ``pos`` is false of it, else None."""
    if pos is None or resolve(objects, width, height, size=size, color=color, shape=shape)[0] != index:
        return None
    return _false_position(objects[index], pos, width, height, size, color, shape)


def ref_text(size: str | None, color: str | None, shape: str | None, pos: str | None) -> str:
    words = ["the", size, color, shape or "object", pos]
    return " ".join(w for w in words if w)


# Which attributes a description must use / may never use, per purpose.
_MODES: dict[str, tuple[tuple[str, ...], bool]] = {
    "full": (("color", "shape"), True),  # REC, relation, count
    "no_color": (("shape",), True),  # colour questions
    "no_shape": (("color",), True),  # shape questions
    "no_size": (("color", "shape"), False),  # size questions
}


def describe(objects: Sequence[SceneObject], idx: int, width: int, height: int, mode: str = "full") -> str | None:
    """Shortest unique description of objects[idx] ('the small red circle'), or None if not referable."""
    base, may_use_size = _MODES[mode]
    o = objects[idx]
    attrs = {"color": o.color if "color" in base else None, "shape": o.shape if "shape" in base else None}
    options: list[tuple[str | None, str | None]] = [(None, None)]
    if may_use_size:
        options.append((o.size, None))
    options += [(None, p) for p in POSITIONS]
    if may_use_size:
        options += [(o.size, p) for p in POSITIONS]
    for size, pos in options:
        if resolve(objects, width, height, size=size, pos=pos, **attrs)[0] == idx:
            return ref_text(size, attrs["color"], attrs["shape"], pos)
    return None


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    qtype: str

    @property
    def answer_type(self) -> str:
        return ANSWER_TYPES[self.qtype]


def relation_holds(a: SceneObject, b: SceneObject, rel: str, width: int, height: int) -> bool | None:
    """True/False if the relation is clearly decided by the centres, None when the gap is too small."""
    axis, sign = RELATIONS[rel]
    diff = a.center[axis] - b.center[axis]
    if abs(diff) <= CLEAR_GAP * (width if axis == 0 else height):
        return None
    return (diff > 0) == (sign > 0)


def _pick(rng: np.random.Generator, seq: Sequence):
    return seq[int(rng.integers(len(seq)))]


def _attribute_question(scene: Scene, rng, qtype: str) -> QA | None:
    mode, templates, attr = {
        "color": ("no_color", COLOR_TEMPLATES, "color"),
        "shape": ("no_shape", SHAPE_TEMPLATES, "shape"),
        "size": ("no_size", SIZE_TEMPLATES, "size"),
    }[qtype]
    objs = scene.objects
    refs = [(i, describe(objs, i, scene.width, scene.height, mode)) for i in range(len(objs))]
    refs = [(i, r) for i, r in refs if r]
    if not refs:
        return None
    i, ref = _pick(rng, refs)
    return QA(_pick(rng, templates).format(ref=ref), getattr(objs[i], attr), qtype)


def _count_question(scene: Scene, rng) -> QA:
    objs = scene.objects
    kind = _pick(rng, ("all", "shape", "color"))
    if kind == "all":
        return QA(_pick(rng, COUNT_TEMPLATES).format(x="objects"), str(len(objs)), "count")
    vocab, present = (SHAPES, [o.shape for o in objs]) if kind == "shape" else (COLORS, [o.color for o in objs])
    absent = [v for v in vocab if v not in present]
    value = _pick(rng, absent) if absent and rng.random() < 0.2 else _pick(rng, present)
    x = plural(value) if kind == "shape" else f"{value} objects"
    return QA(_pick(rng, COUNT_TEMPLATES).format(x=x), str(present.count(value)), "count")


def _exist_question(scene: Scene, rng) -> QA:
    present = {(o.color, o.shape) for o in scene.objects}
    if rng.random() < 0.5:
        color, shape = _pick(rng, sorted(present))
    else:
        absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
        # Half the "no" cases are near misses sharing a colour or a shape with a present object.
        near = [(c, s) for c, s in absent if any(c == pc or s == ps for pc, ps in present)]
        color, shape = _pick(rng, near if near and rng.random() < 0.5 else absent)
    x = f"{color} {shape}"
    q = _pick(rng, EXIST_TEMPLATES).format(a=article(color), x=x, xs=f"{color} {plural(shape)}")
    return QA(q, "yes" if (color, shape) in present else "no", "exist")


def _relation_question(scene: Scene, rng) -> QA | None:
    objs, w, h = scene.objects, scene.width, scene.height
    refs = {i: describe(objs, i, w, h, "full") for i in range(len(objs))}
    options = []
    for a, ra in refs.items():
        for b, rb in refs.items():
            if a == b or not ra or not rb:
                continue
            for axis_rels in (("to the left of", "to the right of"), ("above", "below")):
                if relation_holds(objs[a], objs[b], axis_rels[0], w, h) is not None:
                    options.append((a, b, axis_rels))
    if not options:
        return None
    a, b, axis_rels = _pick(rng, options)
    rel = _pick(rng, axis_rels)  # either direction: yes/no come out balanced
    answer = "yes" if relation_holds(objs[a], objs[b], rel, w, h) else "no"
    return QA(_pick(rng, RELATION_TEMPLATES).format(a=refs[a], b=refs[b], rel=rel), answer, "relation")


def make_question(scene: Scene, rng: np.random.Generator, qtype: str) -> QA | None:
    if qtype in ("color", "shape", "size"):
        return _attribute_question(scene, rng, qtype)
    if qtype == "count":
        return _count_question(scene, rng)
    if qtype == "exist":
        return _exist_question(scene, rng)
    if qtype == "relation":
        return _relation_question(scene, rng)
    raise ValueError(f"unknown question type {qtype!r}")


def make_questions(scene: Scene, rng: np.random.Generator, min_q: int = 4, max_q: int = 6) -> list[QA]:
    """4-6 distinct questions, cycling over a shuffled list of types so types stay balanced."""
    target = int(rng.integers(min_q, max_q + 1))
    order = [QUESTION_TYPES[i] for i in rng.permutation(len(QUESTION_TYPES))]
    out: list[QA] = []
    for _ in range(3):
        for qtype in order:
            if len(out) >= target:
                return out
            qa = make_question(scene, rng, qtype)
            if qa is not None and all(qa.question != o.question for o in out):
                out.append(qa)
    return out


def referring_expressions(scene: Scene) -> list[tuple[int, str]]:
    """(object index, 'the red circle') for every uniquely referable object."""
    out = []
    for i in range(len(scene.objects)):
        ref = describe(scene.objects, i, scene.width, scene.height, "full")
        if ref:
            out.append((i, ref))
    return out


def captions(scene: Scene, rng: np.random.Generator, n: int = 2) -> list[str]:
    """`n` captions with distinct templates, objects listed left to right."""
    objs = sorted(scene.objects, key=lambda o: o.center[0])
    out = []
    for t in rng.permutation(len(CAPTION_TEMPLATES))[:n]:
        with_size = rng.random() < 0.5
        parts = [f"{article(o.size if with_size else o.color)} {o.size + ' ' if with_size else ''}{o.color} {o.shape}" for o in objs]
        lst = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        text = CAPTION_TEMPLATES[int(t)].format(list=lst, List=lst[0].upper() + lst[1:], bg=scene.background.phrase)
        out.append(text)
    return out


def conversation(qas: Sequence[QA], caption: str, rng: np.random.Generator) -> list[dict[str, str]]:
    """LLaVA-style turns: optionally a description turn, then 2-3 QA pairs."""
    turns: list[tuple[str, str]] = []
    if rng.random() < 0.5:
        turns.append((_pick(rng, DESCRIBE_PROMPTS), caption))
    k = min(len(qas), int(rng.integers(2, 4)))
    for i in sorted(rng.permutation(len(qas))[:k]):
        turns.append((qas[int(i)].question, qas[int(i)].answer))
    conv = []
    for j, (q, a) in enumerate(turns):
        conv.append({"from": "human", "value": ("<image>\n" if j == 0 else "") + q})
        conv.append({"from": "gpt", "value": a})
    return conv


__all__ = [
    "COLORS", "SHAPES", "SIZES", "QUESTION_TYPES", "ANSWER_TYPES", "POSITIONS", "RELATIONS", "CLEAR_GAP", "QA",
    "resolve", "describe", "relation_holds", "make_questions", "referring_expressions", "captions", "conversation",
]
