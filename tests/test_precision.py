"""Rotary embeddings stay fp32 under ``bf16-true`` (``genixer.runs.precision``)."""
from __future__ import annotations

import copy

import lightning as L
import torch
from torch.utils.data import DataLoader
from transformers import LlamaConfig, LlamaForCausalLM, PersimmonConfig, PersimmonForCausalLM

from genixer.runs.precision import fp32_rotary
from tests.test_engine import mini  # noqa: F401 - the shipped Genixer_L mini fixture

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, vocab_size=100)


def test_a_bf16_cast_loses_the_frequencies_and_fp32_rotary_recomputes_them():
    for model in (LlamaForCausalLM(LlamaConfig(**SMALL)), PersimmonForCausalLM(PersimmonConfig(**SMALL))):
        rotary = next(m for m in model.modules() if type(m).__name__.endswith("RotaryEmbedding"))
        exact = rotary.inv_freq.clone()
        assert exact.dtype == torch.float32
        model.to(torch.bfloat16)
        assert rotary.inv_freq.dtype == torch.bfloat16 and not torch.equal(rotary.inv_freq.float(), exact)
        assert fp32_rotary(model) == 1
        assert rotary.inv_freq.dtype == torch.float32 and torch.equal(rotary.inv_freq, exact)
        assert torch.equal(rotary.original_inv_freq, exact)
        assert fp32_rotary(model) == 0 and fp32_rotary(None) == 0   # nothing left to do


def test_a_rotary_module_it_cannot_rebuild_is_left_with_a_warning(caplog):
    class Rotary(torch.nn.Module):   # built from (config, dim), not from its config alone
        def __init__(self, config, dim):
            super().__init__()
            self.config, self.inv_freq = config, torch.ones(dim, dtype=torch.bfloat16)

    module = Rotary(LlamaConfig(**SMALL), 4)
    assert fp32_rotary(module) == 0 and module.inv_freq.dtype == torch.bfloat16
    assert "cannot rebuild" in caplog.text


def test_generation_under_bf16_true_runs_with_fp32_frequencies(mini):  # noqa: F811
    from genixer.generation.module import GenerationModule
    from genixer.generation.settings import Decoding

    backbone, codec, model, batch = mini
    module = GenerationModule(backbone, codec, Decoding.from_config({"cache": "static", "max_new_tokens": 2}))
    module.model = copy.deepcopy(model)   # the fixture's model stays fp32 for the other tests
    seen = []

    class Watch(L.Callback):
        def on_predict_batch_start(self, trainer, pl_module, *args) -> None:
            seen.extend(m.inv_freq.dtype for m in pl_module.model.modules() if hasattr(m, "inv_freq"))
            seen.append(next(pl_module.model.parameters()).dtype)

    trainer = L.Trainer(accelerator="cpu", precision="bf16-true", logger=False, callbacks=[Watch()],
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.predict(module, DataLoader([batch], batch_size=None), return_predictions=False)
    assert seen == [torch.float32, torch.bfloat16]   # the weights were cast, the frequencies recomputed
