"""CLIP crop scorer: items from the regions tasks write (every REC template), box rules, exact scores, the filter module,
one decode per image for all its crops."""
from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import open_clip
import pytest
import torch
from conftest import ROOT, generated, task
from PIL import Image
from torch.utils.data import DataLoader

from genixer.backbones.open_clip import preprocess_config, save_open_clip
from genixer.data.images import load_rgb
from genixer.filtering import clip as clip_module
from genixer.filtering.clip import SPOTLIGHT_DIM, ClipCropScorer, check_box, pixel_box, region_image, spotlight
from genixer.filtering.scorer import ItemCollator, ItemDataset, Rejected
from genixer.filtering.module import FilterModule
from genixer.tasks import EXPR, Region, format_box, format_qa

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
EXPRESSION = "the red umbrella beside a wooden bench"
BOX = [0.125, 0.25, 0.75, 0.875]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(in-memory model, its checkpoint dir) of a random tiny open_clip model."""
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP).eval()
    directory = save_open_clip(model, TINY_CLIP, tmp_path_factory.mktemp("tiny_clip"), PREPROCESS)
    return model, directory


@pytest.fixture(scope="module")
def scorer(tiny) -> ClipCropScorer:
    return ClipCropScorer(checkpoint=str(tiny[1]))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Non-square noise images: 200x100 and 120x160."""
    root = tmp_path_factory.mktemp("images")
    for name, size, seed in (("wide.png", (200, 100), 1), ("tall.png", (120, 160), 2)):
        Image.effect_noise(size, 60 + seed).convert("RGB").save(root / name)
    return root


def row(row_id: str, image: str, box, expression, width=200, height=100, **extra) -> dict:
    """An accepted row with one region, as a REC task writes it."""
    fields = task("rec").fields({"question": f"Where is {expression}?", "expression": expression, "box": tuple(box)})
    return {"id": row_id, "image": image, "width": width, "height": height, "status": "ok", **fields, **extra}


def direct_scores(model, image_path, box_px, expression) -> tuple[float, float]:
    """(raw, cosine) computed by hand with open_clip's own transforms and tokenizer."""
    _, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{image_path[1]}")
    pixels = preprocess(Image.open(image_path[0]).convert("RGB").crop(box_px))[None]
    tokens = open_clip.get_tokenizer(f"local-dir:{image_path[1]}")([expression])
    with torch.no_grad():
        i, t = model.encode_image(pixels)[0], model.encode_text(tokens)[0]
    return float(i @ t), float(i @ t / (i.norm() * t.norm()))


# ---- rows -> items ----------------------------------------------------------------------------

def test_every_rec_template_gives_its_region(scorer):
    """A generated REC sample written with any question template yields its expression and box."""
    rec = task("rec")
    assert len(rec.questions) == 36
    for k, template in enumerate(rec.questions.templates):
        text = format_qa(template.replace(EXPR, EXPRESSION), format_box(BOX))
        [item] = scorer.items(generated("rec", text, f"img/rec/{k}", "wide.png"))
        assert (item["expression"], item["box"], item["id"]) == (EXPRESSION, BOX, f"img/rec/{k}#0"), template


def test_items_from_the_regions_of_each_task(scorer):
    """One item per region: REC, REG and REC-shaped task-agnostic rows; none for other families."""
    box = format_box(BOX)
    rows = [generated("rec", f"Question: Where is the green square? Answer: {box}", "1/rec/0", "wide.png"),
            generated("reg", f"Question: What is in {box}? Answer: the purple star.", "1/reg/0", "wide.png"),
            generated("agnostic", f"Question: Where is the purple circle? Answer: {box}", "1/agnostic/0", "wide.png")]
    assert [scorer.items(r)[0]["expression"] for r in rows] == ["the green square", "the purple star", "the purple circle"]
    assert scorer.items(rows[0]) == [{"id": "1/rec/0#0", "row_id": "1/rec/0", "image": "wide.png", "box": BOX,
                                      "expression": "the green square"}]
    assert task("rec").regions(rows[0]["parsed"]) == [Region("the green square", tuple(BOX))]
    # Not a region or not ok: nothing to score.
    common = generated("common_vqa", "Question: What? Answer: A cat.", "1/common_vqa/0", "wide.png")
    point = generated("pointqa_local", f"Question: What is this?{box} Answer: A cat.", "1/pointqa_local/0", "wide.png")
    assert scorer.items(common) == scorer.items(point) == scorer.items({**rows[0], "status": "rejected"}) == []


# ---- boxes --------------------------------------------------------------------------------------

def test_pixel_boxes_round_with_the_original_size():
    assert pixel_box([0.0, 0.0, 0.5, 0.5], 640, 480, 50) == (0, 0, 320, 240)
    assert pixel_box([0.1234, 0.2, 0.5678, 0.9], 1000, 500, 1) == (123, 100, 568, 450)  # int() gives 567
    assert pixel_box([0.0, 0.0, 1.0 + 1e-9, 1.0], 640, 480, 50) == (0, 0, 640, 480)


@pytest.mark.parametrize("box, size, reason", [
    ([0.0, 0.0, 0.245, 0.5], (200, 100), "crop 49x50 px under min side 50"),
    ([0.0, 0.0, 0.25, 0.49], (200, 100), "crop 50x49 px under min side 50"),
    ([0.1, 0.1, 0.3, 0.9], (100, 1000), "crop 20x800 px under min side 50"),
    ([-0.1, 0.0, 0.5, 0.5], (200, 100), "outside [0, 1]"),
    ([0.0, 0.0, 1.2, 1.0], (200, 100), "outside [0, 1]"),
    ([0.5, 0.1, 0.5, 0.9], (200, 100), "degenerate box"),
    ([0.6, 0.1, 0.4, 0.9], (200, 100), "degenerate box"),
    ([0.1, 0.2, 0.3], (200, 100), "not 4 finite numbers"),
    ([0.1, 0.2, 0.3, math.nan], (200, 100), "not 4 finite numbers"),
    ([0.1, 0.2, math.inf, 0.4], (200, 100), "not 4 finite numbers"),
    ([True, 0.2, 0.3, 0.4], (200, 100), "not 4 finite numbers"),
    ("[0.1,0.2,0.3,0.4]", (200, 100), "not 4 finite numbers"),
])
def test_bad_boxes_rejected_with_reason(box, size, reason):
    with pytest.raises(Rejected, match=reason.replace("[", r"\[").replace("]", r"\]")):
        pixel_box(box, *size, 50)


def test_min_side_is_inclusive_on_non_square_images():
    assert pixel_box([0.0, 0.0, 0.25, 0.5], 200, 100, 50) == (0, 0, 50, 50)
    assert pixel_box([0.5, 0.0, 0.745, 0.5], 200, 100, 49) == (100, 0, 149, 50)
    assert check_box((0, 0, 1, 1)) == (0.0, 0.0, 1.0, 1.0)


def test_load_failures_become_reasoned_rows(scorer, images):
    rows = [row("ok", "wide.png", [0.0, 0.0, 0.5, 1.0], "a cat", width=400, height=200),  # file is 200x100
            row("small", "wide.png", [0.0, 0.0, 0.245, 0.5], "a cat"),
            row("gone", "missing.png", BOX, "a cat"),
            row("nomatch", "wide.png", BOX, None),
            row("outside", "missing.png", [0.0, 0.0, 1.5, 1.0], "a cat")]
    dataset = ItemDataset(scorer, [scorer.items(r)[0] for r in rows], images)
    loaded = [dataset[i] for i in range(len(dataset))]
    # The decoded size is the frame when the row's size disagrees with the file.
    assert loaded[0]["inputs"]["crop"].tolist() == [100, 100]
    assert loaded[0]["inputs"]["image"].shape == (3, 32, 32)
    expected = [("rejected", "crop 49x50 px under min side 50"), ("error", "image: FileNotFoundError: "),
                ("rejected", "no expression: the question matches no REC template"),
                ("rejected", "box [0.0, 0.0, 1.5, 1.0] outside [0, 1]")]
    for got, (status, reason) in zip(loaded[1:], expected, strict=True):
        assert got["status"] == status and got["reason"].startswith(reason), got


# ---- scores -------------------------------------------------------------------------------------

def test_scores_equal_a_direct_computation(tiny, scorer, images):
    model, directory = tiny
    cases = [("wide.png", [0.1, 0.05, 0.8, 0.9], "the red umbrella"),
             ("tall.png", [0.0, 0.2, 0.5, 0.6], "a small striped cat on the left"),
             ("wide.png", [0.3, 0.0, 1.0, 1.0], "sky")]
    items = [scorer.items(row(f"r{k}", name, box, expr))[0] for k, (name, box, expr) in enumerate(cases)]
    loaded = [scorer.load(item, images) for item in items]
    with torch.no_grad():
        lines = scorer.score(model, scorer.collate(loaded), [{"id": i["id"], "row_id": i["row_id"]} for i in items])
    for line, (name, box, expr) in zip(lines, cases):
        size = Image.open(images / name).size
        x1, y1, x2, y2 = pixel_box(box, *size, 1)
        raw, cosine = direct_scores(model, (images / name, directory), (x1, y1, x2, y2), expr)
        assert line["raw"] == pytest.approx(raw, rel=1e-5, abs=1e-5)
        assert line["cosine"] == pytest.approx(cosine, abs=1e-5)
        assert line["clipscore"] == pytest.approx(2.5 * max(cosine, 0.0), abs=1e-5)
        assert line["crop"] == [x2 - x1, y2 - y1]
    assert len({round(line["raw"], 6) for line in lines}) == 3


def test_long_expression_is_truncated_not_dropped(tiny, scorer, images):
    model, _ = tiny
    long, cut = "striped " * 200, "striped " * 75  # one BPE token per word: 75 + start + end = 77
    items = [scorer.items(row(f"r{k}", "wide.png", BOX, expr))[0] for k, expr in enumerate((long, cut))]
    loaded = [scorer.load(item, images) for item in items]
    tokens = loaded[0]["text"]
    assert tokens.shape == (77,) and int(tokens[-1]) == scorer.tokenizer.eot_token_id
    assert torch.equal(tokens, loaded[1]["text"])
    with torch.no_grad():
        lines = scorer.score(model, scorer.collate(loaded), [{"id": "a"}, {"id": "b"}])
    assert math.isfinite(lines[0]["raw"]) and lines[0]["raw"] == pytest.approx(lines[1]["raw"], abs=1e-5)


def test_checkpoint_round_trip_and_preprocessing(tiny, scorer, images):
    model, directory = tiny
    built = scorer.build().eval()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), built.state_dict().values()))
    # Workers resolve preprocessing from configs alone: it must match what open_clip sets on the model.
    assert open_clip.get_model_preprocess_cfg(built) == vars(preprocess_config(f"local-dir:{directory}"))
    assert tuple(PREPROCESS["std"]) == tuple(preprocess_config(f"local-dir:{directory}").std)
    batch = scorer.collate([scorer.load(scorer.items(row("r", "tall.png", BOX, EXPRESSION))[0], images)])
    with torch.no_grad():
        assert scorer.score(model, batch, [{"id": "r"}]) == scorer.score(built, batch, [{"id": "r"}])


def test_builtin_architecture_preprocessing_and_config(tiny):
    cfg = preprocess_config("ViT-L-14", "openai")
    assert (cfg.size, cfg.interpolation, cfg.resize_mode) == ((224, 224), "bicubic", "shortest")
    assert ClipCropScorer(min_side=32).config() == {"model": "ViT-L-14", "pretrained": None, "min_side": 32, "view": "crop"}
    assert ClipCropScorer(checkpoint=str(tiny[1])).config()["model"] == f"local-dir:{tiny[1]}"
    with pytest.raises(ValueError, match="own weights"):
        ClipCropScorer(checkpoint=str(tiny[1]), pretrained="openai")
    with pytest.raises(ValueError):
        ClipCropScorer(model="No-Such-Model")


# ---- the filter module end to end ---------------------------------------------------------------

def test_filter_module_predict_end_to_end(tiny, scorer, images):
    model, directory = tiny
    rows = [row("a/rec/0", "wide.png", [0.1, 0.05, 0.8, 0.9], "the red umbrella"),
            row("b/rec/0", "tall.png", [0.0, 0.2, 0.5, 0.6], "a cat", width=120, height=160),
            row("c/rec/0", "missing.png", BOX, "a dog"),
            row("d/rec/0", "wide.png", [0.0, 0.0, 0.1, 0.1], "a dot")]
    items = [item for r in rows for item in scorer.items(r)]
    loader = DataLoader(ItemDataset(scorer, items, images), batch_size=3, collate_fn=ItemCollator(scorer), num_workers=0)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    module = FilterModule([scorer])
    batches = trainer.predict(module, loader)
    lines = {line["id"]: line for batch in batches for line in batch}
    # FLOPs of the two crops that were scored: 2 x parameters x tokens per tower (for the run's hardware limit)
    visual = sum(p.numel() for p in model.visual.parameters())
    side, patch = model.visual.image_size, model.visual.patch_size
    grid = (side[0] // patch[0]) * (side[1] // patch[1]) if isinstance(side, tuple) else (side // patch) ** 2
    text = sum(p.numel() for p in model.parameters()) - visual
    assert module.models is None   # dropped at the end of predict: the teardown copies no weights to the host
    assert module.total_flops == pytest.approx(2 * 2 * (visual * (grid + 1) + text * model.context_length))
    assert sorted(lines) == ["a/rec/0#0", "b/rec/0#0", "c/rec/0#0", "d/rec/0#0"]
    summary = {r["id"]: scorer.summarize([lines[f"{r['id']}#0"]]) for r in rows}
    assert summary["c/rec/0"]["status"] == "error" and "FileNotFoundError" in summary["c/rec/0"]["reason"]
    assert summary["d/rec/0"] == {"raw": [None], "clipscore": [None], "cosine": [None], "crop": [None],
                                  "status": "rejected", "reason": "crop 20x10 px under min side 50"}
    for r in rows[:2]:
        [region] = r["regions"]
        x1, y1, x2, y2 = pixel_box(region["box"], *Image.open(images / r["image"]).size, 1)
        raw, cosine = direct_scores(model, (images / r["image"], directory), (x1, y1, x2, y2), region["expression"])
        got = summary[r["id"]]
        assert got.pop("crop") == [[x2 - x1, y2 - y1]]
        assert {k: v[0] for k, v in got.items()} == pytest.approx(
            {"raw": raw, "clipscore": 2.5 * max(cosine, 0.0), "cosine": cosine}, abs=1e-5)
    assert scorer.summarize([]) == {"raw": [], "clipscore": [], "cosine": [], "crop": []}


def test_spotlight_keeps_the_box_and_dims_the_rest():
    image = Image.new("RGB", (40, 30), (200, 100, 50))
    out = spotlight(image, (10, 5, 20, 15))
    assert out.size == image.size and out.getpixel((12, 7)) == (200, 100, 50)
    assert out.getpixel((0, 0)) == tuple(int(v * SPOTLIGHT_DIM) for v in (200, 100, 50))
    assert region_image(image, (10, 5, 20, 15), "crop").size == (10, 10)


def test_scorer_reads_the_region_view_its_checkpoint_was_trained_with():
    checkpoint = ROOT / "checkpoints/clip_mini"
    assert ClipCropScorer(checkpoint=str(checkpoint), min_side=12).view == "spotlight"
    assert ClipCropScorer(checkpoint=str(checkpoint), min_side=12).config()["view"] == "spotlight"


# ---- one decode per image -----------------------------------------------------------------------

def count_decodes(monkeypatch, log=None) -> list[str]:
    """Record every ``load_rgb`` the scorer calls (file names); with ``log``, also as lines of that file (worker processes)."""
    decodes, real = [], clip_module.load_rgb

    def counted(path, *args, **kwargs):
        decodes.append(Path(path).name)
        if log is not None:
            with open(log, "a") as f:
                f.write(Path(path).name + "\n")
        return real(path, *args, **kwargs)
    monkeypatch.setattr(clip_module, "load_rgb", counted)
    return decodes


def per_crop(scorer: ClipCropScorer, item: dict, root: Path) -> dict:
    """What ``load`` made before the image was shared by its crops: a fresh decode for this crop alone."""
    image = load_rgb(root / item["image"])
    box = pixel_box(item["box"], image.width, image.height, scorer.min_side)
    region = region_image(image, box, scorer.view)
    pixels = scorer.pixels.uint8(region)   # the device's half gives open_clip's whole transform, bit for bit
    assert pixels.dtype == torch.uint8 and torch.equal(scorer.pixels.normalize(pixels[None], torch.float32)[0],
                                                       scorer.transform(region))
    return {"image": pixels, "text": scorer.tokenizer(item["expression"])[0],
            "crop": torch.tensor([box[2] - box[0], box[3] - box[1]])}


def image_rows(name: str, boxes: list, width=200, height=100) -> list[dict]:
    """One REC row per box on image ``name``, ids sorting together as generation writes them; the last row holds two regions."""
    rows = [row(f"{name}/rec/{k}", name, box, f"the object number {k}", width, height) for k, box in enumerate(boxes[:-1])]
    rows[-1]["regions"].append({"expression": "one more object", "box": boxes[-1]})
    return rows


def test_each_image_decodes_once_with_the_per_crop_tensors_and_scores(tiny, images, monkeypatch):
    """Through the stage's loader (batches cut across images): one decode per image, and every crop's tensors
    exactly those of a decode per crop, in both region views; so are the scores."""
    model, directory = tiny
    boxes = [[0.0, 0.0, 0.5, 1.0], [0.25, 0.1, 0.9, 0.8], [0.5, 0.0, 1.0, 0.6], [0.1, 0.3, 0.7, 1.0]]
    rows = image_rows("wide.png", boxes) + image_rows("tall.png", boxes[:3], 120, 160)
    for checkpoint, view in ((directory, "crop"), (ROOT / "checkpoints/clip_mini", "spotlight")):
        scorer = ClipCropScorer(checkpoint=str(checkpoint), min_side=12)
        items = [item for r in rows for item in scorer.items(r)]
        decodes = count_decodes(monkeypatch)
        batches = list(DataLoader(ItemDataset(scorer, items, images), batch_size=3, collate_fn=ItemCollator(scorer)))
        monkeypatch.undo()
        assert scorer.view == view and len(items) == 7 and decodes == ["wide.png", "tall.png"]
        for batch, chunk in zip(batches, [items[i:i + 3] for i in range(0, 7, 3)], strict=True):
            reference = scorer.collate([per_crop(scorer, item, images) for item in chunk])
            assert batch["meta"] == [{"id": i["id"], "row_id": i["row_id"]} for i in chunk]
            assert all(torch.equal(batch["inputs"][key], reference[key]) for key in reference)
            if view == "crop":  # the tiny model's input
                with torch.no_grad():
                    assert scorer.score(model, batch["inputs"], batch["meta"]) == scorer.score(model, reference, batch["meta"])


def test_workers_decode_each_image_once_when_batches_hold_its_crops(tiny, images, monkeypatch, tmp_path):
    """A worker loads whole batches: with two workers and batches of one image's crops, each file decodes once."""
    scorer = ClipCropScorer(checkpoint=str(tiny[1]))
    boxes = [[0.0, 0.0, 0.5, 1.0], [0.25, 0.1, 0.9, 0.8], [0.5, 0.0, 1.0, 0.6], [0.1, 0.3, 0.7, 1.0]]
    items = [item for r in image_rows("wide.png", boxes) + image_rows("tall.png", boxes, 120, 160) for item in scorer.items(r)]
    count_decodes(monkeypatch, log := tmp_path / "decodes.txt")
    loader = DataLoader(ItemDataset(scorer, items, images), batch_size=4, num_workers=2, multiprocessing_context="fork",
                        collate_fn=ItemCollator(scorer))
    assert sum(len(batch["meta"]) for batch in loader) == 8
    assert sorted(log.read_text().split()) == ["tall.png", "wide.png"]


def test_failures_stay_per_crop(tiny, tmp_path, monkeypatch):
    """Crops of one image fail alone (before or after its one decode); every crop of a bad file is an error row."""
    Image.effect_noise((200, 100), 40).convert("RGB").save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    scorer = ClipCropScorer(checkpoint=str(tiny[1]))
    ok, small = [0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.245, 0.5]
    rows = [row("good/rec/0", "good.png", ok, "a cat"), row("good/rec/1", "good.png", small, "a cat"),
            row("good/rec/2", "good.png", [0.5, 0.1, 0.5, 0.9], "a cat"), row("good/rec/3", "good.png", ok, None),
            row("good/rec/4", "good.png", [0.5, 0.0, 1.0, 1.0], "a dog"),
            *(row(f"{name}/rec/{k}", f"{name}.png", ok, "a cat") for name in ("broken", "gone") for k in range(2))]
    items = [scorer.items(r)[0] for r in rows]
    decodes = count_decodes(monkeypatch)
    dataset = ItemDataset(scorer, items, tmp_path)
    expected = [("ok", ""), ("rejected", "crop 49x50 px under min side 50"), ("rejected", "degenerate box"),
                ("rejected", "no expression"), ("ok", "")] + [("error", "image: UnidentifiedImageError: ")] * 2 + [
                ("error", "image: FileNotFoundError: ")] * 2
    for k, (status, reason) in enumerate(expected):
        got = dataset[k]
        assert got.get("status", "ok") == status and got.get("reason", "").startswith(reason), (k, got)
    assert decodes == ["good.png", "broken.png", "broken.png"]  # a failed decode is not kept; a missing file fails its stat


def test_device_pixels_refuse_a_transform_they_cannot_split():
    from torchvision.transforms import Compose, Resize, ToTensor

    from genixer.filtering.clip import DevicePixels

    with pytest.raises(ValueError, match="ToTensor, Normalize"):
        DevicePixels(Compose([Resize(8), ToTensor()]))
