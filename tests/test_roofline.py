"""The hardware limit a generation or scoring run is compared to (genixer.runs.roofline)."""
from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from genixer.runs.roofline import BURST, forward_limit, fraction, generation_limit, kv_bytes_per_token

LIMITS = {"device": "test", "matmul_flops": 1e12, "copy_bytes_per_s": 1e11}


def test_generation_limit_adds_prefill_compute_decode_matmuls_and_kv_traffic():
    config = LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    assert kv_bytes_per_token(config) == 2 * 2 * 2 * 16 * 2  # K and V, 2 layers, 2 KV heads of 16, bf16
    limit = generation_limit(model, prompt_tokens=100, new_tokens=20, rows_per_step=4, limits=LIMITS)
    prefill = 2 * params * 100 / 1e12
    # 4 rows a step: a token's share of the weights' bytes (2 params / 4 / 1e11) outlasts its FLOPs (2 params / 1e12)
    matmuls, kv = 20 * 2 * params / 4 / 1e11, 20 * 256 * (100 + 10) / 1e11
    assert limit["limit_samples_per_s_serial"] == pytest.approx(1 / (prefill + matmuls + kv), rel=1e-2)
    overlap = max(prefill + 20 * 2 * params / 1e12, matmuls + kv)
    assert limit["limit_samples_per_s_overlap"] == pytest.approx(1 / overlap, rel=1e-2)
    # 64 rows a step: the weights' bytes per token fall below its FLOPs, which then bound the decode matmuls
    more_rows = generation_limit(model, 100, 20, 64, LIMITS)
    compute_bound = 1 / (prefill + 20 * 2 * params / 1e12 + kv)
    assert more_rows["limit_samples_per_s_serial"] == pytest.approx(compute_bound, rel=1e-2)
    assert more_rows["limit_samples_per_s_serial"] > limit["limit_samples_per_s_serial"]
    assert generation_limit(model, 100, 20, 4, LIMITS, devices=2)["limit_samples_per_s_serial"] == \
        pytest.approx(2 * limit["limit_samples_per_s_serial"], rel=1e-2)


def test_forward_limit_is_compute_bound():
    assert forward_limit(2e9 * 500, LIMITS, devices=2)["limit_items_per_s"] == pytest.approx(2 * 1e12 / (2e9 * 500))


def test_a_limit_says_how_its_rates_were_measured():
    """A measured device's limits are a burst's (a long run at the power cap runs below them): the manifest says so."""
    assert forward_limit(1e9, LIMITS)["rates"] == "given"
    assert forward_limit(1e9, {**LIMITS, "rates": BURST})["rates"] == BURST and BURST.startswith("burst")


def test_fraction_keeps_three_significant_digits():
    """A tiny model on an H200 runs at ~1e-4 of its limit (measured: 59.75 of 347,922.9 samples/s): not 0."""
    assert fraction(59.75, 347922.9) == 0.000172
    assert fraction(23.81, 42.6) == 0.559
