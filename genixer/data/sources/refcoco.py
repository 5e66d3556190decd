"""RefCOCO/+/g in the refer-API layout (``refs(*).p`` + ``instances.json``) -> rec / reg records."""
from __future__ import annotations

import pickle
from pathlib import Path

from genixer.data.sources.boxes import Skipped, as_box, clamp_box
from genixer.data.sources.coco import load_coco
from genixer.data.sources.files import AnnotationError, field


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a class or function (its dotted name is the message)."""


class _PlainUnpickler(pickle.Unpickler):
    """Builds only what pickle opcodes build by themselves: lists, dicts, tuples, strings, numbers,
    None and bools (any protocol; Python 2 ``str`` / ``unicode`` included). Refs files hold
    nothing else, and every global is a class or function a crafted file could call."""

    def find_class(self, module: str, name: str):
        raise _RefusedGlobal(f"{module}.{name}")


def read_refs(path: Path) -> list[dict]:
    """The refs list of a refer-API pickle, read without running code."""
    if not path.is_file():
        raise AnnotationError(f"{path}: file not found")
    try:
        with path.open("rb") as f:
            # The released pickles come from Python 2; their byte strings are UTF-8 text.
            refs = _PlainUnpickler(f, encoding="utf-8", errors="replace").load()
    except _RefusedGlobal as err:
        raise AnnotationError(f"{path}: refused to load global '{err}': a refs pickle holds only lists, dicts, "
                              "strings and numbers, and loading this one would call code") from None
    except Exception as err:  # pickle raises many types on corrupt input
        raise AnnotationError(f"{path}: not a readable refs pickle ({type(err).__name__}: {err})") from None
    if not isinstance(refs, list):
        raise AnnotationError(f"{path}: expected a pickled list of refs, got {type(refs).__name__}")
    return refs


class RefCOCO:
    """One record per sentence of each ref in ``split`` (None: all splits).

    The box is the referred instance's COCO ``bbox`` (xywh) as pixel xyxy, clamped to the image;
    image names and sizes come from ``instances.json``. Degenerate boxes are counted in ``skipped``.
    ``twins_by`` (a list of attribute names) keeps only refs whose object has a twin: another instance
    in its image of the same category with the same values of those ``attributes`` (``[]``: the
    category alone), the objects an expression must tell apart by size or position. ``twins_close`` (a
    fraction of the image side, with ``twins_by``) keeps only those with a twin whose centre is that close on
    one axis: a position word must then name the other axis.
    """

    def __init__(self, refs: str, instances: str, image_root: str, split: str | None = "train",
                 twins_by: list[str] | None = None, twins_close: float | None = None) -> None:
        self.refs, self.instances, self.image_root = Path(refs), Path(instances), Path(image_root)
        self.split, self.twins_by = split, None if twins_by is None else [str(a) for a in twins_by]
        if twins_close is not None and (self.twins_by is None or not 0 < twins_close < 1):
            raise ValueError(f"twins_close must be a fraction in (0, 1) of the image side, with twins_by; got "
                             f"{twins_close!r} (twins_by: {twins_by!r})")
        self.twins_close = twins_close
        self.skipped = Skipped()

    def load(self) -> list[dict]:
        refs, coco = read_refs(self.refs), load_coco(self.instances)
        splits = sorted({str(r.get("split")) for r in refs if isinstance(r, dict)})
        if self.split is not None and self.split not in splits:
            raise AnnotationError(f"{self.refs}: unknown split {self.split!r} (has {', '.join(splits)})")
        self.skipped = Skipped()
        records = []
        for i, ref in enumerate(refs):
            where = f"{self.refs}: refs[{i}]"
            if self.split is not None and field(ref, "split", where) != self.split:
                continue
            ann_id = field(ref, "ann_id", where)
            if ann_id not in coco.anns:
                raise AnnotationError(f"{where}: field 'ann_id' {ann_id!r} is not in {self.instances}")
            ann = coco.anns[ann_id]
            info = coco.imgs[ann["image_id"]]
            if self.twins_by is not None:
                found = twins(coco, ann, self.twins_by)
                if self.twins_close is not None:
                    found = [t for t in found if close_on_an_axis(ann, t, info, self.twins_close)]
                if not found:
                    continue
            box = clamp_box(as_box(ann["bbox"], f"{self.instances}: annotation {ann_id}", "bbox", xywh=True),
                            info["width"], info["height"])
            sentences = field(ref, "sentences", where)
            if box is None:
                self.skipped["degenerate box"] += len(sentences)
                continue
            for j, sent in enumerate(sentences):
                records.append({
                    "image": str(self.image_root / info["file_name"]),
                    "width": int(info["width"]), "height": int(info["height"]),
                    "image_id": ann["image_id"], "ref_id": ref.get("ref_id"), "ann_id": ann_id,
                    "expression": str(field(sent, "sent", f"{where}: sentences[{j}]")).strip(),
                    "bbox": box,
                })
        return records


def close_on_an_axis(ann: dict, other: dict, image: dict, fraction: float) -> bool:
    """The two boxes' centres are within ``fraction`` of the image's width apart in x, or of its height in y."""
    (x, y, w, h), (ox, oy, ow, oh) = ann["bbox"], other["bbox"]
    return (abs(x + w / 2 - ox - ow / 2) <= fraction * image["width"]
            or abs(y + h / 2 - oy - oh / 2) <= fraction * image["height"])


def twins(coco, ann: dict, attributes: list[str]) -> list[dict]:
    """The other instances of ``ann``'s image with its category and its values of ``attributes``."""
    def key(a: dict) -> tuple:
        values = a.get("attributes") or {}
        return (a["category_id"], *(values.get(name) for name in attributes))
    mine = key(ann)
    if None in mine[1:]:
        raise AnnotationError(f"annotation {ann['id']}: no attribute {attributes[mine.index(None, 1) - 1]!r} to find "
                              f"twins by (twins_by: {attributes})")
    return [other for other in coco.imgToAnns[ann["image_id"]] if other["id"] != ann["id"] and key(other) == mine]
