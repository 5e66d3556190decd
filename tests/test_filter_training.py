"""Training the mini world's filter models: verification data, CLIP pairs and loss, train.py smoke runs."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from conftest import ROOT, compose_config
from hydra.utils import instantiate
from PIL import Image

from genixer.miniworld.models.clip_pairs import (
    CAPTION,
    CROP,
    NEGATIVE,
    PHRASE,
    UNPARSED,
    UNSAID,
    WHOLE,
    jitter_box,
    off_box,
    phrase_codes,
    phrase_key,
    positives,
    resolved,
)
from genixer.miniworld.scene import SceneObject
from genixer.miniworld import Oracle, build_world
from genixer.miniworld.grammar import box_iou
from genixer.data.sources.files import read_json
from genixer.miniworld.models.verification import BACKGROUND, YES, TwinSampler, heldout_annotations, verification_records
from genixer.miniworld.models import heldout as filter_models
from genixer.filtering.clip import ClipCropScorer
from genixer.filtering.judge import LlavaJudge
from genixer.training.clip import MultiPositiveClipLoss
from genixer.pipelines import train
from genixer.tasks.mc_vqa import parse_mc_pair

JUDGE_INIT = ROOT / "checkpoints/genixer_l_mini_all"
COMMON_KINDS = ("matched", "wrong_object", "bad_box")  # held-out CLIP item kinds every split has


def overrides(tmp_path: Path, world: Path, experiment: str) -> list[str]:
    return [f"paths.output_dir={tmp_path}", f"experiment={experiment}", "debug=fast", f"paths.mini_world={world}",
            "world=mini", "world.num_train=60", "world.num_heldout=12", "world.num_val=4"]


def assembled(cfg):
    """The data module and module as the train pipeline builds them."""
    return train.assemble(cfg, instantiate(cfg.backbone))


@pytest.fixture(scope="module")
def verification(small_world, tmp_path_factory):
    config = overrides(tmp_path_factory.mktemp("v"), small_world, "mini_world_judge") + ["data.background_twins=0.5"]
    return assembled(compose_config("train", config))[0]


@pytest.fixture(scope="module")
def clip_setup(small_world, tmp_path_factory):
    return assembled(compose_config("train", overrides(tmp_path_factory.mktemp("c"), small_world, "mini_world_clip")))


# verification data ------------------------------------------------------------------------------
def truth_of(oracle: Oracle, record: dict) -> bool:
    """(correct?) of a rendered pair by the oracle alone (the corruptor's work is not trusted)."""
    image_id = oracle.image_id(record["image"])
    if record["kind"] == "mc":
        mc = parse_mc_pair(record["question"], record["answer"].split(".")[0]).record  # "C. square" -> C
        return oracle.check_mc(image_id, mc["question"], mc["choices"], mc["answer_index"]).correct
    return oracle.check_qa(image_id, record["question"], record["answer"]).correct


def test_verification_records_are_balanced_and_true_to_ground_truth(verification, small_world):
    records = verification.records
    labels, kinds = Counter(r["label"] for r in records), Counter(r["kind"] for r in records)
    assert labels[YES] == labels["No"] > 300
    assert {"short", "long", "mc", "description", "background"} <= set(kinds)
    assert set(Counter(r["source"] for r in records)) == set(verification.sources)
    seed = read_json(small_world / "world.json")["seed"]  # the oracle alone must see a background twin wrong
    oracle = Oracle.from_instances(small_world / "annotations/instances_train.json", seed)
    assert all(truth_of(oracle, r) == (r["label"] == YES) for r in records)
    for true, wrong in zip(records[::2], records[1::2]):  # twins: same image and question, another answer
        assert (true["image"], true["question"], true["label"]) == (wrong["image"], wrong["question"], YES)
        assert wrong["answer"] != true["answer"] and wrong["label"] == "No"
    for true, wrong in zip(records[::2], records[1::2]):  # a background twin differs in its background words only
        if wrong["kind"] == "background":
            assert BACKGROUND.sub("", true["answer"].lower()) == BACKGROUND.sub("", wrong["answer"].lower())
            assert oracle.check_qa(oracle.image_id(true["image"]), true["question"], true["answer"]).correct


def test_shipped_judge_data_has_no_background_twins(verification, small_world):
    """background_twins=0 (the default, the shipped judge's data) draws exactly what an oracle without the world's
    seed draws: the seed alone changes nothing."""
    assert compose_config("train", overrides(small_world, small_world, "mini_world_judge")).data.background_twins == 0
    annotations = [(name, r) for name, source in verification.sources.items() for r in source.load()]
    instances, seed = small_world / "annotations/instances_train.json", read_json(small_world / "world.json")["seed"]
    plain = verification_records(annotations, Oracle.from_instances(instances), 0)
    assert verification_records(annotations, Oracle.from_instances(instances, seed), 0) == plain
    assert "background" not in {r["kind"] for r in plain}


def test_twin_batches():
    order = list(TwinSampler(10, seed=1))
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert all(order[k + 1] == order[k] + 1 and order[k] % 2 == 0 for k in range(0, 10, 2))
    assert list(TwinSampler(10, seed=1)) == order


def test_descriptions_match_the_world_captions(small_world):
    oracle = Oracle.from_instances(small_world / "annotations/instances_train.json")
    captions = read_json(small_world / "annotations/captions_train.json")["annotations"]
    prompt = "What is shown in this image?"
    assert all(oracle.check_qa(c["image_id"], prompt, c["caption"]).correct for c in captions)
    assert not oracle.check_qa(captions[0]["image_id"], prompt, captions[0]["caption"] + " And a small red circle.").correct


def test_training_text_is_what_the_judge_scores(verification):
    judge = LlavaJudge(str(JUDGE_INIT))  # the judge's own codec: the generator it is fine-tuned from
    dataset = verification.train_dataloader().dataset
    yes_ids, no_ids = judge.answer_ids
    for k in (0, 1):  # a Yes record and its No twin
        record, item = dataset.records[k], dataset[k]
        prompt = judge.load(record, Path("/"))["input_ids"]
        assert torch.equal(item["input_ids"][:-2], prompt)  # then the answer token and </s>
        target = item["labels"][item["labels"] != -100].tolist()
        assert target == [item["input_ids"][-2].item(), judge.tokenizer.eos_token_id]
        assert target[0] in (yes_ids if record["label"] == YES else no_ids)
        assert judge.tokenizer.decode(target[:1]).strip() == record["label"]


# CLIP pairs and loss -----------------------------------------------------------------------------
def test_boxes_for_positive_and_negative_crops():
    rng = np.random.default_rng(0)
    box, other = (20, 30, 50, 56), (70, 10, 100, 40)
    for _ in range(200):
        jittered = jitter_box(box, rng, 0.1, 0.7, 120, 100)
        assert box_iou(jittered, box) >= 0.7
        bad = off_box(box, [box, other], rng, 120, 100, min_side=8)
        if bad is not None:
            assert max(box_iou(bad, box), box_iou(bad, other)) < 0.5 and min(bad[2] - bad[0], bad[3] - bad[1]) >= 8
            assert 0 <= bad[0] < bad[2] <= 120 and 0 <= bad[1] < bad[3] <= 100


def test_phrases_and_positives():
    said = {w: phrase_codes(f"the {w}") for w in ("small red circle", "red circle", "blue circle")}
    assert phrase_codes("the large red circle on the left") == said["small red circle"] == said["red circle"]
    assert phrase_codes("a large diamond")[0] == UNSAID and phrase_codes("this object") is None
    none = [UNSAID] * 2
    image_meta = torch.tensor([[CROP, *said["red circle"], 0], [CROP, *said["blue circle"], 0],
                               [WHOLE, *none, 7], [NEGATIVE, *none, 0]])
    text_meta = torch.tensor([[PHRASE, *said["small red circle"], 0], [PHRASE, *said["blue circle"], 0],
                              [CAPTION, *none, 7]])
    assert positives(image_meta, text_meta).int().tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    text_meta[1] = torch.tensor([PHRASE, UNSAID, phrase_codes("a circle")[1], 0])  # fits both crops
    text_meta[0] = torch.tensor([UNPARSED, *none, 0])  # only its own crop
    assert positives(image_meta, text_meta).int().tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]]


def test_spotlight_positives_follow_the_resolver():
    """Twins told apart by size or position, an ambiguous phrase, a phrase of another image."""
    twins = [SceneObject("circle", "red", "small", (5, 5, 25, 25)), SceneObject("circle", "red", "large", (60, 5, 95, 40))]
    alone = [SceneObject("square", "blue", "large", (10, 10, 50, 50))]
    phrases = ["the small red circle", "the red circle", "the red circle on the right", "the blue square"]
    items = [{"scene": (twins, 100, 80), "keys": [phrase_key(p) for p in phrases[:3]]},
             {"scene": (alone, 100, 80), "keys": [phrase_key(phrases[3])]}]
    image_meta = torch.tensor([[CROP, 0, UNSAID, 0], [CROP, 1, UNSAID, 0], [CROP, 0, UNSAID, 0], [NEGATIVE, UNSAID, UNSAID, 0]])
    got = resolved(items, image_meta, torch.tensor([0, 0, 1, 1]))
    assert got.int().tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert phrase_key("this object") is None and phrase_key("Where is the red circle?") == (None, "red", "circle", None)


def test_loss_ignores_texts_without_a_match():
    torch.manual_seed(0)
    image, text = torch.nn.functional.normalize(torch.randn(2, 4, 8), dim=-1)
    pos = torch.eye(4, dtype=torch.bool)
    pos[3, 3] = False  # text 3 is ambiguous: only a negative for the images
    loss = MultiPositiveClipLoss()(image, text, torch.tensor(10.0), pos)
    assert torch.isfinite(loss)


def test_multi_positive_loss():
    torch.manual_seed(0)
    image, text = torch.nn.functional.normalize(torch.randn(2, 6, 8), dim=-1)
    scale, eye = torch.tensor(10.0), torch.eye(6, dtype=torch.bool)
    loss = MultiPositiveClipLoss()
    assert torch.allclose(loss(image, text, scale, eye), open_clip.ClipLoss()(image, text, scale))
    # a hard negative that looks exactly like image 0 takes half of text 0's image-side probability
    with_negative = torch.cat([image, image[:1]])
    assert loss(with_negative, text, scale, torch.cat([eye, eye[:1] & False])) > loss(image, text, scale, eye)


def test_clip_pairs_batches(clip_setup):
    datamodule, _ = clip_setup
    batch = next(iter(datamodule.train_dataloader()))
    again = next(iter(datamodule.train_dataloader()))
    n_images, n_texts = batch["images"].shape[0], batch["texts"].shape[0]
    assert batch["images"].shape[1:] == (3, 96, 96) and batch["texts"].shape[1] == 32
    assert batch["positives"].shape == (n_images, n_texts) and n_images >= n_texts > datamodule.batch_size
    # spotlight view: a phrase matches its own image unless it is ambiguous there (Visual Genome phrases)
    own = batch["positives"][:n_texts].diagonal()
    assert 0.5 < own.float().mean() < 1 and not batch["positives"][n_texts:].any()
    assert all(torch.equal(batch[k], again[k]) for k in batch)  # seeded: the same draws


def test_clip_training_steps_and_export_round_trip(clip_setup, tmp_path):
    datamodule, module = clip_setup
    module.configure_model()
    batch = next(iter(datamodule.train_dataloader()))
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = module.loss(*module.model(batch["images"], batch["texts"]), batch["positives"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0]
    module.export(tmp_path)
    scorer = ClipCropScorer(checkpoint=str(tmp_path), min_side=8)
    loaded = scorer.build().eval()
    module.model.eval()
    image = Image.new("RGB", (40, 24), (200, 30, 30))
    pixels = scorer.transform(image)[None]
    assert torch.equal(pixels, module.codec.image(image)[None])
    assert torch.equal(scorer.tokenizer(["the red circle"]), module.codec.tokenizer(["the red circle"]))
    with torch.no_grad():
        assert torch.allclose(loaded.encode_image(pixels), module.model.encode_image(pixels), atol=1e-5)
        text = scorer.tokenizer(["the red circle"])
        assert torch.allclose(loaded.encode_text(text), module.model.encode_text(text), atol=1e-5)


# train.py + held-out checks ----------------------------------------------------------------------
def test_train_py_and_heldout_checks(tmp_path, small_world, monkeypatch):
    clip = train.run(compose_config("train", overrides(tmp_path / "clip", small_world, "mini_world_clip")))
    assert clip["steps"] == 3 and clip["train/loss"] > 0
    checkpoint = tmp_path / "clip/checkpoint"
    config = json.loads((checkpoint / "open_clip_config.json").read_text())
    assert config["preprocess_cfg"] == {"resize_mode": "longest"} and config["model_cfg"]["embed_dim"] == 64
    assert (checkpoint / "open_clip_model.safetensors").stat().st_size < 15e6  # fp16
    # Three steps of training predict no score; what the scores cannot change must be exact, and the
    # score-based fields must agree with each other. The check chooses thresholds on a val split.
    world = tmp_path / "world"
    build_world(world, seed=1, num_train=4, num_heldout=8, num_val=8)
    clip_results = filter_models.main(["clip", str(checkpoint), "--world", str(world)])[str(checkpoint)]
    for split in ("val", "heldout"):
        items = filter_models.clip_items(world, split)
        kinds = Counter(it["kind"] for it in items)
        assert kinds["matched"] == sum(it["label"] for it in items) and min(kinds[k] for k in COMMON_KINDS) > 5
        for score in ("cosine", "raw"):
            m = clip_results[score][split]
            assert (m["items"], m["failed"], m["correct"]) == (len(items), 0, kinds["matched"])
            assert {k: m[k] for k in filter_models.KINDS} == {k: kinds[k] for k in filter_models.KINDS}
            # the pooled AUC is the count-weighted mean of the per-kind AUCs
            pooled = sum(kinds[k] * m[f"auc_{k}"] for k in filter_models.KINDS if kinds[k])
            assert m["auc"] == pytest.approx(pooled / (len(items) - kinds["matched"]), abs=1e-6)
            assert_roc_consistent(m["auc"], m["balanced_acc"], best=split == "val")
            hits = m["retrieval_acc"] * m["retrieval_expressions"]
            assert m["retrieval_expressions"] > 0 and hits == pytest.approx(round(hits))
    for score in ("cosine", "raw"):  # chosen on val, applied unchanged to held-out
        val, heldout = clip_results[score]["val"], clip_results[score]["heldout"]
        assert val["threshold_chosen_here"] and not heldout["threshold_chosen_here"]
        assert val["threshold"] == val["best_threshold_here"] == heldout["threshold"]

    judge = train.run(compose_config("train", overrides(tmp_path / "judge", small_world, "mini_world_judge")))
    assert judge["steps"] == 3 and judge["train/loss"] > 0
    monkeypatch.chdir(small_world.parent)  # a relative world root works too (records name images under it)
    results = filter_models.main(["judge", str(tmp_path / "judge"), "--world", small_world.name])
    metrics = results[str(tmp_path / "judge")]
    records = filter_models.judge_records(small_world)
    labels = Counter(r["label"] for r in records)
    assert metrics["failed"] == 0 and metrics["pairs"] == len(records) > 50 and labels[YES] == labels["No"]
    kinds = Counter(r["kind"] for r in records)
    assert {k: metrics[f"n_{k}"] for k in kinds} == kinds and {"short", "mc", "description", "background"} <= set(kinds)
    right = {k: metrics[f"acc_{k}"] * n for k, n in kinds.items()}  # correct pairs per kind: whole numbers
    assert all(v == pytest.approx(round(v)) for v in right.values())
    assert metrics["acc_all"] == pytest.approx(sum(right.values()) / len(records))
    # labels are balanced, so acc_all is the balanced accuracy of the ROC point "p_yes >= 0.5"
    assert_roc_consistent(metrics["auc"], metrics["acc_all"], best=False)
    assert 0 < metrics["yes_no_mass"] <= 1


def test_heldout_descriptions_leave_the_other_records_as_they_were(small_world):
    """The held-out check's descriptions come last with their own draws: the other records and their twins are what the
    check without descriptions (no world seed) writes, so figures on the older kinds stay comparable."""
    instances = small_world / "annotations/instances_heldout.json"
    plain = verification_records(heldout_annotations(str(instances), str(small_world / "images"), 0),
                                 Oracle.from_instances(instances), 0)
    records = [{k: v for k, v in r.items() if k not in ("id", "row_id")} for r in filter_models.judge_records(small_world)]
    assert records[:len(plain)] == plain and {r["kind"] for r in records[len(plain):]} == {"description", "background"}


def assert_roc_consistent(auc: float, balanced_acc: float, best: bool = True) -> None:
    """A balanced accuracy b = (1 + TPR - FPR) / 2 at one ROC point and the AUC of the same scores.
    Monotone curve: AUC >= TPR (1 - FPR) >= TPR - FPR at any point, and the same for the reversed
    scores, so AUC / 2 <= b <= AUC / 2 + 1/2. At the best point also b >= 1/2 (keep everything)
    and AUC - 1/2, the area between curve and diagonal, <= TPR - FPR: b >= AUC / 2 + 1/4."""
    assert 0 <= auc <= 1
    low = max(0.5, auc / 2 + 0.25) if best else auc / 2
    assert low - 1e-6 <= balanced_acc <= auc / 2 + 0.5 + 1e-6


def test_auc_of_raw_scores_is_the_pairwise_probability():
    """Raw CLIP scores (tens) are ranked, not squashed by a float32 sigmoid that would tie them."""
    positive, negative = [40.0, 30.5, 30.25, 20.0], [30.25, 30.0, 25.0]
    exact = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative) / 12
    assert filter_models.auc(positive, negative) == pytest.approx(exact, abs=1e-6) and exact < 1


# Raw CLIP-like scores (60-130): a float32 sigmoid would map them all to 1.0 and tie them.
SEPARATED = [100.0, 110.0, 120.0, 120.001, 129.5], [60.0, 70.0, 90.0, 99.999]


def test_auc_and_threshold_of_separable_raw_scores():
    positive, negative = SEPARATED
    assert filter_models.auc(positive, negative) == 1.0
    assert filter_models.best_threshold(positive, negative) == (100.0, 1.0)  # keeps exactly the positives
    assert filter_models.auc(negative, positive) == 0.0
    assert filter_models.best_threshold(negative, positive) == (60.0, 0.5)  # nothing beats keeping everything
    assert filter_models.auc([77.0] * 3, [77.0] * 4) == 0.5
    assert filter_models.best_threshold([77.0] * 3, [77.0] * 4) == (77.0, 0.5)
    assert filter_models.auc([], negative) is None and filter_models.best_threshold(positive, []) == (None, None)


def test_auc_and_threshold_by_hand():
    positive, negative = [80.0, 70.0, 65.0], [75.0, 65.0, 60.0]
    # pairs won: 80 beats all 3; 70 beats 65 and 60; 65 ties 65 (1/2) and beats 60 -> 6.5 of 9
    assert filter_models.auc(positive, negative) == pytest.approx(6.5 / 9, abs=1e-6)
    # keep >= 60: (3/3 + 0/3) / 2; >= 65: (3/3 + 1/3) / 2; >= 70: (2/3 + 2/3) / 2; >= 75: (1/3 + 2/3) / 2;
    # >= 80: (1/3 + 3/3) / 2. Best 2/3, first reached at 65.
    assert filter_models.best_threshold(positive, negative) == (65.0, 2 / 3)


def test_auc_and_threshold_match_brute_force():
    """Random integer scores (many ties) against the definitions: AUC = P(pos > neg) + P(tie) / 2; the
    threshold is the lowest score with the best balanced accuracy (exact fractions, so ties are ties)."""
    from fractions import Fraction

    rng = np.random.default_rng(0)
    for _ in range(200):
        positive = rng.integers(60, 131, rng.integers(1, 25)).astype(float).tolist()
        negative = rng.integers(60, 131, rng.integers(1, 25)).astype(float).tolist()
        pairs = sum((p > n) + Fraction(p == n, 2) for p in positive for n in negative)
        assert filter_models.auc(positive, negative) == pytest.approx(pairs / len(positive) / len(negative), abs=1e-6)
        balanced = {t: Fraction(sum(p >= t for p in positive), 2 * len(positive))
                    + Fraction(sum(n < t for n in negative), 2 * len(negative)) for t in {*positive, *negative}}
        best = max(balanced.values())
        lowest = min(t for t, b in balanced.items() if b == best)
        assert filter_models.best_threshold(positive, negative) == (lowest, float(best))
        area = float(pairs / len(positive) / len(negative))
        assert_roc_consistent(area, float(best))
        for b in balanced.values():  # every threshold
            assert_roc_consistent(area, float(b), best=False)
