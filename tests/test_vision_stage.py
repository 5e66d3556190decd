"""Stage 1's dense labels: per-patch object attributes, and the optional background head."""
from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_config, world_overrides
from genixer.miniworld import Oracle
from genixer.miniworld.models.dense_labels import DenseLabels, world_vocab
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
