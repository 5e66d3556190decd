"""Converters read the mini world's official-format files; bad files fail with a clear message."""
from __future__ import annotations

import json
import pickle

import pytest

from genixer.data.mixture import Component, Mixture
from genixer.data.sources.files import AnnotationError
from genixer.data.sources.rec_jsonl import RECJsonl
from genixer.data.sources.refcoco import RefCOCO, read_refs
from genixer.data.sources.vqav2 import VQAv2
from genixer.tasks import CommonVQA, REC, TemplatePool
from genixer.tasks.templates import TEMPLATES_DIR

PATTERN = "train/mw_train_{image_id:012d}.png"


def vqav2(root, **kw):
    a = root / "annotations"
    args = dict(questions=a / "v2_OpenEnded_mini_train_questions.json", annotations=a / "v2_mini_train_annotations.json",
                image_root=root / "images", image_pattern=PATTERN)
    return VQAv2(**{**args, **kw})


def test_vqav2_records_point_at_existing_images(small_world):
    records = vqav2(small_world).load()
    questions = json.loads((small_world / "annotations/v2_OpenEnded_mini_train_questions.json").read_text())["questions"]
    assert len(records) == len(questions) > 60
    for r in records:
        assert r["question"].endswith("?") and r["answer"]
        assert (small_world / "images" / PATTERN.format(image_id=r["image_id"])).exists()


def test_rec_jsonl_records(small_world):
    records = RECJsonl(small_world / "annotations/rec_train.jsonl", small_world / "images").load()
    assert records and all(r["expression"].startswith("the ") for r in records)
    for r in records:
        x1, y1, x2, y2 = r["bbox"]
        assert 0 <= x1 < x2 <= r["width"] and 0 <= y1 < y2 <= r["height"]


def test_missing_and_malformed_files_name_file_and_field(small_world, tmp_path):
    with pytest.raises(AnnotationError, match="nope.json: file not found"):
        vqav2(small_world, questions=tmp_path / "nope.json").load()
    bad = tmp_path / "q.json"
    bad.write_text(json.dumps({"questions": [{"image_id": 1, "question": "What?"}]}))
    with pytest.raises(AnnotationError, match=r"q.json: questions\[0\]: missing field 'question_id'"):
        vqav2(small_world, questions=bad).load()
    rec = tmp_path / "rec.jsonl"
    rec.write_text('{"img_path": "a.png", "expression": "x", "bbox": [1, 2, 3], "height": 5, "width": 5}\n')
    with pytest.raises(AnnotationError, match="rec.jsonl:1: field 'bbox'"):
        RECJsonl(rec, tmp_path).load()
    rec.write_text('{"img_path": "a.png"\n')
    with pytest.raises(AnnotationError, match="rec.jsonl:1: not valid JSON"):
        RECJsonl(rec, tmp_path).load()


def test_mixture_is_deterministic_and_capped(small_world):
    pool = TemplatePool(TEMPLATES_DIR / "generic_instructions.json")
    questions = TemplatePool(TEMPLATES_DIR / "rec_questions.json", placeholder="<expr>")

    def mixture(seed, cap):
        return Mixture({
            "vqa": Component(vqav2(small_world), CommonVQA("common_vqa", "", pool), cap=cap),
            "rec": Component(RECJsonl(small_world / "annotations/rec_train.jsonl", small_world / "images"),
                             REC("rec", "", pool, questions)),
        }, seed=seed)

    a, b = mixture(0, 50).items(), mixture(0, 50).items()
    assert a == b and sum(name == "vqa" for name, _ in a) == 50
    assert mixture(1, 50).items() != a


def test_mixture_identical_in_two_processes(small_world):
    """Two ranks (separate processes, different hash salts) build the same mixture."""
    import os
    import subprocess
    import sys

    code = f"""
import hashlib, json
from genixer.data.mixture import Component, Mixture
from genixer.data.sources.rec_jsonl import RECJsonl
from genixer.tasks import REC, TemplatePool
from genixer.tasks.templates import TEMPLATES_DIR
pool = TemplatePool(TEMPLATES_DIR / "generic_instructions.json")
task = REC("rec", "", pool, TemplatePool(TEMPLATES_DIR / "rec_questions.json", placeholder="<expr>"))
src = RECJsonl({str(small_world / 'annotations/rec_train.jsonl')!r}, {str(small_world / 'images')!r})
items = Mixture({{"rec": Component(src, task, fraction=0.5, repeat=2)}}, seed=7).items()
print(hashlib.sha256(json.dumps(items).encode()).hexdigest(), len(items))
"""
    outs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": salt}).stdout
        for salt in ("1", "2")
    }
    assert len(outs) == 1
    n_rec = len(RECJsonl(small_world / "annotations/rec_train.jsonl", small_world / "images").load())
    assert int(outs.pop().split()[1]) == 2 * int(n_rec * 0.5)


# ---- RefCOCO refs pickles load without running code ---------------------------------------------
REFS = [{"ref_id": 0, "ann_id": 11, "image_id": 1, "split": "train", "category_id": 1, "sent_ids": [0],
         "sentences": [{"sent_id": 0, "sent": "left man", "raw": "Left man", "tokens": ("left", "man")}],
         "score": 0.5, "note": None, "ok": True}]


@pytest.mark.parametrize("protocol", [0, 2, pickle.DEFAULT_PROTOCOL])
def test_refs_pickle_of_plain_data_loads(tmp_path, protocol):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(REFS, protocol=protocol))
    assert read_refs(path) == REFS


def test_python2_refs_pickle_reads_byte_strings_as_utf8(tmp_path):
    # Protocol 2 as Python 2 writes it: SHORT_BINSTRING for str (UTF-8 bytes, one invalid), BINUNICODE for unicode.
    path = tmp_path / "refs(unc).p"
    path.write_bytes(b"\x80\x02]q\x00}q\x01(U\x04sentq\x02U\x05caf\xc3\xa9q\x03U\x03rawq\x04"
                     b"X\x05\x00\x00\x00caf\xc3\xa9q\x05U\x03badq\x06U\x01\xffq\x07ua.")
    assert read_refs(path) == [{"sent": "café", "raw": "café", "bad": "\ufffd"}]


class _Call:
    """Pickles as a call of ``func(*args)``: what a crafted refs file would run on load."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("protocol", [0, 2, pickle.DEFAULT_PROTOCOL])
@pytest.mark.parametrize("call", ["system", "eval"])
def test_refs_pickle_that_calls_code_is_refused(tmp_path, protocol, call):
    import builtins
    import os

    flag = tmp_path / "pwned"
    # The global as the pickle names it: os.system is posix.system; protocols < 3 say __builtin__.
    func, arg, name = {
        "system": (os.system, f"echo pwned > {flag}", r"(posix|os)\.system"),
        "eval": (builtins.eval, f"open({str(flag)!r}, 'w').write('pwned')", r"(builtins|__builtin__)\.eval"),
    }[call]
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{**REFS[0], "sentences": [_Call(func, arg)]}], protocol=protocol))
    with pytest.raises(AnnotationError, match=rf"refs\(unc\)\.p: refused to load global '{name}'"):
        read_refs(path)
    with pytest.raises(AnnotationError, match="refused to load global"):
        RefCOCO(path, tmp_path / "instances.json", tmp_path).load()
    assert not flag.exists()


def _refcoco_with_twins(tmp_path):
    """Image 1: a small and a large red circle (twins by colour), a blue circle (a twin by category only), a red square."""
    anns = [(11, 1, "red", "small"), (12, 1, "red", "large"), (13, 1, "blue", "small"), (14, 2, "red", "small")]
    instances = {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100}],
                 "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}],
                 "annotations": [{"id": i, "image_id": 1, "category_id": c, "bbox": [10 * i - 100, 10, 8, 8],
                                  "attributes": {"color": col, "size": size}} for i, c, col, size in anns]}
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    refs = [{**REFS[0], "ref_id": i, "ann_id": i, "sentences": [{"sent": f"object {i}"}]} for i, *_ in anns]
    (tmp_path / "refs(unc).p").write_bytes(pickle.dumps(refs))
    return lambda **kw: RefCOCO(tmp_path / "refs(unc).p", tmp_path / "instances.json", tmp_path, **kw)


def test_refcoco_twins_by_keeps_objects_a_lookalike_shares_the_image_with(tmp_path):
    refcoco = _refcoco_with_twins(tmp_path)
    ids = lambda **kw: [r["ann_id"] for r in refcoco(**kw).load()]  # noqa: E731
    assert ids() == [11, 12, 13, 14]
    assert ids(twins_by=["color"]) == [11, 12]            # the blue circle and the lone square have no twin
    assert ids(twins_by=[]) == [11, 12, 13]               # the category alone: every circle
    assert ids(twins_by=["color", "size"]) == []          # the red circles differ in size
    with pytest.raises(AnnotationError, match="annotation 11: no attribute 'texture' to find twins by"):
        refcoco(twins_by=["texture"]).load()


def test_refcoco_twins_close_keeps_twins_one_axis_cannot_tell_apart(tmp_path):
    """Red circles: in image 1 at the same height (centres 5 apart in y), in image 2 apart on both axes, in image 3
    one above the other (3 apart in x); a blue circle alone in image 2."""
    centres = [(11, 1, 20, 20), (12, 1, 80, 25), (13, 2, 20, 20), (14, 2, 80, 80), (15, 3, 20, 20), (16, 3, 23, 80)]
    anns = [{"id": i, "image_id": im, "category_id": 1, "bbox": [x - 4, y - 4, 8, 8],
             "attributes": {"color": "red", "size": "small"}} for i, im, x, y in centres]
    anns.append({"id": 17, "image_id": 2, "category_id": 1, "bbox": [46, 46, 8, 8], "attributes": {"color": "blue", "size": "small"}})
    instances = {"images": [{"id": k, "file_name": f"{k}.png", "width": 100, "height": 100} for k in (1, 2, 3)],
                 "categories": [{"id": 1, "name": "circle"}], "annotations": anns}
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    refs = [{**REFS[0], "ref_id": a["id"], "ann_id": a["id"], "sentences": [{"sent": "x"}]} for a in anns]
    (tmp_path / "refs(unc).p").write_bytes(pickle.dumps(refs))
    ids = lambda **kw: [r["ann_id"] for r in RefCOCO(tmp_path / "refs(unc).p", tmp_path / "instances.json",  # noqa: E731
                                                     tmp_path, **kw).load()]
    assert ids(twins_by=["color"]) == [11, 12, 13, 14, 15, 16]
    assert ids(twins_by=["color"], twins_close=0.15) == [11, 12, 15, 16]   # image 2's twins are apart on both axes
    assert ids(twins_by=["color"], twins_close=0.04) == [15, 16]           # 5 apart in y is not within 4
    for bad in ({"twins_close": 0.15}, {"twins_by": ["color"], "twins_close": 1.5}):
        with pytest.raises(ValueError, match="twins_close"):
            RefCOCO(tmp_path / "refs(unc).p", tmp_path / "instances.json", tmp_path, **bad)


def test_box_helpers_equal_torchvision():
    """xywh_to_xyxy and clamp_boxes are plain Python (a tensor per box cost a minute per 20,000 images); they give
    what torchvision's box_convert and clip_boxes_to_image give, values and types, on integer, float, mixed,
    outside, negative-zero and zero-area boxes, and a box with no area left is None."""
    import random

    import torch
    from torchvision.ops import box_convert, clip_boxes_to_image

    from genixer.data.sources.boxes import clamp_boxes, xywh_to_xyxy

    rng = random.Random(0)
    ints = [[rng.randint(-20, 120) for _ in range(4)] for _ in range(200)]
    floats = [[rng.uniform(-20.0, 120.0) for _ in range(4)] for _ in range(200)]
    edges = [[-0.0, 0.0, 0.0, 5.0], [100.0, 3.0, 140.0, 9.0], [10.0, 10.0, 10.0, 20.0], [-5.0, -5.0, -1.0, 50.0]]
    for batch in (ints, floats, [ints[0], floats[0]], edges):
        exact = all(isinstance(v, int) for box in batch for v in box)
        xywh = torch.tensor(batch, dtype=torch.int64 if exact else torch.float64)
        expected = box_convert(xywh, "xywh", "xyxy").tolist()
        got = xywh_to_xyxy(batch)
        assert got == expected and [type(v) for b in got for v in b] == [type(v) for b in expected for v in b]
    for batch in (ints, floats, edges):
        clipped = clip_boxes_to_image(torch.tensor(batch, dtype=torch.float64), (60, 100)).tolist()
        expected = [b if b[2] > b[0] and b[3] > b[1] else None for b in clipped]
        got = clamp_boxes(batch, 100, 60)
        assert got == expected and str(got) == str(expected)   # str: a -0.0 where torchvision gives 0.0 differs
        assert 0 < sum(b is None for b in got) < len(got) or batch is edges
    assert clamp_boxes(edges, 100, 60)[2] is None and clamp_boxes([], 10, 10) == []
