"""The paper's runs as experiment files (conf/experiment/paper_*.yaml): each composes to the paper's settings and
has a mini-world twin, built on the same file, that trains here (so no experiment file can rot)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import CONF, compose_config, world_overrides
from genixer.pipelines import train
from genixer.training.global_batch import trainer_accumulation


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


def compose_paper(name: str, tmp_path, *overrides: str):
    return compose_config("train", [f"paths.output_dir={tmp_path}", f"experiment={name}", *overrides])


def sources(cfg) -> dict[str, str]:
    return {name: c.source._target_.rsplit(".", 1)[-1] for name, c in cfg.data.mixture.components.items()}


def test_llava_pretrain_is_the_papers_recipe(tmp_path):
    cfg = compose_paper("paper_llava_pretrain", tmp_path)
    # Vicuna-7B v1.5 + CLIP (+ the stage-1 projector) has no shipped backbone option: the path must be given.
    assert cfg.backbone._target_.endswith("PretrainedLlava") and cfg.backbone.path is None
    assert cfg.backbone.conversation.name == "vicuna_v1"
    assert cfg.module.stage == "projector" and cfg.module.activation_checkpointing
    assert cfg.module.optimizer.lr == 2e-5 and cfg.trainer.max_epochs == 1 and cfg.global_batch_size == 256
    assert cfg.data.batch_size == 16 and cfg.trainer.devices == 8 and trainer_accumulation(cfg) == 2
    assert not cfg.data.group_by_length
    assert cfg.trainer.strategy.stage == 2 and cfg.trainer.precision == "bf16-mixed"
    assert sources(cfg) == {"conversations": "LLaVAJsonl"}
    assert cfg.data.mixture.components.conversations.task._target_ == "genixer.tasks.Conversation"
    assert cfg.data.mixture.components.conversations.source.path.endswith("/Genixer_915K.jsonl")
    ablation = compose_paper("paper_llava_pretrain", tmp_path, "data/source@data.mixture.components.conversations.source=genixer_300k")
    assert ablation.data.mixture.components.conversations.source.path.endswith("/Genixer_300K.jsonl")


def test_llava_finetune_is_the_papers_recipe(tmp_path):
    cfg = compose_paper("paper_llava_finetune", tmp_path)
    assert cfg.backbone._target_.endswith("PretrainedLlava") and cfg.backbone.path is None   # the pretrain run dir
    assert cfg.module.stage == "full" and cfg.module.activation_checkpointing
    assert cfg.module.optimizer.lr == 2e-5 and cfg.trainer.max_epochs == 1 and cfg.global_batch_size == 128
    assert cfg.data.batch_size == 8 and cfg.trainer.devices == 8 and trainer_accumulation(cfg) == 2
    assert cfg.data.group_by_length
    assert cfg.trainer.strategy.stage == 3 and cfg.trainer.precision == "bf16-mixed"
    assert sources(cfg) == {"conversations": "LLaVAJsonl"}
    assert cfg.data.mixture.components.conversations.task._target_ == "genixer.tasks.Conversation"
    assert cfg.data.mixture.components.conversations.source.path.endswith("/llava_mix665k_synthetic_8k.jsonl")


@pytest.mark.parametrize("stage,lr", [(1, 3e-5), (2, 1e-5)])
def test_genixer_s_is_the_papers_recipe(stage, lr, tmp_path):
    cfg = compose_paper(f"paper_genixer_s_stage{stage}", tmp_path)
    assert cfg.backbone._target_.endswith("PretrainedLlava") and cfg.backbone.path is None   # Shikra-7B / stage 1
    assert cfg.backbone.conversation.name == "vicuna_v1.1" and cfg.seed == 42
    assert cfg.module.stage == "full" and cfg.module.activation_checkpointing
    assert cfg.module.optimizer.lr == lr and cfg.trainer.max_epochs == 5 and cfg.global_batch_size == 128
    assert cfg.trainer.strategy._target_.endswith("FSDPStrategy") and cfg.trainer.strategy.sharding_strategy == "FULL_SHARD"
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.devices == 8
    assert cfg.data.batch_size == 16 and trainer_accumulation(cfg) == 1   # no accumulation under FSDP (see the file)
    components = cfg.data.mixture.components
    if stage == 1:
        assert sources(cfg) == {"rec_vg": "RECJsonl", "reg_vg": "RECJsonl", "rec": "RECJsonl", "reg": "RECJsonl"}
        assert components.rec_vg.fraction == components.reg_vg.fraction == 1 / 20 and components.rec.get("fraction") is None
    else:
        assert set(components) == {"rec_vg", "reg_vg", "rec", "reg", "pointqa_local_b", "pointqa_local_p",
                                   "pointqa_v7w_b", "pointqa_v7w_p", "qca_box", "rd"}
        assert components.rec_vg.fraction == 1 / 40 and components.rec.fraction == 1 / 4
        assert components.qca_box.repeat == components.rd.repeat == 5


def test_shikra_syn_rec_is_shikra_stage_2_on_rec_plus_the_synthetic_rows(tmp_path):
    cfg = compose_paper("paper_shikra_syn_rec", tmp_path)
    assert cfg.backbone._target_.endswith("PretrainedLlava") and cfg.backbone.path is None   # Shikra-7B, converted
    assert cfg.backbone.conversation.name == "vicuna_v1.1" and cfg.module.stage == "full"
    assert cfg.module.optimizer.lr == 2e-5 and cfg.trainer.max_epochs == 3 and cfg.global_batch_size == 64
    assert cfg.data.batch_size == 8 and cfg.trainer.devices == 8 and trainer_accumulation(cfg) == 1
    assert cfg.trainer.strategy._target_.endswith("FSDPStrategy")
    assert sources(cfg) == {"rec": "RECJsonl", "syn_lcs": "SyntheticREC", "syn_sbu": "SyntheticREC"}
    assert {c.task._target_ for c in cfg.data.mixture.components.values()} == {"genixer.tasks.REC"}
    paths = [c.source.path for c in cfg.data.mixture.components.values()]
    assert paths[1].endswith("/syn_lcs_filtered60.jsonl") and paths[2].endswith("/syn_sbu_filtered60.jsonl")
    baseline = compose_paper("paper_shikra_syn_rec", tmp_path, "~data.mixture.components.syn_lcs", "~data.mixture.components.syn_sbu")
    assert sources(baseline) == {"rec": "RECJsonl"}
    twin = compose_paper("paper_shikra_syn_rec_mini", tmp_path)
    assert sources(twin) == {"rec": "RECJsonl", "syn": "SyntheticREC"}


@pytest.mark.parametrize("paper", PAPERS)
def test_the_twin_trains(paper, tmp_path, small_world):
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", f"experiment={paper}_mini", *world_overrides(small_world)])
    # The twin runs on the mini world only: a tiny backbone, mini-world data, the CPU.
    assert cfg.backbone._target_ == "genixer.backbones.llava.TinyLlava" and cfg.trainer.accelerator == "cpu"
    assert all(c.source.image_root.startswith(str(small_world)) for c in cfg.data.mixture.components.values())
    metrics = train.run(cfg)
    assert metrics["steps"] == 2 and metrics["train/loss"] > 0
    assert Path(tmp_path, "checkpoint", "model.safetensors").exists()
