"""The generation metric of the validation loop grades what the model writes as the evaluation stage does."""
from __future__ import annotations

import json
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from conftest import ROOT, compose_config, world_overrides
from genixer.backbones.llava import PretrainedLlava
from genixer.miniworld.evaluator import MiniWorldOracle
from genixer.pipelines import generate
from genixer.pipelines.generation_metric import GenerationMetric


def test_counts_equal_generate_then_evaluate(tmp_path, small_world):
    """The shipped Genixer_L on the small world's val images: the callback's (correct, parsed, samples) per task equal
    generate.py's samples graded by the evaluation stage's oracle."""
    world = world_overrides(small_world)
    oracle = lambda: MiniWorldOracle(str(small_world / "annotations/instances_val.json"),  # noqa: E731
                                     str(small_world / "annotations/v2_mini_train_annotations.json"), "val")
    queries = str(small_world / "images/val.jsonl")
    tasks = {name: instantiate(compose_config("generate", [f"task={name}"]).task) for name in ("common_vqa", "rec")}
    metric = GenerationMetric(tasks, queries, oracle, images=4, max_new_tokens=48, batch_size=3)
    metric.oracle = oracle()
    backbone = PretrainedLlava(str(ROOT / "checkpoints/genixer_l_mini"), dtype="float32")
    codec = backbone.codec()
    module = SimpleNamespace(codec=codec, model=backbone.build(codec).eval(), device=torch.device("cpu"))
    trainer = SimpleNamespace(global_rank=0, world_size=1, precision_plugin=SimpleNamespace(forward_context=nullcontext))
    for name in tasks:
        got = metric.grade(trainer, module, tasks[name])
        out = tmp_path / name
        generate.run(compose_config("generate", [f"paths.output_dir={out}", f"task={name}", f"queries={queries}", *world,
                                                 "generation.max_new_tokens=48", "samples_per_image=1"]))
        rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        parsed = [r for r in rows if r["status"] == "ok"]
        assert len(rows) == 4 and got == (sum(metric.oracle.check(r)[0] for r in parsed), len(parsed), 4), name
        assert got[1] >= 3 and got[0] >= 2  # the shipped generator's samples parse and are right: not vacuous


def test_refuses_bad_settings():
    with pytest.raises(ValueError, match="no tasks"):
        GenerationMetric({}, "q.jsonl", lambda: None)
    with pytest.raises(ValueError, match=">= 1"):
        GenerationMetric({"rec": object()}, "q.jsonl", lambda: None, images=0)
    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
    metric = GenerationMetric({"rec": object()}, "q.jsonl", lambda: None)
    for strategy in (FSDPStrategy(), DeepSpeedStrategy(stage=3)):
        with pytest.raises(ValueError, match="whole parameters"):
            metric.on_fit_start(SimpleNamespace(strategy=strategy), None)
    metric.on_fit_start(SimpleNamespace(strategy=DeepSpeedStrategy(stage=2)), None)  # ZeRO-2 keeps whole parameters
