"""Question / expression grammar of the mini world, answer normalization and answer-word matching."""

from __future__ import annotations

import re
from typing import Sequence

from .language import NUMBER_WORDS, POSITIONS
from .scene import COLORS, SHAPES, SIZES, SceneObject

_C = "|".join(COLORS)
_S = "|".join(SHAPES)
_POS = "|".join(POSITIONS)
MIN_IOU = 0.5  # a box designates / matches an object at IoU >= 0.5
_REL = "to the left of|to the right of|left of|right of|above|below"
# Deictic references ("this object") only resolve through a box or point given beside the text.
_PRON = r"(?:this|that|it)(?: object| one| shape| thing)?"


def _ref(p: str, article: str = r"(?:the )?") -> str:
    """Regex for a referring phrase: 'the [size] [colour] (shape|object) [position]' or 'this object'."""
    return (
        rf"(?P<{p}ref>(?P<{p}pron>{_PRON})|{article}(?:(?P<{p}size>small|large|big) )?(?:(?P<{p}color>{_C}) )?"
        rf"(?:(?P<{p}shape>{_S})|object|shape|thing)(?: (?P<{p}pos>{_POS}))?)"
    )


def _group(p: str, plural: bool) -> str:
    """Regex for an object class: '[size] [colour] (shape|object)[s]'."""
    s = "s?" if plural else ""
    return rf"(?:(?P<{p}size>small|large|big) )?(?:(?P<{p}color>{_C}) )?(?:(?P<{p}shape>{_S}){s}|objects?|shapes?|things?)"


_COLOR_WORD = r"colou?r"
_IN_IMAGE = r"(?: in the image| in this image| in the picture| in this picture| in the photo)?"
PATTERNS: list[tuple[str, re.Pattern]] = [
    (qtype, re.compile(rx)) for qtype, rx in [
        ("color", rf"what {_COLOR_WORD} is {_ref('a')}"),
        ("color", rf"what is the {_COLOR_WORD} of {_ref('a')}"),
        ("color", rf"which {_COLOR_WORD} (?:is|does) {_ref('a')}(?: have)?"),
        ("shape", rf"what shape is {_ref('a')}"),
        ("shape", rf"what is the shape of {_ref('a')}"),
        ("shape", rf"which shape (?:is|does) {_ref('a')}(?: have)?"),
        ("size", rf"is {_ref('a')} (?:small or large|large or small|small or big|big or small)"),
        ("size", rf"what size is {_ref('a')}"),
        ("size", rf"what is the size of {_ref('a')}"),
        ("count", rf"how many {_group('g', True)}"
                  rf" (?:are there|are in the image|are there in the image|can you see|do you see|are visible)"
                  rf"{_IN_IMAGE}"),
        ("exist", rf"(?:is there|are there|does the image contain|does this image contain|do you see|can you see)"
                  rf" (?:a |an |any )?{_group('g', True)}{_IN_IMAGE}"),
        ("relation", rf"(?:is|does) {_ref('a')} (?:appear |positioned |located )?(?P<rel>{_REL}) {_ref('b')}"),
        # "What is this?" asks for the category, i.e. the shape (PointQA / referential dialogue).
        ("what", rf"what is {_ref('a')}"),
    ]
]
# Visual7W-style pointing questions: the answer is a box, not a word.
V7W_PATTERNS: list[re.Pattern] = [re.compile(rx) for rx in (
    rf"which (?:object|one|box|thing|region) is {_ref('a')}",
    rf"where is {_ref('a')}(?: located)?{_IN_IMAGE}",
    rf"(?:point to|find|locate|show me|select) {_ref('a')}",
)]
# A referring expression on its own (REG output, RefCOCO / VG phrases); indefinite articles allowed.
EXPRESSION = re.compile(rf"(?:(?:it is|this is|that is|there is) )?{_ref('a', r'(?:the |a |an )?')}{_IN_IMAGE}")

_SIZE_SYN = {"big": "large"}
_FILLER = {"color", "colour", "colored", "coloured", "shape", "shaped", "object", "objects", "size", "sized"}
# Which answer words compete with each other, per question type.
ANSWER_KIND: dict[str, str] = {
    "color": "color", "shape": "shape", "what": "shape", "size": "size",
    "count": "number", "exist": "yes/no", "relation": "yes/no",
}
_KIND_VOCAB: dict[str, frozenset[str]] = {
    "color": frozenset(COLORS), "shape": frozenset(SHAPES), "size": frozenset(SIZES), "yes/no": frozenset({"yes", "no"}),
}


_COORDS = re.compile(r"\[\s*-?\d+(?:\.\d+)?(?:\s*[,;]\s*-?\d+(?:\.\d+)?)+\s*\]")


def strip_coordinates(text: str) -> str:
    """Text without inline coordinate lists ('this object[0.1,0.2,0.3,0.4]') or a 'Candidates:' tail."""
    return _COORDS.sub(" ", text.split("Candidates:")[0])


def normalize_question(q: str) -> str:
    q = q.replace("<image>", " ").lower()
    q = re.sub(r"\s+", " ", q).strip()
    return re.sub(r"[\s?.!]+$", "", q)


def normalize_answer(a: str) -> str:
    """VQA-style: lowercase, no punctuation/articles, number words -> digits, 'big' -> 'large', plurals -> singular."""
    words = [w for w in re.sub(r"[^\w\s]", " ", a.lower()).split() if w not in ("a", "an", "the")]
    words = [str(NUMBER_WORDS.index(w)) if w in NUMBER_WORDS else w for w in words]
    words = [_SIZE_SYN.get(w, w) for w in words]
    words = [w[:-1] if w.endswith("s") and w[:-1] in SHAPES else w for w in words]
    if len(words) > 1 and words[-1] in _FILLER:  # "red color", "circle shape"
        words = words[:-1]
    return " ".join(words)


def attrs(m: re.Match, p: str) -> dict[str, str | None]:
    size = m.group(f"{p}size")
    return {"size": _SIZE_SYN.get(size, size), "color": m.group(f"{p}color"), "shape": m.group(f"{p}shape")}


def parse_question(question: str) -> tuple[str, re.Match] | None:
    """(question type, match) for a question of the grammar, else None."""
    q = normalize_question(question)
    for qtype, pattern in PATTERNS:
        m = pattern.fullmatch(q)
        if m:
            return qtype, m
    return None


def reference(text: str) -> re.Match | None:
    """The referring phrase of an expression ("the red circle on the left") or of a pointing / item
    question that holds one ("Where is the red circle?"), as a match with the 'a' groups; else None."""
    t = normalize_question(strip_coordinates(text))
    return next((m for p in (EXPRESSION, *V7W_PATTERNS) if (m := p.fullmatch(t))), None)


def _drop_run(tokens: list[str], run: list[str]) -> list[str]:
    """`tokens` without every occurrence of the contiguous `run`."""
    if not run:
        return tokens
    out, i = [], 0
    while i < len(tokens):
        if tokens[i:i + len(run)] == run:
            i += len(run)
        else:
            out.append(tokens[i])
            i += 1
    return out


def answer_words(answer: str, kind: str, echo: str | None = None) -> set[str]:
    """Answer-vocabulary words of `kind` in a (long) answer, ignoring an echo of the question's reference."""
    tokens = normalize_answer(answer).split()
    if echo:  # "The small star is red." must not count the echoed "small" for a size question
        tokens = _drop_run(tokens, normalize_answer(echo).split())
    if kind == "number":
        found = {t for t in tokens if t.isdigit()}
        return found or ({"0"} if {"no", "none"} & set(tokens) else set())
    return {t for t in tokens if t in _KIND_VOCAB[kind]}


def answer_matches(
    qtype: str, truth: str, answer: str, echo: str | None = None, obj: SceneObject | None = None,
    group: dict[str, str | None] | None = None,
) -> tuple[bool, str]:
    """(correct, reason): exact normalized match, or a long answer naming the truth and no rival word, whose other
    attribute words fit what the question asks about: its object ``obj`` ("What color is the square?" -> "The circle
    is blue." is wrong), or a count / exist question's ``group`` (size / color / shape, None: any)."""
    got = normalize_answer(answer)
    if got == truth:
        return True, "ok"
    kind = ANSWER_KIND[qtype]
    found = answer_words(answer, kind, echo)
    if truth not in found:
        return False, f"answer {got!r} != truth {truth!r}"
    if len(found) > 1:
        return False, f"answer names conflicting {kind} words {sorted(found)} (truth {truth!r})"
    if qtype in ("color", "shape", "size", "what") and obj is not None:   # "It is a small red circle": all must hold
        for k in ("size", "color", "shape"):
            other = answer_words(answer, k, echo) - {getattr(obj, k)}
            if k != kind and other:
                return False, f"answer calls the {obj.shape} {sorted(other)[0]} but it is {getattr(obj, k)}"
    if qtype in ("count", "exist") and group:
        for k, value in group.items():
            other = answer_words(answer, k) - {value} if value and k in _KIND_VOCAB else set()
            if other:
                return False, f"answer names {sorted(other)[0]!r} but the question asks about {value!r} ones"
    return True, "ok (long answer)"


def plain_words(text: str) -> str:
    """Lower-case words, punctuation as spaces, single-spaced: 'The circle, on the LEFT.' -> 'the circle on the left'."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def sole_attributes(at: dict[str, set[str]]) -> dict[str, str | None]:
    """Size / color / shape of ``phrase_attributes`` where the phrase names exactly one (else None), as ``resolve``
    takes them."""
    return {kind: next(iter(at[kind])) if len(at[kind]) == 1 else None for kind in ("size", "color", "shape")}


def phrase_attributes(phrase: str) -> dict[str, set[str]]:
    """Attribute words a free phrase mentions: sizes, colors, shapes (singular), numbers, positions."""
    tokens = normalize_answer(phrase).split()
    text = plain_words(phrase)
    return {
        "size": {t for t in tokens if t in SIZES},
        "color": {t for t in tokens if t in COLORS},
        "shape": {t for t in tokens if t in SHAPES},
        "number": {t for t in tokens if t.isdigit()},
        "pos": {p for p in POSITIONS if re.search(rf"\b{p}\b", text)},
    }


def box_ious(box: Sequence[float], boxes: Sequence[Sequence[float]]) -> list[float]:
    """IoU of an xyxy `box` with each of `boxes` (torchvision ``box_iou``); 0.0 where the union is empty.

    float64, so the values equal the plain Python computation (torchvision keeps the dtype).
    """
    import torch  # lazy, as torchvision below
    from torchvision.ops import box_iou as pairwise_iou  # lazy: importing torchvision takes seconds

    if not len(boxes):
        return []
    iou = pairwise_iou(torch.tensor([box], dtype=torch.float64), torch.tensor(boxes, dtype=torch.float64))[0]
    # Only boxes that overlap have IoU > 0; degenerate ones give 0/0 (nan) or -0.0 instead of 0.0.
    return torch.where(iou > 0, iou, 0.0).tolist()


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    return box_ious(a, [b])[0]
