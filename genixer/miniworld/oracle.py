"""Ground-truth oracle that grades generated mini-world samples of every task family."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Mapping, Sequence

from genixer.data.sources.boxes import xywh_to_xyxy
from genixer.data.sources.coco import load_coco

from .captions import check_caption, is_describe_prompt
from .checks import FamilyChecks
from .grammar import (
    MIN_IOU,
    PATTERNS,
    answer_matches,
    attrs,
    box_iou,
    box_ious,
    normalize_answer,
    normalize_question,
    parse_question,
    phrase_attributes,
    plain_words,
    reference,
    sole_attributes,
)
from .grounding import GroundedChecks, chain_contradiction
from .language import POSITIONS, RELATIONS, relation_holds, resolve
from .naming import ID_OFFSETS
from .scene import Scene, SceneObject, sample_scene
from .verdicts import QAVerdict, RECVerdict

if TYPE_CHECKING:
    from pycocotools.coco import COCO

CENTRAL_BOX: tuple[float, float, float, float] = (0.25, 0.25, 0.75, 0.75)
# Normalized points are rounded (3 decimals); boxes are >= 3 px apart, so 1 px of slack stays unambiguous.
POINT_SLACK = 1.0
_PATTERNS = PATTERNS  # old private name
_box_iou = box_iou
__all__ = ["CENTRAL_BOX", "MIN_IOU", "Oracle", "QAVerdict", "RECVerdict", "majority_answers", "normalize_answer",
           "normalize_question"]


@dataclass(frozen=True)
class _Image:
    file_name: str
    width: int
    height: int
    objects: tuple[SceneObject, ...]


class Oracle(FamilyChecks, GroundedChecks):
    """Grades answers and boxes against COCO-instances ground truth of the mini world.

    Boxes and points given to any check are normalized to [0, 1] w.r.t. the original image size
    (xyxy boxes, (x, y) points), as the task parsers produce them.
    """

    def __init__(self, images: dict[int, _Image], seed: int | None = None):
        self._images = images
        self.seed = seed  # the world's seed: what the instances file does not record (a background) is redrawn
        self._scenes: dict[int, Scene] = {}
        self._by_name: dict[str, int] = {}
        for image_id, im in images.items():
            self._by_name[im.file_name] = image_id
            self._by_name[PurePosixPath(im.file_name).name] = image_id

    @classmethod
    def from_instances(cls, path: str | Path, seed: int | None = None) -> "Oracle":
        return cls.from_coco(load_coco(path), seed)

    @classmethod
    def from_coco(cls, coco: "COCO", seed: int | None = None) -> "Oracle":
        """Objects of each image in annotation id order; annotations carry ``attributes`` {color, size}."""
        anns = sorted(coco.anns.values(), key=lambda a: a["id"])
        boxes = xywh_to_xyxy([a["bbox"] for a in anns])
        objs: dict[int, list[SceneObject]] = defaultdict(list)
        for a, box in zip(anns, boxes):
            at, shape = a.get("attributes", {}), coco.cats[a["category_id"]]["name"]
            objs[a["image_id"]].append(SceneObject(shape, at["color"], at["size"], tuple(box)))
        images = {
            image_id: _Image(im["file_name"], im["width"], im["height"], tuple(objs.get(image_id, ())))
            for image_id, im in coco.imgs.items()
        }
        return cls(images, seed)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def image_ids(self) -> list[int]:
        return sorted(self._images)

    def file_name(self, image_id: int) -> str:
        """The image's file name under the world's images/ ('val/mw_val_000002000001.png')."""
        return self._image(image_id).file_name

    def image_id(self, path_or_file_name: str) -> int:
        """Id of an image given its file name, relative path or any path ending in it."""
        p = str(path_or_file_name).replace("\\", "/")
        if p in self._by_name:
            return self._by_name[p]
        name = PurePosixPath(p).name
        if name in self._by_name:
            return self._by_name[name]
        raise KeyError(f"image {path_or_file_name!r} is not in this oracle's instances file ({len(self)} images)")

    def background(self, image_id: int) -> str | None:
        """The image's background phrase ('textured light grey'); None without a seed."""
        return None if self.seed is None else self.scene(image_id).background.phrase

    def scene(self, image_id: int) -> Scene:
        """The image's scene redrawn from the world's seed (checked against the instances file's objects)."""
        if self.seed is None:
            raise ValueError("this oracle has no world seed to redraw scenes with")
        if image_id not in self._scenes:
            im = self._image(image_id)
            split = PurePosixPath(im.file_name).parts[0]
            scene = sample_scene(self.seed, split, image_id - 1 - ID_OFFSETS[split])
            if sorted(o.box for o in scene.objects) != sorted(tuple(round(v) for v in o.box) for o in im.objects):
                raise ValueError(f"seed {self.seed} does not draw image {im.file_name} of this instances file")
            self._scenes[image_id] = scene
        return self._scenes[image_id]

    def pixels(self, image_id: int, box: Sequence[float]) -> tuple[float, float, float, float]:
        """A normalized xyxy box in the original image's pixels."""
        im = self._image(image_id)
        return box[0] * im.width, box[1] * im.height, box[2] * im.width, box[3] * im.height

    def _image(self, image_id: int) -> _Image:
        try:
            return self._images[image_id]
        except KeyError:
            raise KeyError(f"image id {image_id} is not in this oracle's instances file") from None

    def objects(self, image_id: int) -> tuple[SceneObject, ...]:
        return self._image(image_id).objects

    def size(self, image_id: int) -> tuple[int, int]:
        """(width, height) of the original image."""
        im = self._image(image_id)
        return im.width, im.height

    # ---- designation by box / point -------------------------------------------------------------
    def best_object(self, image_id: int, box: Sequence[float]) -> tuple[int | None, float]:
        """(index, IoU) of the object a normalized box overlaps best; (None, 0.0) in an empty image."""
        ious = box_ious(self.pixels(image_id, box), [o.box for o in self.objects(image_id)])
        if not ious:
            return None, 0.0
        best = max(range(len(ious)), key=ious.__getitem__)  # the first of equal maxima
        return best, ious[best]

    def object_at(self, image_id: int, point: Sequence[float]) -> int | None:
        """Index of the object whose box contains a normalized point, with POINT_SLACK pixels of slack."""
        im = self._image(image_id)
        x, y = point[0] * im.width, point[1] * im.height
        for i, o in enumerate(im.objects):
            x1, y1, x2, y2 = o.box
            if x1 - POINT_SLACK <= x <= x2 + POINT_SLACK and y1 - POINT_SLACK <= y <= y2 + POINT_SLACK:
                return i
        return None

    # ---- QA ------------------------------------------------------------------------------------
    def truth(self, image_id: int, question: str, designated: Mapping[str, int] | None = None) -> QAVerdict:
        """Parse `question` and compute its true answer (status 'correct' here just means 'answerable').

        `designated` maps a reference slot ('a' = first object, 'b' = second of a relation) to the
        object a box or point designates; deictic references ('this object') need one.
        """
        return self._truth(image_id, question, designated)[0]

    def _truth(self, image_id: int, question: str, designated: Mapping[str, int] | None = None,
               ) -> tuple[QAVerdict, re.Match | None]:
        im = self._image(image_id)
        parsed = parse_question(question)
        if parsed is None:
            return QAVerdict("unverifiable", None, None, "question outside the mini-world grammar"), None
        qtype, m = parsed
        return self._answer(im, qtype, m, designated or {}), m

    def _referent(self, im: _Image, m: re.Match, p: str, designated: Mapping[str, int]) -> tuple[int | None, str]:
        if p in designated:
            return designated[p], "ok"
        if m.group(f"{p}pron"):
            return None, f"'{m.group(f'{p}ref')}' needs a box or point"
        return resolve(im.objects, im.width, im.height, pos=m.group(f"{p}pos"), **attrs(m, p))

    def _answer(self, im: _Image, qtype: str, m: re.Match, designated: Mapping[str, int]) -> QAVerdict:
        objs, w, h = im.objects, im.width, im.height
        if qtype in ("count", "exist"):
            at = attrs(m, "g")
            n = sum(1 for o in objs if all(v is None or getattr(o, k) == v for k, v in at.items()))
            truth = str(n) if qtype == "count" else ("yes" if n else "no")
            return QAVerdict("correct", qtype, truth, "ok")
        idx, why = self._referent(im, m, "a", designated)
        if idx is None:
            status = "unverifiable" if m.group("apron") and "a" not in designated else "incorrect"
            return QAVerdict(status, qtype, None, why)
        if qtype != "relation":
            return QAVerdict("correct", qtype, getattr(objs[idx], "shape" if qtype == "what" else qtype), "ok", idx)
        jdx, why = self._referent(im, m, "b", designated)
        if jdx is None:
            status = "unverifiable" if m.group("bpron") and "b" not in designated else "incorrect"
            return QAVerdict(status, qtype, None, why + " (second object)", idx)
        if idx == jdx:
            return QAVerdict("unverifiable", qtype, None, "both references denote the same object", idx)
        rel = m.group("rel")
        rel = rel if rel in RELATIONS else "to the " + rel
        holds = relation_holds(objs[idx], objs[jdx], rel, w, h)
        if holds is None:
            return QAVerdict("unverifiable", qtype, None, "position gap too small to judge", idx)
        return QAVerdict("correct", qtype, "yes" if holds else "no", "ok", idx, jdx)

    def _grade(self, image_id: int, t: QAVerdict, m: re.Match | None, answer: str) -> QAVerdict:
        """Grade `answer` against an answerable truth `t` (short or long answer)."""
        assert t.truth is not None and t.qtype is not None and m is not None
        echo = m.group("aref") if "aref" in m.re.groupindex else None
        obj = self._image(image_id).objects[t.object_index] if t.object_index is not None else None
        group = attrs(m, "g") if t.qtype in ("count", "exist") else None
        ok, reason = answer_matches(t.qtype, t.truth, answer, echo, obj, group)
        if ok and t.qtype == "relation" and (said := chain_contradiction(t.qtype, m, answer)):
            ok, reason = False, f"long answer contradicts itself: {said}"
        if ok and t.qtype in ("color", "shape", "size", "what") and \
                (where := self._answer_position(image_id, t.object_index, answer, echo)):
            ok, reason = False, where
        return QAVerdict("correct" if ok else "incorrect", t.qtype, t.truth, reason, t.object_index, t.other_index)

    def _answer_position(self, image_id: int, index: int, answer: str, echo: str | None) -> str | None:
        """Why a position word a long answer adds about the asked object ('It is a red circle on the right.') does
        not pick it, with the answer's own attribute words, as ``resolve`` reads a referring expression; else None.
        The question's own reference, echoed, is left out (the question's resolution already read it)."""
        text = plain_words(answer).replace(plain_words(echo), " ") if echo else plain_words(answer)
        at = phrase_attributes(text)
        pos = next((p for p in POSITIONS if p in at["pos"]), None)
        if pos is None:
            return None
        im = self._image(image_id)
        ref, why = resolve(im.objects, im.width, im.height, pos=pos, **sole_attributes(at))
        if ref == index:
            return None
        asked = im.objects[index].label
        picked = f" ({why})" if ref is None else " but another" if im.objects[ref].label == asked else \
            f" but the {im.objects[ref].label}"
        return f"the answer's '{pos}' does not pick the {asked}{picked}"

    def check_qa(self, image_id: int, question: str, answer: str) -> QAVerdict:
        """'correct' iff the question parses, refers to a unique object and the answer is true.

        Short answers must match after VQA normalization; long sentence answers ("The small star
        is red.") are correct iff they name the true answer word and no rival word of its kind.
        A description prompt ("What is shown in this image?") takes a caption (``check_caption``).
        """
        if is_describe_prompt(question):
            return check_caption(self._image(image_id).objects, answer, self.background(image_id))
        t, m = self._truth(image_id, question)
        if t.status != "correct":
            return t
        return self._grade(image_id, t, m, answer)

    # ---- REC -----------------------------------------------------------------------------------
    def check_rec(self, image_id: int, text: str, box: Sequence[float]) -> RECVerdict:
        """Correct iff the expression denotes exactly one object (the resolver that wrote the training
        expressions) and `box` (normalized xyxy) hits that object at IoU >= 0.5.

        `text` is the expression ("the small red circle on the left") or an item question that
        holds it ("Where is the small red circle on the left?"); outside the grammar: unverifiable.
        """
        im = self._image(image_id)
        best, best_iou = self.best_object(image_id, box)
        m = reference(text)
        if m is None or m.group("apron"):
            reason = "expression outside the mini-world grammar" if m is None else "a deictic expression names no object"
            return RECVerdict(False, "unverifiable", reason, None, best_iou, best)
        ref, why = resolve(im.objects, im.width, im.height, pos=m.group("apos"), **attrs(m, "a"))
        if ref is None:
            return RECVerdict(False, "incorrect", why, None, best_iou, best)
        iou = box_iou(self.pixels(image_id, box), im.objects[ref].box)
        if iou < MIN_IOU:
            return RECVerdict(False, "incorrect", f"box misses the {im.objects[ref].label} (IoU {iou:.2f})",
                              ref, iou, best)
        return RECVerdict(True, "correct", "ok", ref, iou, best)


def world_seed(world_file: str | Path | None) -> int | None:
    """The seed a world's ``world.json`` records (it redraws what the instances file does not: backgrounds); None
    without a file."""
    return json.loads(Path(world_file).read_text())["seed"] if world_file else None


def majority_answers(vqav2_annotations_path: str | Path) -> dict[str, str]:
    """Most common multiple_choice_answer per question_type (ties -> alphabetically first)."""
    data = json.loads(Path(vqav2_annotations_path).read_text())
    counts: dict[str, Counter] = defaultdict(Counter)
    for a in data["annotations"]:
        counts[a["question_type"]][a["multiple_choice_answer"]] += 1
    return {qt: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for qt, c in sorted(counts.items())}
