"""Throughput: the model-FLOPs formula by hand, tokens/s and MFU from a tiny CPU fit, the train manifest."""
from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from conftest import compose_config
from genixer.pipelines import train
from genixer.training.throughput import Throughput, flops_per_step, peak_tflops_of


def tiny_config() -> LlavaConfig:
    text = LlamaConfig(vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    vision = CLIPVisionConfig(hidden_size=4, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1,
                              image_size=8, patch_size=4, projection_dim=4)
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=9, projector_hidden_act="gelu",
                       vision_feature_layer=-1, vision_feature_select_strategy="default")


def test_flops_by_hand():
    # LM per layer: q 8x8, k and v 8x4 (1 kv head of dim 4), o 8x8, gated MLP 3x8x16 = 64+64+64+384 = 576;
    # 2 layers + LM head 8x10 = 1232 weights. Tokens 10 with context 6: attention 12*2*8*10*6.
    lm = 6 * 1232 * 10 + 12 * 2 * 8 * 10 * 6
    # Projector 4x8 + 8x8 = 96 weights, for 2 images x 4 patch tokens.
    projector = 6 * 96 * 2 * 4
    # ViT layer: 4x4x4 + 2x4x8 = 128 weights over 5 positions (4 patches + CLS); patch embedding 3x4x4x4
    # = 192 over 4 patches; attention forward 4*1*4*5*5.
    image = 2 * 128 * 5 + 2 * 192 * 4 + 4 * 1 * 4 * 5 * 5
    assert flops_per_step(tiny_config(), tokens=10, images=2, seq_len=6) == lm + projector + 2 * image
    assert flops_per_step(tiny_config(), 10, 2, 6, vision_trained=True) == lm + projector + 3 * 2 * image


def test_counted_weights_are_the_models_matmuls():
    """The config-derived weight counts equal the model's Linear (and patch Conv2d) weights."""
    from genixer.training.throughput import language_params, vision_params

    config = tiny_config()
    model = LlavaForConditionalGeneration(config)
    counted = {"language": 0, "vision": 0, "projector": 0}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            part = "vision" if "vision_tower" in name else "projector" if "projector" in name else "language"
            counted[part] += module.weight.numel()
    assert counted["language"] == language_params(config.text_config)
    assert counted["vision"] == vision_params(config.vision_config) + 3 * 4 * 4 * 4
    assert counted["projector"] == 4 * 8 + 8 * 8


def test_peak_table():
    assert peak_tflops_of("NVIDIA H100 80GB HBM3") == 989.4 and peak_tflops_of("NVIDIA H200") == 989.4
    assert peak_tflops_of("NVIDIA H100 PCIe") == 756.0 and peak_tflops_of("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops_of("Tesla T4") is None


class FakeLlava(L.LightningModule):
    """A tiny module with a LLaVA config (for the FLOPs) and a batch like the generator's."""

    def __init__(self):
        super().__init__()
        self.model = nn.Linear(4, 1)
        self.model.config = tiny_config()

    def training_step(self, batch, batch_idx):
        return self.model(batch["pixel_values"].mean((1, 2))).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def batches(n: int, mask: bool = True) -> DataLoader:
    mask_ = torch.tensor([[1] * 6 + [0] * 2, [1] * 4 + [0] * 4])   # 10 real tokens of 16 (padding: 0)
    rows = [{"input_ids": torch.ones(2, 8, dtype=torch.long), "labels": torch.ones(2, 8, dtype=torch.long),
             "attention_mask": mask_, "pixel_values": torch.rand(2, 3, 8, 4)} for _ in range(n)]
    return DataLoader([r if mask else {k: v for k, v in r.items() if k != "attention_mask"} for r in rows],
                      batch_size=None)


class Recorder(L.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def test_tokens_per_s_and_mfu_from_a_fit(tmp_path):
    meter, recorder = Throughput(every_n_steps=2, peak_tflops=1e-6), Recorder()
    logged = []

    class Logger(L.pytorch.loggers.CSVLogger):
        def log_metrics(self, metrics, step=None):
            logged.append(dict(metrics))

    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=5, logger=Logger(tmp_path), callbacks=[meter, recorder],
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(FakeLlava(), train_dataloaders=batches(5))
    # Batch 1 is warm-up; batches 2-5 are measured; logged after measured batches 2 and 4 (batches 3 and 5).
    assert meter.steps_measured == 4 and [w[0] for w in meter.window] == [10, 10]
    assert [("train/tokens_per_s" in s) for s in recorder.seen] == [False, False, True, True, True]
    assert sum("train/tokens_per_s" in m for m in logged) == 2
    tokens, flops, seconds = (sum(w[i] for w in meter.window) for i in range(3))
    assert tokens == 20 and flops == 2 * flops_per_step(tiny_config(), 10, 2, (36 + 16) / 10)
    assert meter.last["tokens_per_s"] == pytest.approx(tokens / seconds) and meter.last["tokens_per_s"] > 0
    assert meter.last["mfu"] == pytest.approx(flops / seconds / 1e6)   # peak 1e-6 TFLOPs = 1e6 FLOPs/s
    assert "tokens_per_s_global" not in meter.last
    summary = meter.summary()
    assert summary["steps_measured"] == 4 and summary["peak_tflops"] == 1e-6
    assert summary["tokens_per_s_per_device"] == pytest.approx(40 / meter.total[2])
    assert summary["mfu"] == pytest.approx(meter.total[1] / meter.total[2] / 1e6)
    assert summary["tokens_per_s_per_device_last"] == meter.last["tokens_per_s"]


def test_no_mfu_without_a_peak_and_no_tokens_without_a_mask():
    meter = Throughput(every_n_steps=1)   # on the CPU: no peak known
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False, callbacks=[meter],
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(FakeLlava(), train_dataloaders=batches(3))
    assert meter.peak_tflops is None and set(meter.last) == {"tokens_per_s"} and meter.steps_measured == 2

    meter = Throughput(every_n_steps=1)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False, callbacks=[meter],
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(FakeLlava(), train_dataloaders=batches(3, mask=False))
    assert meter.steps_measured == 0 and meter.last == {}


def test_train_manifest_has_throughput(tmp_path, small_world):
    out = tmp_path / "run"
    world = [f"paths.mini_world={small_world}", "world=mini", "world.num_train=60", "world.num_heldout=12",
             "world.num_val=4"]
    metrics = train.run(compose_config("train", [
        f"paths.output_dir={out}", "debug=fast", "+callbacks.throughput._target_=genixer.training.throughput.Throughput",
        "+callbacks.throughput.every_n_steps=1", "+callbacks.throughput.peak_tflops=1", "trainer.max_steps=2",
        "data.batch_size=2", "backbone.text.num_hidden_layers=1", "backbone.vision.num_hidden_layers=1", *world]))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metrics"]["throughput"] == metrics["throughput"]
    assert metrics["throughput"]["steps_measured"] == 1 and metrics["throughput"]["tokens_per_s_per_device"] > 0
    assert 0 < metrics["throughput"]["mfu"] < 1 and metrics["train/tokens_per_s"] > 0


def test_the_mfu_benchmark_measures_what_it_says(tmp_path):
    """benchmarks/train_mfu.py --tiny: every sample is image tokens + text, the last ``answer`` supervised, and the
    Throughput summary counts all of them (so its 7B tokens/s are 800-token samples)."""
    import argparse

    from benchmarks.train_mfu import RandomBatches, run_one

    args = argparse.Namespace(tiny=True, config="single", devices=1, steps=3, batch=2, text=12, answer=5,
                              checkpointing=True)
    out = run_one(args)
    assert out["tokens_per_sample"] == 4 + 12 and out["steps_measured"] == 2 and out["tokens_per_s_per_device"] > 0
    config = tiny_config()
    data = RandomBatches(config, batches=1, batch=2, text=12, answer=5, vocab=300)
    batch = data[0]
    assert (batch["labels"] != -100).sum(-1).tolist() == [5, 5]
    assert (batch["input_ids"] == config.image_token_index).sum(-1).tolist() == [4, 4]
