"""Stage 1's dense labels (per-patch object attributes, the optional background head) and the background probe."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_config, world_overrides
from genixer.miniworld import Oracle
from genixer.miniworld.models import background_probe
from genixer.miniworld.models.background_probe import ridge_predict
from genixer.miniworld.models.dense_labels import DenseLabels, world_vocab
from genixer.miniworld.scene import BACKGROUNDS
from genixer.pipelines import train


def dense_data(world, tmp_path, *extra):
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", "experiment=mini_world_cpu_vision", "debug=fast",
                                   *world_overrides(world), *extra])
    return cfg, train.assemble(cfg, instantiate(cfg.backbone))[0]


def test_background_head_labels_the_patches_outside_every_object(small_world, tmp_path):
    _, plain = dense_data(small_world, tmp_path / "a")
    _, with_bg = dense_data(small_world, tmp_path / "b", "data.vocab.backgrounds=true")
    seed = json.loads((small_world / "world.json").read_text())["seed"]
    oracle = Oracle.from_instances(small_world / "annotations/instances_train.json", seed)
    a, b = plain.train_dataloader().dataset, with_bg.train_dataloader().dataset
    seen = set()
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert "background" not in x and all(torch.equal(x[k], y[k]) for k in x)  # the object heads are unchanged
        kind = world_vocab(True)["background"].index(oracle.background(a.labels.images[i]["id"])) + 1
        outside = x["shape"] == 0
        assert outside.any() and (y["background"][outside] == kind).all() and (y["background"][~outside] == 0).all()
        seen.add(kind)
    assert len(seen) >= 3  # the small world draws several backgrounds


def test_background_head_needs_the_world_seed(small_world):
    with pytest.raises(ValueError, match="world_file"):
        DenseLabels(str(small_world / "annotations/instances_train.json"), str(small_world / "images"), world_vocab(True))


def test_vision_stage_trains_and_exports_the_background_head(small_world, tmp_path):
    cfg, _ = dense_data(small_world, tmp_path, "data.vocab.backgrounds=true")
    metrics = train.run(cfg)
    assert metrics["steps"] == 3 and metrics["train/loss"] > 0
    vocab = json.loads((tmp_path / "checkpoint/vocab.json").read_text())
    assert vocab["background"] == world_vocab(True)["background"] and vocab["shape"] == world_vocab()["shape"]


class Reads(torch.nn.Module):
    def __init__(self, read) -> None:
        super().__init__()
        self.read = read

    def forward(self, features):
        return self.read(features)


def test_vision_stage_validates_each_head_on_the_val_split(small_world, tmp_path):
    """Val accuracy is each head's on the object patches of val images (none of them trained on): with heads that
    read the true label back it is 1, with one label in three wrong it is 2/3; the box error is 0 for true boxes."""
    val = small_world / "annotations/instances_val.json"
    cfg, data = dense_data(small_world, tmp_path, f"data.val_instances={val}")
    train_ids = {im["id"] for im in data.labels.images}
    loader = data.val_dataloader()
    assert {im["id"] for im in loader.dataset.labels.images}.isdisjoint(train_ids) and len(loader.dataset) == 4
    assert dense_data(small_world, tmp_path / "none")[1].val_dataloader() == []   # no val split asked: no loop
    _, module = train.assemble(cfg, instantiate(cfg.backbone))
    module.configure_model()
    batch = next(iter(loader))
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    module.features = lambda b: b["read"]
    for k in ("color", "shape", "size"):   # a head that returns its patch's label as the highest logit
        module.heads[k] = Reads(lambda f, k=k: torch.nn.functional.one_hot(f[k], 16).float())
    module.box_head = Reads(lambda f: torch.logit(f["box"].clamp(1e-6, 1 - 1e-6)))
    fg = batch["shape"] > 0
    read = {k: batch[k].clone() for k in ("color", "shape", "size", "box")}
    module.validation_step({**batch, "read": read}, 0)
    assert fg.sum() >= 8 and all(logged[f"val/{k}_acc"] == 1.0 for k in ("color", "shape", "size"))
    assert logged["val/box_l1"] < 1e-4
    wrong = read["color"].clone()
    index = fg.nonzero()[::3]   # one object patch in three read with another colour
    wrong[index[:, 0], index[:, 1]] = wrong[index[:, 0], index[:, 1]] % 6 + 1
    module.validation_step({**batch, "read": {**read, "color": wrong}}, 0)
    assert logged["val/color_acc"] == pytest.approx(1 - len(index) / int(fg.sum())) and logged["val/shape_acc"] == 1.0
    cfg, _ = dense_data(small_world, tmp_path / "run", f"data.val_instances={val}", "+trainer.val_check_interval=3")
    metrics = train.run(cfg)   # a run reports them
    assert {"val/color_acc", "val/shape_acc", "val/size_acc", "val/box_l1"} <= set(metrics)


# the background probe ----------------------------------------------------------------------------
def test_ridge_probe_reads_what_the_features_hold_and_nothing_else():
    rng = np.random.default_rng(0)
    y_fit, y_test = rng.integers(5, size=300), rng.integers(5, size=300)
    signal = lambda y: np.eye(5)[y] + 0.1 * rng.normal(size=(len(y), 5))  # noqa: E731
    assert (ridge_predict(signal(y_fit), y_fit, signal(y_test), 5) == y_test).all()
    noise = lambda y: rng.normal(size=(len(y), 5))  # noqa: E731
    assert (ridge_predict(noise(y_fit), y_fit, noise(y_test), 5) == y_test).mean() < 0.35  # chance is 0.2


def test_background_probe_fits_on_val_and_scores_heldout(small_world, tiny_vision):
    result = background_probe.main([str(tiny_vision), "--world", str(small_world)])[str(tiny_vision)]
    seed = json.loads((small_world / "world.json").read_text())["seed"]
    oracle = Oracle.from_instances(small_world / "annotations/instances_heldout.json", seed)
    counts = Counter(oracle.background(i) for i in oracle.image_ids)
    assert (result["fit_images"], result["test_images"]) == (4, 12) and result["classes"] == list(BACKGROUNDS)
    assert result["commonest"] == max(counts.values()) / 12 and result["accuracy"] * 12 == pytest.approx(round(result["accuracy"] * 12))
