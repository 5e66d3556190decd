"""Per-image region language: RefCOCO sentences, Visual Genome phrases, PointQA Local and V7W pointing."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .language import POSITIONS, article, ref_text, referring_expressions, resolve
from .scene import Scene, SceneObject
from .shapes import shape_mask

POINTQA_TEMPLATES: dict[str, tuple[str, ...]] = {
    "color": ("What color is this object?", "What is the color of this?", "What color is this?"),
    "shape": ("What shape is this?", "What shape is this object?"),
    "what": ("What is this?", "What is this object?"),
    "size": ("Is this object small or large?", "What size is this object?", "Is this small or large?"),
}
V7W_TEMPLATES = ("Which object is {ref}?", "Which one is {ref}?", "Where is {ref}?", "Point to {ref}.")
VG_EXTRA = ("{color} {shape}", "{a_color} {color} {shape}", "{a_size} {size} {shape}", "{size} {color} {shape}")


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


@lru_cache(maxsize=4096)
def _solid_pixels(shape: str, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(xs, ys) of mask pixels well inside the shape (coverage >= 200/255)."""
    ys, xs = np.nonzero(np.asarray(shape_mask(shape, side)) >= 200)
    return xs, ys


def point_in(o: SceneObject, rng: np.random.Generator) -> list[int]:
    """A pixel (x, y) inside the drawn object, not just inside its box."""
    xs, ys = _solid_pixels(o.shape, o.side)
    k = int(rng.integers(len(xs)))
    return [o.origin[0] + int(xs[k]), o.origin[1] + int(ys[k])]


def unique_descriptions(scene: Scene, idx: int) -> list[str]:
    """Every grammar description ('the object on the left', 'the large red circle', ...) that resolves to idx (a
    position word that picks among no rivals only where it holds: ``resolve``)."""
    o, out = scene.objects[idx], []
    objs, w, h = scene.objects, scene.width, scene.height
    for color in (o.color, None):
        for shape in (o.shape, None):
            for size in (None, o.size):
                for pos in (None, *POSITIONS):
                    if resolve(objs, w, h, size=size, color=color, shape=shape, pos=pos)[0] == idx:
                        out.append(ref_text(size, color, shape, pos))
    return out


def refcoco_sentences(scene: Scene, rng: np.random.Generator) -> list[tuple[int, list[str]]]:
    """(object index, 1-2 sentences) per uniquely referable object; the second without 'the'."""
    out = []
    for idx, primary in referring_expressions(scene):
        sents = [primary]
        others = [d for d in unique_descriptions(scene, idx) if d != primary]
        if others and rng.random() < 0.6:
            sents.append(_pick(rng, others).removeprefix("the "))
        out.append((idx, sents))
    return out


def vg_phrases(scene: Scene, rng: np.random.Generator) -> list[tuple[int, str]]:
    """(object index, phrase) regions: 'a small red circle' per object, sometimes a second phrasing."""
    out = []
    for idx, o in enumerate(scene.objects):
        out.append((idx, f"{article(o.size)} {o.size} {o.color} {o.shape}"))
        if rng.random() < 0.5:
            words = {"color": o.color, "shape": o.shape, "size": o.size,
                     "a_color": article(o.color), "a_size": article(o.size)}
            out.append((idx, _pick(rng, VG_EXTRA).format(**words)))
    return out


def pointqa_local(scene: Scene, rng: np.random.Generator) -> list[dict[str, Any]]:
    """1-2 questions about the object a box / point designates ('What color is this object?')."""
    objs = scene.objects
    n = min(len(objs), 1 + int(rng.random() < 0.5))
    out = []
    for idx in rng.permutation(len(objs))[:n]:
        o = objs[int(idx)]
        qtype = _pick(rng, tuple(POINTQA_TEMPLATES))
        answer = o.shape if qtype == "what" else getattr(o, qtype)
        out.append({"question": _pick(rng, POINTQA_TEMPLATES[qtype]), "answer": answer,
                    "bbox": list(o.box), "point": point_in(o, rng)})
    return out


def v7w_pointing(scene: Scene, rng: np.random.Generator) -> dict[str, Any] | None:
    """'Which object is the red circle?' with every object box as a candidate (images of >= 2 objects)."""
    refs = referring_expressions(scene)
    if len(scene.objects) < 2 or not refs:
        return None
    idx, ref = _pick(rng, refs)
    target = scene.objects[idx]
    candidates = [list(scene.objects[int(k)].box) for k in rng.permutation(len(scene.objects))]
    return {"question": _pick(rng, V7W_TEMPLATES).format(ref=ref), "candidates": candidates,
            "answer": list(target.box), "point": point_in(target, rng)}
