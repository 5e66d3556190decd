"""The paper's runs as experiment files (conf/experiment/paper_*.yaml): each composes to the paper's settings and
has a mini-world twin, built on the same file, that trains here (so no experiment file can rot)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import CONF, compose_config, world_overrides
from genixer.pipelines import train


PAPERS = sorted(p.stem for p in (CONF / "experiment").glob("paper_*.yaml") if not p.stem.endswith("_mini"))


def test_every_paper_experiment_has_a_twin_built_on_it():
    assert PAPERS
    for paper in PAPERS:
        twin = CONF / "experiment" / f"{paper}_mini.yaml"
        assert twin.exists(), f"{paper} has no mini-world twin"
        assert yaml.safe_load(twin.read_text())["defaults"][0] == paper   # the twin overrides the paper's file
        assert (CONF / "experiment" / f"{paper}.yaml").read_text().count("python train.py experiment=" + paper) == 1


def test_genixer_l_is_the_papers_recipe(tmp_path):
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", "experiment=paper_genixer_l"])
    assert cfg.backbone.path.endswith("llava-1.5-7b-hf") and cfg.module.stage == "full"
    assert cfg.module.optimizer.lr == 1e-5 and cfg.trainer.max_epochs == 1 and cfg.global_batch_size == 128
    assert cfg.trainer.strategy.stage == 3 and cfg.trainer.precision == "bf16-mixed" and cfg.trainer.devices == 8
    assert set(cfg.data.mixture.components) >= {"common_vqa", "adv_vqa", "mc_vqa", "md"}


@pytest.mark.parametrize("paper", PAPERS)
def test_the_twin_trains(paper, tmp_path, small_world):
    metrics = train.run(compose_config("train", [f"paths.output_dir={tmp_path}", f"experiment={paper}_mini",
                                                 *world_overrides(small_world)]))
    assert metrics["steps"] == 2 and metrics["train/loss"] > 0
    assert Path(tmp_path, "checkpoint", "model.safetensors").exists()
