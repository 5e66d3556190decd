"""Contrastive (image, text) pairs from the mini world, for pretraining a tiny CLIP.

One dataset item is one train image. It yields

* a crop of every annotated object at a jittered box (IoU >= ``min_iou`` with the true box),
  paired with one of the object's phrases (any ``expressions`` source: REC expressions, region
  phrases), so the objects of one image are in-batch hard negatives for each other;
* the whole image with one of its captions;
* hard negatives: crops at boxes that overlap every object at IoU < 0.5 (shifted, grown or
  shrunk boxes, what a badly placed REC box looks like), paired with no text.

The collator concatenates items and marks which (image, text) pairs match, by ``view``
(``genixer.filtering.clip.region_image``):

* ``crop``: a crop matches every phrase whose colour and shape words fit its object. A crop shows
  neither position nor size (resized to the input side, a small and a large circle look alike),
  so phrases differing only in those words are not told apart.
* ``spotlight``: the whole image dimmed outside the box matches exactly the phrases that denote
  its object in its image by the world's resolver (what the strict REC check asks), so a twin
  differing only in size or position is a negative, and an ambiguous phrase ("the red circle"
  beside another red circle) matches nothing.

A whole image matches its caption (or an identical one); negatives match nothing.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genixer.backbones.open_clip import ClipCodec
from genixer.data.images import load_rgb
from genixer.filtering.clip import region_image
from genixer.miniworld import COLORS, SHAPES
from genixer.miniworld.grammar import (
    EXPRESSION,
    MIN_IOU,
    attrs,
    box_iou,
    box_ious,
    normalize_question,
    reference,
)
from genixer.miniworld.language import resolve
from genixer.miniworld.scene import SceneObject
from genixer.data.sources.boxes import xywh_to_xyxy
from genixer.data.sources.coco import load_coco
from genixer.data.sources.files import field as get_field
from genixer.data.sources.files import read_json

ATTRIBUTES = ("color", "shape")  # what a crop shows
CODES = {word: k for k, word in enumerate((*COLORS, *SHAPES))}
UNSAID = -1  # a phrase that does not name this attribute fits any value
CROP, WHOLE, NEGATIVE = 0, 1, 2  # image rows
PHRASE, CAPTION, UNPARSED = 0, 1, 2  # text rows; an unparsed phrase matches only its own crop
Box = tuple[float, float, float, float]


def phrase_codes(text: str) -> list[int] | None:
    """Colour and shape codes a referring phrase names (UNSAID where silent); None outside the grammar."""
    m = EXPRESSION.fullmatch(normalize_question(text))
    if m is None or m.group("apron"):
        return None
    named = attrs(m, "a")
    codes = [CODES[named[k]] if named[k] else UNSAID for k in ATTRIBUTES]
    return None if all(c == UNSAID for c in codes) else codes


def phrase_key(text: str) -> tuple | None:
    """(size, colour, shape, position) a phrase says, for the resolver; None outside the grammar."""
    m = reference(text)
    if m is None or m.group("apron"):
        return None
    return (*attrs(m, "a").values(), m.group("apos"))


def text_hash(text: str) -> int:
    """A process-independent id of a caption (workers must agree)."""
    return zlib.crc32(" ".join(text.lower().split()).encode())


def jitter_box(box: Box, rng: np.random.Generator, jitter: float, min_iou: float, width: int, height: int) -> Box:
    """Each edge moved by up to ``jitter`` of the box side, kept at IoU >= ``min_iou`` with ``box``."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    for _ in range(10):
        d = rng.uniform(-jitter, jitter, 4) * (w, h, w, h)
        cand = (max(0.0, x1 + d[0]), max(0.0, y1 + d[1]), min(width, x2 + d[2]), min(height, y2 + d[3]))
        if cand[2] > cand[0] and cand[3] > cand[1] and box_iou(cand, box) >= min_iou:
            return cand
    return box


def off_box(box: Box, objects: Sequence[Box], rng: np.random.Generator, width: int, height: int,
            min_side: float, tries: int = 10) -> Box | None:
    """A box near ``box`` that designates no object (IoU < 0.5 with all): shifted, grown or shrunk."""
    x1, y1, x2, y2 = box
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    for _ in range(tries):
        mode = rng.integers(3)
        if mode == 0:  # shifted by 40-100% of the side along both axes
            scale, shift = 1.0, rng.choice((-1, 1), 2) * rng.uniform(0.4, 1.0, 2)
        elif mode == 1:  # a loose box around the object
            scale, shift = rng.uniform(1.7, 3.0), rng.uniform(-0.2, 0.2, 2)
        else:  # a part of the object
            scale, shift = rng.uniform(0.3, 0.6), rng.uniform(-0.25, 0.25, 2)
        cx_, cy_ = cx + shift[0] * w, cy + shift[1] * h
        half_w, half_h = scale * w / 2, scale * h / 2
        cand = (max(0.0, cx_ - half_w), max(0.0, cy_ - half_h), min(width, cx_ + half_w), min(height, cy_ + half_h))
        if min(cand[2] - cand[0], cand[3] - cand[1]) >= min_side and max(box_ious(cand, objects), default=0.0) < MIN_IOU:
            return cand
    return None


@dataclass
class ImageEntry:
    path: str
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)  # xyxy pixels, one per object
    codes: list[list[int]] = field(default_factory=list)  # colour and shape codes per object
    objects: list[SceneObject] = field(default_factory=list)  # per object, for the resolver (spotlight view)
    phrases: list[list[str]] = field(default_factory=list)  # per object
    captions: list[str] = field(default_factory=list)


def load_entries(instances: str, image_root: str, expressions: Sequence, captions: str | None) -> list[ImageEntry]:
    """Objects (with attributes) from COCO instances; phrases matched to objects by image and box."""
    coco = load_coco(instances)
    entries = {image_id: ImageEntry(str(Path(image_root) / im["file_name"]), im["width"], im["height"])
               for image_id, im in coco.imgs.items()}
    by_box: dict[tuple[str, tuple[int, ...]], tuple[ImageEntry, int]] = {}
    anns = sorted(coco.anns.values(), key=lambda a: a["id"])
    for ann, box in zip(anns, xywh_to_xyxy([a["bbox"] for a in anns])):
        entry = entries[ann["image_id"]]
        values = {"shape": coco.cats[ann["category_id"]]["name"], **get_field(ann, "attributes", instances)}
        by_box[Path(entry.path).name, tuple(round(v) for v in box)] = (entry, len(entry.boxes))
        entry.boxes.append(tuple(box))
        entry.codes.append([CODES[values[k]] for k in ATTRIBUTES])
        entry.objects.append(SceneObject(values["shape"], values["color"], values["size"], tuple(box)))
        entry.phrases.append([])
    for source in expressions:
        for rec in source.load():
            hit = by_box.get((Path(rec["image"]).name, tuple(round(v) for v in rec["bbox"])))
            if hit is not None:  # phrases of boxes that are no object (none in the mini world) are ignored
                hit[0].phrases[hit[1]].append(rec["expression"])
    if captions:
        for ann in get_field(read_json(captions), "annotations", captions):
            entries[ann["image_id"]].captions.append(ann["caption"])
    return [entries[k] for k in sorted(entries)]


class ClipPairDataset(Dataset):
    """Item ``j`` is image ``j % len(entries)``; its random draws depend on (seed, j) only."""

    def __init__(self, entries: list[ImageEntry], transform: Callable, tokenizer: Callable, seed: int = 0,
                 repeats: int = 1, jitter: float = 0.1, min_iou: float = 0.7, negatives: float = 0.5,
                 min_side: float = 12, view: str = "crop") -> None:
        self.entries, self.transform, self.tokenizer = entries, transform, tokenizer
        self.seed, self.repeats, self.view = seed, repeats, view
        self.jitter, self.min_iou, self.negatives, self.min_side = jitter, min_iou, negatives, min_side

    def __len__(self) -> int:
        return len(self.entries) * self.repeats

    def __getitem__(self, j: int) -> dict:
        entry = self.entries[j % len(self.entries)]
        rng = np.random.default_rng([self.seed, j])
        image = load_rgb(entry.path)
        pairs, texts, image_meta, text_meta, negatives = [], [], [], [], []
        for k, (box, codes, phrases) in enumerate(zip(entry.boxes, entry.codes, entry.phrases)):
            if phrases:
                jittered = jitter_box(box, rng, self.jitter, self.min_iou, entry.width, entry.height)
                pairs.append(region_image(image, _pixels(jittered), self.view))
                texts.append(phrases[rng.integers(len(phrases))])
                said = phrase_codes(texts[-1])
                # spotlight rows carry their object's index, for the resolver in the collator
                image_meta.append([CROP, *codes, 0] if self.view == "crop" else [CROP, k, UNSAID, 0])
                text_meta.append([PHRASE if said else UNPARSED, *(said or [UNSAID, UNSAID]), 0])
            if rng.random() < self.negatives:
                bad = off_box(box, entry.boxes, rng, entry.width, entry.height, self.min_side)
                if bad is not None:
                    negatives.append(region_image(image, _pixels(bad), self.view))
        if entry.captions:
            caption = entry.captions[rng.integers(len(entry.captions))]
            pairs.append(image)
            texts.append(caption)
            image_meta.append([WHOLE, UNSAID, UNSAID, text_hash(caption)])
            text_meta.append([CAPTION, UNSAID, UNSAID, text_hash(caption)])
        image_meta += [[NEGATIVE, UNSAID, UNSAID, 0]] * len(negatives)
        item = {
            "images": torch.stack([self.transform(im) for im in pairs + negatives]),
            "pairs": len(pairs),
            "texts": self.tokenizer(texts),
            "image_meta": torch.tensor(image_meta, dtype=torch.long),
            "text_meta": torch.tensor(text_meta, dtype=torch.long),
        }
        if self.view == "spotlight":
            item["scene"] = (entry.objects, entry.width, entry.height)
            item["keys"] = [phrase_key(t) if m[0] != CAPTION else None for t, m in zip(texts, text_meta)]
        return item


def _pixels(box: Box) -> tuple[int, int, int, int]:
    return tuple(round(v) for v in box)  # type: ignore[return-value]


def resolved(items: list[dict], image_meta: torch.Tensor, row_items: torch.Tensor) -> torch.Tensor:
    """[images, texts] bool for spotlight rows: the text's phrase denotes the row's object in the
    row's image (the world's resolver; ambiguous or unknown phrases denote nothing)."""
    keys = [key for it in items for key in it["keys"]]
    distinct = sorted({k for k in keys if k is not None}, key=str)
    index = {k: j for j, k in enumerate(distinct)}
    table = torch.full((len(items), len(distinct) + 1), -1, dtype=torch.long)  # last column: no phrase
    for b, it in enumerate(items):
        objects, width, height = it["scene"]
        for key, j in index.items():
            ref = resolve(objects, width, height, size=key[0], color=key[1], shape=key[2], pos=key[3])[0]
            table[b, j] = -1 if ref is None else ref
    text_keys = torch.tensor([index[k] if k is not None else len(distinct) for k in keys], dtype=torch.long)
    spot = image_meta[:, 0] == CROP
    return spot[:, None] & (table[row_items][:, text_keys] == torch.where(spot, image_meta[:, 1], -2)[:, None])


def positives(image_meta: torch.Tensor, text_meta: torch.Tensor) -> torch.Tensor:
    """[images, texts] bool: which pairs match (rows: kind, colour, shape, caption id)."""
    crop = (image_meta[:, 0] == CROP)[:, None] & (text_meta[:, 0] == PHRASE)[None, :]
    said = text_meta[None, :, 1:3]
    fits = ((image_meta[:, None, 1:3] == said) | (said == UNSAID)).all(-1)
    whole = (image_meta[:, 0] == WHOLE)[:, None] & (text_meta[:, 0] == CAPTION)[None, :]
    same_caption = image_meta[:, None, 3] == text_meta[None, :, 3]
    out = (crop & fits) | (whole & same_caption)
    n = text_meta.shape[0]
    out[torch.arange(n), torch.arange(n)] = True  # row k < n is text k's own image
    return out


def collate_pairs(items: list[dict]) -> dict:
    """Paired images first (row k is text k's own image), then the negatives; plus the match matrix."""
    paired = [it["images"][: it["pairs"]] for it in items]
    negative = [it["images"][it["pairs"]:] for it in items]
    meta = [(it["image_meta"][: it["pairs"]], it["image_meta"][it["pairs"]:]) for it in items]
    image_meta = torch.cat([m[0] for m in meta] + [m[1] for m in meta])
    text_meta = torch.cat([it["text_meta"] for it in items])
    if "scene" not in items[0]:
        match = positives(image_meta, text_meta)
    else:
        row_items = torch.cat([torch.full((len(m[i]),), b) for i in (0, 1) for b, m in enumerate(meta)])
        whole = (image_meta[:, 0] == WHOLE)[:, None] & (text_meta[:, 0] == CAPTION)[None, :]
        match = resolved(items, image_meta, row_items) | (whole & (image_meta[:, None, 3] == text_meta[None, :, 3]))
    return {"images": torch.cat(paired + negative), "texts": torch.cat([it["texts"] for it in items]), "positives": match}


class ClipPairsDataModule(L.LightningDataModule):
    """``batch_size`` counts images (each gives ~2-5 pairs); the ``codec`` (the CLIP's image transform and
    tokenizer) comes from the backbone being trained."""

    def __init__(self, instances: str, image_root: str, expressions: Mapping | Sequence, captions: str | None,
                 codec: ClipCodec, batch_size: int, num_workers: int = 0, seed: int = 0, repeats: int = 1,
                 jitter: float = 0.1, min_iou: float = 0.7, negatives: float = 0.5, min_side: float = 12,
                 view: str = "crop") -> None:
        super().__init__()
        self.instances, self.image_root, self.captions, self.codec = instances, image_root, captions, codec
        self.expressions = list(expressions.values()) if isinstance(expressions, Mapping) else list(expressions)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.options = {"repeats": repeats, "jitter": jitter, "min_iou": min_iou, "negatives": negatives,
                        "min_side": min_side, "view": view}
        self._entries: list[ImageEntry] | None = None

    @property
    def entries(self) -> list[ImageEntry]:
        if self._entries is None:
            self._entries = load_entries(self.instances, self.image_root, self.expressions, self.captions)
        return self._entries

    def dataset(self) -> ClipPairDataset:
        return ClipPairDataset(self.entries, self.codec.image, self.codec.tokenizer, self.seed, **self.options)

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset()
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
            collate_fn=collate_pairs, drop_last=len(dataset) >= self.batch_size, pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0, generator=torch.Generator().manual_seed(self.seed),
        )

