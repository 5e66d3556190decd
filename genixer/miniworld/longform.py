"""Sentence answers, GQA full answers and A-OKVQA rationales for questions of the grammar."""

from __future__ import annotations

import re

from .grammar import attrs, parse_question
from .language import NUMBER_WORDS, RELATIONS, article, plural
from .scene import SceneObject

# GQA (structural, semantic, detailed) type per question type.
GQA_TYPES: dict[str, tuple[str, str, str]] = {
    "color": ("query", "attr", "queryColor"),
    "shape": ("query", "cat", "queryShape"),
    "size": ("query", "attr", "querySize"),
    "count": ("query", "obj", "countObj"),
    "exist": ("verify", "obj", "existObj"),
    "relation": ("verify", "rel", "relVerify"),
}


def cap(text: str) -> str:
    return text[0].upper() + text[1:]


def describe_object(o: SceneObject) -> str:
    """'a small red circle'."""
    return f"{article(o.size)} {o.size} {o.color} {o.shape}"


def _parse(question: str) -> tuple[str, re.Match]:
    parsed = parse_question(question)
    if parsed is None:
        raise ValueError(f"question outside the grammar: {question!r}")
    return parsed


def group_nouns(m: re.Match) -> tuple[str, str]:
    """Singular and plural noun phrase of a count / exist question: ('red star', 'red stars')."""
    g = attrs(m, "g")
    words = [w for w in (g["size"], g["color"]) if w]
    one = " ".join(words + [g["shape"] or "object"])
    many = " ".join(words + [plural(g["shape"]) if g["shape"] else "objects"])
    return one, many


def true_relation(rel: str, holds: bool) -> str:
    """The relation word that is true on `rel`'s axis: itself, or its opposite."""
    rel = rel if rel in RELATIONS else "to the " + rel
    if holds:
        return rel
    return {"to the left of": "to the right of", "to the right of": "to the left of",
            "above": "below", "below": "above"}[rel]


def long_answer(question: str, answer: str, obj: SceneObject | None = None) -> str:
    """'What color is the small star?' + 'red' -> 'The small star is red.' (obj only for 'What is this?')."""
    qtype, m = _parse(question)
    if qtype in ("count", "exist"):
        one, many = group_nouns(m)
        if qtype == "count":
            n = int(answer)
            if n == 0:
                return f"There are no {many} in the image."
            if n == 1:
                return f"There is one {one} in the image."
            return f"There are {NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else n} {many} in the image."
        if answer == "yes":
            return f"Yes, there is {article(one)} {one} in the image."
        return f"No, there is no {one} in the image."
    subj = "it" if m.group("apron") else m.group("aref")
    if qtype == "relation":
        rel = m.group("rel")
        rel = rel if rel in RELATIONS else "to the " + rel
        if answer == "yes":
            return f"Yes, {subj} is {rel} {m.group('bref')}."
        return f"No, {subj} is not {rel} {m.group('bref')}."
    if qtype == "shape":
        return f"{cap(subj)} is {article(answer)} {answer}."
    if qtype == "what":
        if obj is None:
            raise ValueError("a 'what is' answer needs the object")
        return f"{cap(subj)} is {describe_object(obj)}."
    return f"{cap(subj)} is {answer}."


def rationales(question: str, answer: str) -> list[str]:
    """Three short, distinct rationales for a colour / shape / count answer (A-OKVQA)."""
    qtype, m = _parse(question)
    if qtype == "count":
        n = int(answer)
        one, many = group_nouns(m)
        word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
        return [long_answer(question, answer), f"Counting the {many} in the picture gives {word}.",
                f"I can see {'no ' + many if n == 0 else word + ' ' + (one if n == 1 else many)}."]
    ref = m.group("aref")
    value = f"{article(answer)} {answer}" if qtype == "shape" else answer
    if qtype == "color":
        return [long_answer(question, answer), f"The colour of {ref} is {answer}.",
                f"Looking at {ref}, it is clearly {answer}."]
    if qtype == "shape":
        return [long_answer(question, answer), f"{cap(ref)} has the outline of {value}.",
                f"Looking at {ref}, it is clearly {value}."]
    raise ValueError(f"no rationales for {qtype} questions")
