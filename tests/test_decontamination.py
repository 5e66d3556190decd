"""Decontamination: the evaluation-image index, exact and near matches, thresholds from a calibration set
disjoint from the test images, and the filter stage dropping contaminated rows with counts in its manifest."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import open_dict
from PIL import Image, ImageDraw

from conftest import accepted, compose_config, write_generation_run
from genixer.data import decontamination as dc
from genixer.data.decontamination import (MAX_DISTANCE, MAX_PIXEL_DIFF, EvalImageIndex, calibrate, flag_rows, jpeg, resized,
                                          synthetic_image)
from genixer.filtering.selection import Flagged, select
from genixer.pipelines import filter as filter_stage

CALIBRATION = range(0, 160)      # seeds of the calibration images (the shipped thresholds came from seeds 0-599)
TEST = range(10_000, 10_040)     # the test set's evaluation images: seeds no calibration ever saw
OTHERS = range(20_000, 20_040)   # distinct generated images
NEAR = {"jpeg q50": lambda im: jpeg(im, 50), "jpeg q75": lambda im: jpeg(im, 75), "jpeg q95": lambda im: jpeg(im, 95),
        "resize 0.5x": lambda im: resized(im, 0.5), "resize 0.75x": lambda im: resized(im, 0.75),
        "resize 1.5x": lambda im: resized(im, 1.5)}


def test_shipped_thresholds_hold_on_the_calibration_set():
    """The shipped pair (chosen by ``calibrate`` on seeds 0-599, docs/decontamination.md) on a calibration subset:
    the thumbnail check separates copies from distinct images at least up to the shipped pHash distance, no
    distinct pair matches, and every copy of a structured image (even seeds) is found."""
    images = [synthetic_image(s) for s in CALIBRATION]
    result = calibrate(images, at=(MAX_DISTANCE, MAX_PIXEL_DIFF))
    assert result["max_distance"] >= MAX_DISTANCE
    assert result["at"]["distinct_matched"] == 0 and result["distinct_pairs"] == 160 * 159 // 2
    assert sum(result["at"]["copies_found"].values()) >= 0.99 * result["copy_pairs"]
    structured = calibrate(images[::2], at=(MAX_DISTANCE, MAX_PIXEL_DIFF))["at"]
    assert set(structured["copies_found"].values()) == {80} and structured["distinct_matched"] == 0


def flat_scene(background: tuple, shapes: list[tuple], size=(200, 160)) -> Image.Image:
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    for x, y, s, colour in shapes:
        draw.ellipse((x, y, x + s, y + s), fill=colour)
    return image


@pytest.fixture(scope="module")
def pools(tmp_path_factory) -> dict:
    """Evaluation images (test seeds; PNG and JPEG q90 files, one unreadable) and generated images: byte copies,
    lossless re-saves, JPEG re-encodings, resizings, distinct images and near-misses (the same flat background
    and shapes, moved), each under its own folder."""
    root = tmp_path_factory.mktemp("decontamination")
    evals, gen = root / "eval", root / "generated"
    for folder in ("exact", "near", "distinct", "hard", "edited"):
        (gen / folder).mkdir(parents=True)
    evals.mkdir()
    originals = {}
    for seed in TEST:
        path = evals / (f"{seed}.png" if seed % 4 < 2 else f"{seed}.jpg")
        synthetic_image(seed).save(path, **({"quality": 90} if path.suffix == ".jpg" else {}))
        originals[seed] = path
        shutil.copy(path, gen / "exact" / f"bytes_{path.name}")
        decoded = Image.open(path).convert("RGB")
        decoded.save(gen / "exact" / f"lossless_{seed}.png", compress_level=1)   # other bytes, same pixels
        decoded.save(gen / "exact" / f"lossless_{seed}.bmp")
        for name, make in NEAR.items():
            make(decoded).save(gen / "near" / f"{seed}_{name.replace(' ', '_')}.png")
        decoded.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(gen / "edited" / f"{seed}_flip.png")
        w, h = decoded.size
        decoded.crop((w // 10, h // 10, w - w // 10, h - h // 10)).save(gen / "edited" / f"{seed}_crop10.png")
    (evals / "broken.jpg").write_bytes(b"not an image")
    for seed in OTHERS:
        synthetic_image(seed).save(gen / "distinct" / f"{seed}.png")
    # near-misses: an evaluation scene and a generated one with the same background and shapes, moved
    for k, background in enumerate([(200, 200, 200), (40, 90, 60), (90, 90, 160)]):
        shapes = [(20 + 30 * k, 30, 30, (220, 30, 30)), (120, 90, 24, (30, 30, 220))]
        flat_scene(background, shapes).save(evals / f"scene_{k}.png")
        moved = [(x + 50, y + 20 if y < 60 else y - 60, s, c) for x, y, s, c in shapes]
        flat_scene(background, moved).save(gen / "hard" / f"scene_{k}_moved.png")
        flat_scene(background, shapes[:1]).save(gen / "hard" / f"scene_{k}_one_shape.png")
    return {"root": root, "evals": evals, "gen": gen, "originals": originals}


@pytest.fixture(scope="module")
def flagged(pools) -> dict[str, dict]:
    index = EvalImageIndex.build([pools["evals"]], cache_dir=pools["root"] / "cache")
    assert len(index) == len(TEST) + 3 and list(index.hashes.unreadable) == [str(pools["evals"] / "broken.jpg")]
    images = sorted(str(p.relative_to(pools["gen"])) for p in pools["gen"].rglob("*.*"))
    rows = [{"id": str(k), "image": image} for k, image in enumerate(images)] + [{"id": "x", "image": "missing.png"}]
    flags = flag_rows(rows, pools["gen"], index)
    return {r["image"]: f for r, f in zip(rows, flags)}


def seed_of(image: str) -> int:
    return int(Path(image).stem.split("_")[-1] if Path(image).parent.name == "exact" else Path(image).stem.split("_")[0])


def test_byte_copies_and_lossless_resaves_match_exactly(flagged, pools):
    exact = {image: f for image, f in flagged.items() if image.startswith("exact/")}
    assert len(exact) == 3 * len(TEST)
    for image, f in exact.items():
        assert f["exact"] and not f["near"] and f["distance"] == 0, (image, f)
        assert f["match"] == str(pools["originals"][seed_of(image)]), (image, f)


def test_reencoded_and_resized_copies_match_near(flagged, pools):
    near = {image: f for image, f in flagged.items() if image.startswith("near/")}
    assert len(near) == len(NEAR) * len(TEST)
    for image, f in near.items():
        assert not f["exact"]
        if f["near"]:   # never another image
            assert f["match"] == str(pools["originals"][seed_of(image)]) and f["distance"] <= MAX_DISTANCE, (image, f)
    structured = [f for image, f in near.items() if seed_of(image) % 2 == 0]   # noise + shapes: every one
    assert all(f["near"] for f in structured), [i for i, f in near.items() if seed_of(i) % 2 == 0 and not f["near"]]
    flat = [f for image, f in near.items() if seed_of(image) % 2 == 1]   # little structure: calibration found 99.7%
    assert sum(f["near"] for f in flat) >= 0.95 * len(flat)


def test_distinct_images_and_near_misses_are_not_flagged(flagged):
    for folder in ("distinct", "hard", "edited"):   # edited: flips and 10% crops are not caught (docs say so)
        found = {image: f for image, f in flagged.items() if image.startswith(f"{folder}/")}
        assert found and not any(f["exact"] or f["near"] for f in found.values()), (folder, found)
        assert all(f["match"] is None and isinstance(f["distance"], int) for f in found.values())
    assert flagged["missing.png"]["status"] == "error" and "FileNotFoundError" in flagged["missing.png"]["reason"]


def test_index_is_cached_by_sources_and_takes_benchmarks(pools, monkeypatch, tmp_path):
    class Toy:   # any object with image_root + questions() is a source
        name = "toy"
        image_root = pools["evals"]

        def questions(self):
            return [{"question_id": k, "image": f"{s}.png", "text": "?"} for k, s in enumerate(TEST) if s % 4 < 2] * 2

    cache = tmp_path / "cache"
    first = EvalImageIndex.build([Toy()], cache_dir=cache, progress=False)
    assert len(first) == len(TEST) // 2 and first.hashes.ids[0] == f"toy:{TEST[0]}.png"
    both = EvalImageIndex.build([Toy(), pools["evals"]], cache_dir=cache, progress=False)
    assert len(list(cache.glob("eval_images-*.npz"))) == 2 and len(both) == len(TEST) // 2 + len(TEST) + 3

    def no_reading(*args, **kwargs):
        raise AssertionError("an unchanged file was fingerprinted again")
    monkeypatch.setattr(dc.Fingerprint, "of_file", no_reading)
    again = EvalImageIndex.build([Toy()], cache_dir=cache, progress=False)
    assert again.hashes.sha256 == first.hashes.sha256 and again.cache == first.cache


def test_mini_world_copies_found_and_other_scenes_not(small_world):
    """Mini-world scenes (flat backgrounds, few shapes: the same generator throughout): the held-out images as the
    index, the train images are distinct scenes, JPEG / resized copies of held-out images are found."""
    index = EvalImageIndex.build([small_world / "images/heldout"], progress=False)
    train = sorted(p.relative_to(small_world / "images") for p in (small_world / "images/train").glob("*.png"))
    flags = flag_rows([{"image": str(p)} for p in train], small_world / "images", index, progress=False)
    assert len(flags) == 60 and not any(f["exact"] or f["near"] for f in flags)
    first = sorted((small_world / "images/heldout").glob("*.png"))[0]
    exact = index.match(dc.hash_files([("same", first)], progress=False))["same"]
    assert exact["exact"] and exact["match"] == str(first)
    copies = dc.ImageHashes.of_images((f"{p}|{name}", make(Image.open(p).convert("RGB")))
                                      for p in sorted((small_world / "images/heldout").glob("*.png")) for name, make in NEAR.items())
    found = index.match(copies)
    assert all(f["near"] and f["match"] == i.split("|")[0] for i, f in found.items()), {
        i: f for i, f in found.items() if not f["near"]}


def test_flagged_rule_gives_countable_reasons():
    rule = Flagged("decontamination", ("exact", "near"), label="match", detail=("match", "distance"))
    flag = {"exact": False, "near": True, "match": "pope:COCO_val2014_000000000042.jpg", "distance": 4}
    assert rule.check({"decontamination": flag}) == (
        "decontamination: near match", "match='pope:COCO_val2014_000000000042.jpg', distance=4")
    assert rule.check({"decontamination": {**flag, "near": False}}) is None
    assert rule.check({"judge": {"p_yes": 0.9}}) is None   # not annotated: not applicable
    assert rule.check({"decontamination": {"status": "error", "reason": "FileNotFoundError"}})[0] == "decontamination error"
    assert select({"decontamination": flag}, {"decontamination": rule})[0]["rule"] == "decontamination"


def test_filter_stage_flags_counts_and_drops(small_world, tmp_path):
    """A generation run on two held-out images (the mini-world benchmarks' images), a JPEG copy of a third and
    three train images: with decontamination=mini_world the selection drops the three contaminated rows with
    their reasons and the manifest counts them; drop=false only annotates; off (the default) changes nothing."""
    pool = tmp_path / "pool"
    heldout = sorted((small_world / "images/heldout").glob("*.png"))[:3]
    train = sorted((small_world / "images/train").glob("*.png"))[:3]
    for p in [*heldout[:2], *train]:
        (pool / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, pool / p.parent.name / p.name)
    (pool / "reencoded").mkdir()
    jpeg(Image.open(heldout[2]).convert("RGB"), 75).save(pool / "reencoded/copy.png")
    images = [f"heldout/{heldout[0].name}", f"heldout/{heldout[1].name}", "reencoded/copy.png",
              *(f"train/{p.name}" for p in train)]
    rows = [accepted("common_vqa", {"question": "What is shown?", "answer": "a square"}, f"{k:03d}/common_vqa/0", image)
            for k, image in enumerate(images)]
    rows.append({"id": "999/common_vqa/0", "task": "common_vqa", "image": images[0], "status": "rejected", "reason": "x"})
    run = write_generation_run(tmp_path / "gen", rows, pool)
    index = EvalImageIndex.build([small_world / "images/heldout"], progress=False)
    assert [(r["image"], f["exact"], f["near"]) for r, f in dc.flag_run(run, index, progress=False)][:3] == [
        (images[0], True, False), (images[1], True, False), (images[2], False, True)]

    def filter_run(out: Path, *overrides: str) -> tuple[dict, list[dict]]:
        cfg = compose_config("filter", [f"run={run}", f"paths.output_dir={out}", f"paths.mini_world={small_world}",
                                        f"scores_dir={tmp_path / 'scores'}", *overrides])
        with open_dict(cfg):   # selection by decontamination alone: no scorer models
            cfg.filter.scorers, cfg.filter.rules = {}, {}
        filter_stage.run(cfg)
        manifest = json.loads((out / "manifest.json").read_text())
        return manifest, [json.loads(line) for line in (out / "selected.jsonl").read_text().splitlines()]

    cache = f"decontamination.cache_dir={tmp_path / 'index'}"
    manifest, selected = filter_run(tmp_path / "drop", "decontamination=mini_world", cache)
    record = manifest["decontamination"]
    assert {k: record[k] for k in ("checked", "exact", "near", "unreadable", "dropped")} == {
        "checked": 6, "exact": 2, "near": 1, "unreadable": 0, "dropped": 3}
    assert record["index"]["sources"][0].startswith("benchmark mini_world_vqa") and record["index"]["images"] == 12
    assert manifest["counts"]["dropped_by_reason"] == {"decontamination: exact match": 2, "decontamination: near match": 1}
    assert manifest["counts"]["kept"] == 3 and len(json.loads((tmp_path / "drop/llava.json").read_text())) == 3
    by_image = {r["image"]: r for r in selected}
    contaminated = by_image[images[2]]
    assert contaminated["scores"]["decontamination"]["match"] == f"mini_world_vqa:heldout/{heldout[2].name}"
    assert contaminated["drops"][0]["reason"] == "decontamination: near match" and not contaminated["kept"]
    assert all(r["kept"] and not r["scores"]["decontamination"]["exact"] for i, r in by_image.items() if i.startswith("train/"))

    index_file = Path(record["index"]["file"])
    built = index_file.stat().st_mtime_ns
    manifest, selected = filter_run(tmp_path / "keep", "decontamination=mini_world", cache, "decontamination.drop=false")
    assert manifest["decontamination"]["exact"] == 2 and manifest["decontamination"]["dropped"] == 0
    assert manifest["counts"]["kept"] == 6 and index_file.stat().st_mtime_ns == built   # the cached index, as it was
    assert sum(r["scores"]["decontamination"]["exact"] or r["scores"]["decontamination"]["near"] for r in selected) == 3

    manifest, selected = filter_run(tmp_path / "off")
    assert "decontamination" not in manifest and all("decontamination" not in r["scores"] for r in selected)

    with pytest.raises(ValueError, match="no benchmark 'nope'"):
        filter_run(tmp_path / "typo", "decontamination=mini_world", "decontamination.benchmarks=[nope]")
    with pytest.raises(ValueError, match="skip_missing"):
        filter_run(tmp_path / "gone", "decontamination=images", f"decontamination.eval_images=[{tmp_path / 'absent'}]")
