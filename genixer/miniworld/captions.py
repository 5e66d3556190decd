"""Grading of short image descriptions ("What is shown in this image?" -> a caption).

A caption in the training data's forms lists every object of the image, each as '<article> [size] <colour>
<shape>', in one of the caption templates. It is correct when its objects are exactly the image's objects (a
size, where given, must be the object's) and its background phrase, where it has one, is the image's (known
when the oracle knows the world's seed; else only that it is one the world draws).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from .grammar import normalize_question
from .language import DESCRIBE_PROMPTS
from .scene import BACKGROUNDS, COLORS, SHAPES, SIZES, SceneObject
from .verdicts import QAVerdict

_BG = "(?P<bg>[a-z ]+?)"
_LIST = "(?P<list>.+?)"
TEMPLATES = tuple(re.compile(p) for p in (        # CAPTION_TEMPLATES, lower-cased, final period optional
    rf"{_LIST} on an? {_BG} background\.?",
    rf"an? {_BG} background with {_LIST}\.?",
    rf"an image showing {_LIST}\.?",
))
PART = re.compile(rf"an? (?:(?P<size>{'|'.join(SIZES)}) )?(?P<color>{'|'.join(COLORS)}) (?P<shape>{'|'.join(SHAPES)})")
_PROMPTS = {normalize_question(p) for p in DESCRIBE_PROMPTS}


def is_describe_prompt(question: str) -> bool:
    return normalize_question(question) in _PROMPTS


def check_caption(objects: Sequence[SceneObject], caption: str, background: str | None = None) -> QAVerdict:
    """Correct iff the caption names exactly the image's objects and, where it names one, the image's
    ``background`` phrase (None: any the world draws); see the module docstring."""
    text = re.sub(r"\s+", " ", caption.strip().lower())
    m = next((mm for p in TEMPLATES if (mm := p.fullmatch(text))), None)
    if m is None:
        return QAVerdict("unverifiable", "caption", None, "caption outside the mini-world caption forms")
    if "bg" in m.re.groupindex and m.group("bg") not in BACKGROUNDS:
        return QAVerdict("incorrect", "caption", None, f"no background is '{m.group('bg')}'")
    if "bg" in m.re.groupindex and background is not None and m.group("bg") != background:
        return QAVerdict("incorrect", "caption", None, f"says a {m.group('bg')} background, the image has a {background} one")
    parts = re.split(r", | and ", m.group("list"))
    named = [PART.fullmatch(p) for p in parts]
    if not all(named):
        bad = parts[named.index(None)]
        return QAVerdict("unverifiable", "caption", None, f"'{bad}' is not '<a> [size] <colour> <shape>'")
    left = list(objects)
    # parts with a size first: they fit one kind of object, a size-less part fits either size
    for p in sorted(named, key=lambda p: p["size"] is None):
        fit = next((o for o in left if o.color == p["color"] and o.shape == p["shape"]
                    and p["size"] in (None, o.size)), None)
        if fit is None:
            return QAVerdict("incorrect", "caption", None, f"names '{p.group(0)}', which the image does not have "
                             "(or has fewer of)")
        left.remove(fit)
    if left:
        return QAVerdict("incorrect", "caption", None, f"names {len(parts)} of the image's {len(objects)} objects "
                         f"(not the {', '.join(o.label for o in left)})")
    return QAVerdict("correct", "caption", None, "ok")
