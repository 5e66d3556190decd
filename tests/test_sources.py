"""Converters read the mini world's official-format files; bad files fail with a clear message."""
from __future__ import annotations

import json

import pytest

from genixer.data.mixture import Component, Mixture
from genixer.data.sources.files import AnnotationError
from genixer.data.sources.rec_jsonl import RECJsonl
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
