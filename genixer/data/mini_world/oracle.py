"""Ground-truth oracle that grades generated mini-world QA pairs and referring boxes."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .language import NUMBER_WORDS, POSITIONS, RELATIONS, relation_holds, resolve
from .scene import COLORS, SHAPES, SceneObject

CENTRAL_BOX: tuple[float, float, float, float] = (0.25, 0.25, 0.75, 0.75)


@dataclass(frozen=True)
class QAVerdict:
    status: str  # "correct" | "incorrect" | "unverifiable"
    qtype: str | None
    truth: str | None
    reason: str


@dataclass(frozen=True)
class RECVerdict:
    iou: float
    object_index: int | None
    names_color: bool
    names_shape: bool
    correct: bool


# ---- question grammar -------------------------------------------------------------------------
_C = "|".join(COLORS)
_S = "|".join(SHAPES)
_POS = "|".join(POSITIONS)
_REL = "to the left of|to the right of|left of|right of|above|below"


def _ref(p: str) -> str:
    """Regex for a referring phrase: 'the [size] [colour] (shape|object) [position]'."""
    return (
        rf"(?:the )?(?:(?P<{p}size>small|large|big) )?(?:(?P<{p}color>{_C}) )?"
        rf"(?:(?P<{p}shape>{_S})|object|shape|thing)(?: (?P<{p}pos>{_POS}))?"
    )


def _group(p: str, plural: bool) -> str:
    """Regex for an object class: '[size] [colour] (shape|object)[s]'."""
    s = "s?" if plural else ""
    return rf"(?:(?P<{p}size>small|large|big) )?(?:(?P<{p}color>{_C}) )?(?:(?P<{p}shape>{_S}){s}|objects?|shapes?|things?)"


_COLOR_WORD = r"colou?r"
_PATTERNS: list[tuple[str, re.Pattern]] = [
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
                  rf"(?: in the image| in this image)?"),
        ("exist", rf"(?:is there|are there|does the image contain|does this image contain|do you see|can you see)"
                  rf" (?:a |an |any )?{_group('g', True)}(?: in the image| in this image)?"),
        ("relation", rf"(?:is|does) {_ref('a')} (?:appear |positioned |located )?(?P<rel>{_REL}) {_ref('b')}"),
    ]
]
_SIZE_SYN = {"big": "large"}
_FILLER = {"color", "colour", "colored", "coloured", "shape", "shaped", "object", "objects", "size", "sized"}


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


def _attrs(m: re.Match, p: str) -> dict[str, str | None]:
    size = m.group(f"{p}size")
    return {"size": _SIZE_SYN.get(size, size), "color": m.group(f"{p}color"), "shape": m.group(f"{p}shape")}


def _box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class _Image:
    file_name: str
    width: int
    height: int
    objects: tuple[SceneObject, ...]


class Oracle:
    """Grades answers and boxes against COCO-instances ground truth of the mini world."""

    def __init__(self, images: dict[int, _Image]):
        self._images = images
        self._by_name: dict[str, int] = {}
        for image_id, im in images.items():
            self._by_name[im.file_name] = image_id
            self._by_name[PurePosixPath(im.file_name).name] = image_id

    @classmethod
    def from_instances(cls, path: str | Path) -> "Oracle":
        data = json.loads(Path(path).read_text())
        cats = {c["id"]: c["name"] for c in data["categories"]}
        objs: dict[int, list[SceneObject]] = defaultdict(list)
        for a in sorted(data["annotations"], key=lambda a: a["id"]):
            x, y, w, h = a["bbox"]
            attrs = a.get("attributes", {})
            objs[a["image_id"]].append(SceneObject(cats[a["category_id"]], attrs["color"], attrs["size"], (x, y, x + w, y + h)))
        images = {
            im["id"]: _Image(im["file_name"], im["width"], im["height"], tuple(objs.get(im["id"], ())))
            for im in data["images"]
        }
        return cls(images)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def image_ids(self) -> list[int]:
        return sorted(self._images)

    def image_id(self, path_or_file_name: str) -> int:
        """Id of an image given its file name, relative path or any path ending in it."""
        p = str(path_or_file_name).replace("\\", "/")
        if p in self._by_name:
            return self._by_name[p]
        name = PurePosixPath(p).name
        if name in self._by_name:
            return self._by_name[name]
        raise KeyError(f"image {path_or_file_name!r} is not in this oracle's instances file ({len(self)} images)")

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

    # ---- QA ------------------------------------------------------------------------------------
    def truth(self, image_id: int, question: str) -> QAVerdict:
        """Parse `question` and compute its true answer (status 'correct' here just means 'answerable')."""
        im = self._image(image_id)
        q = normalize_question(question)
        for qtype, pattern in _PATTERNS:
            m = pattern.fullmatch(q)
            if m:
                return self._answer(im, qtype, m)
        return QAVerdict("unverifiable", None, None, "question outside the mini-world grammar")

    def _answer(self, im: _Image, qtype: str, m: re.Match) -> QAVerdict:
        objs, w, h = im.objects, im.width, im.height
        if qtype in ("count", "exist"):
            at = _attrs(m, "g")
            n = sum(
                1 for o in objs
                if all(v is None or getattr(o, k) == v for k, v in at.items())
            )
            truth = str(n) if qtype == "count" else ("yes" if n else "no")
            return QAVerdict("correct", qtype, truth, "ok")
        idx, why = resolve(objs, w, h, pos=m.group("apos"), **_attrs(m, "a"))
        if idx is None:
            return QAVerdict("incorrect", qtype, None, why)
        if qtype != "relation":
            return QAVerdict("correct", qtype, getattr(objs[idx], qtype), "ok")
        jdx, why = resolve(objs, w, h, pos=m.group("bpos"), **_attrs(m, "b"))
        if jdx is None:
            return QAVerdict("incorrect", qtype, None, why + " (second object)")
        if idx == jdx:
            return QAVerdict("unverifiable", qtype, None, "both references denote the same object")
        rel = m.group("rel")
        rel = rel if rel in RELATIONS else "to the " + rel
        holds = relation_holds(objs[idx], objs[jdx], rel, w, h)
        if holds is None:
            return QAVerdict("unverifiable", qtype, None, "position gap too small to judge")
        return QAVerdict("correct", qtype, "yes" if holds else "no", "ok")

    def check_qa(self, image_id: int, question: str, answer: str) -> QAVerdict:
        """'correct' iff the question parses, refers to a unique object and the normalized answer is true."""
        t = self.truth(image_id, question)
        if t.status != "correct":
            return t
        got = normalize_answer(answer)
        if got == t.truth:
            return QAVerdict("correct", t.qtype, t.truth, "ok")
        return QAVerdict("incorrect", t.qtype, t.truth, f"answer {got!r} != truth {t.truth!r}")

    # ---- REC -----------------------------------------------------------------------------------
    def check_rec(self, image_id: int, text: str, box: tuple[float, float, float, float]) -> RECVerdict:
        """`box` is normalized xyxy in [0, 1] w.r.t. the original image size."""
        im = self._image(image_id)
        pix = (box[0] * im.width, box[1] * im.height, box[2] * im.width, box[3] * im.height)
        best, best_iou = None, 0.0
        for i, o in enumerate(im.objects):
            iou = _box_iou(pix, o.box)
            if best is None or iou > best_iou:
                best, best_iou = i, iou
        if best is None:
            return RECVerdict(0.0, None, False, False, False)
        o, t = im.objects[best], text.lower()
        names_color = re.search(rf"\b{o.color}\b", t) is not None
        names_shape = re.search(rf"\b{o.shape}s?\b", t) is not None
        return RECVerdict(best_iou, best, names_color, names_shape, best_iou >= 0.5 and names_color and names_shape)


def majority_answers(vqav2_annotations_path: str | Path) -> dict[str, str]:
    """Most common multiple_choice_answer per question_type (ties -> alphabetically first)."""
    data = json.loads(Path(vqav2_annotations_path).read_text())
    counts: dict[str, Counter] = defaultdict(Counter)
    for a in data["annotations"]:
        counts[a["question_type"]][a["multiple_choice_answer"]] += 1
    return {qt: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for qt, c in sorted(counts.items())}
