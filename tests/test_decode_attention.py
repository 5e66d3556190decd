"""The engine's decode attention kernel (genixer.generation.decode_attention), run in Triton's interpreter (a
subprocess with TRITON_INTERPRET=1): equal to SDPA under masks that skip blocks, and the engine through it equal to
HF generate."""
import json
import os
import subprocess
import sys

import pytest
import torch

from genixer.generation import decode_attention as kernel

pytest.importorskip("triton")

INTERPRETED = r"""
import json, sys, torch
sys.path.insert(0, "tests")
from genixer.generation import decode_attention as kernel
result, gen = {}, torch.Generator().manual_seed(1)
for group, d, width in ((1, 32, 150), (4, 16, 64)):   # MHA over 3 blocks, the last one partial; GQA in one block
    q = torch.randn(5, 2 * group, 1, d, generator=gen)
    k, v = torch.randn(5, 2, width, d, generator=gen), torch.randn(5, 2, width, d, generator=gen)
    mask = torch.arange(width)[None] < torch.tensor([1, width // 3, 64, width, width - 1])[:, None]
    mask[4, :40] = False   # left padding
    mask[3, 64:128] = False   # a whole block kept nowhere, between kept ones (width 150)
    mask = mask[:, None, None]
    got, want = kernel.decode_attention(q, k, v, mask, d ** -0.5), kernel.reference(q, k, v, mask, d ** -0.5)
    unmasked = kernel.reference(q, k, v, torch.ones_like(mask), d ** -0.5)
    result[f"{group}_{d}_{width}"] = [float((got - want).abs().max()), float((unmasked - want).abs().max())]
result["usable"] = kernel.usable(q, k, v, mask)
result["matches_on_cpu"] = kernel._kernel_matches(torch.device("cpu"))
# the engine: its decode steps through the kernel, greedy tokens equal to HF generate's (fp32)
import test_engine
from genixer.generation import engine as engine_module
from genixer.generation import engine_attention
calls = []
def counting(*args):
    calls.append(1)
    return kernel.decode_attention(*args)
engine_attention.decode_attention = counting
mini = test_engine.mini.__wrapped__()
_, codec, model, batch = mini
eos, pad = codec.tokenizer.eos_token_id, codec.tokenizer.pad_token_id
ids = [row[m.bool()] for row, m in zip(batch["input_ids"], batch["attention_mask"])][:3]
engine = engine_module.DecodeEngine(model, max(map(len, ids)), 5, eos, pad, slots=2, sync_every=1)   # a refill
engine.submit([engine_module.Request(k, ids[k], batch["pixel_values"][k]) for k in range(3)])
with torch.no_grad():
    got = {r.key: row[row != pad].tolist() for r, row in engine.run()}
result["engine_equals_hf"] = [got[k] for k in range(3)] == test_engine.decode(mini, "dynamic", 5)[:3]
result["kernel_calls"] = len(calls)
print(json.dumps(result))
"""


def test_kernel_equals_sdpa_and_the_engine_equals_hf_generate():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", INTERPRETED], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for case in ("1_32_150", "4_16_64"):
        error, mask_effect = result[case]
        assert error < 1e-5 and mask_effect > 0.1, (case, error, mask_effect)   # the mask matters, and is obeyed
    assert result["usable"] and result["matches_on_cpu"] and result["engine_equals_hf"]
    assert result["kernel_calls"] > 0


def test_inputs_it_does_not_serve_go_to_sdpa(monkeypatch):
    q, k = torch.zeros(2, 4, 1, 32), torch.zeros(2, 4, 10, 32)
    mask = torch.ones(2, 1, 1, 10, dtype=torch.bool)
    assert not kernel.usable(q, k, k, mask)                     # on a CPU without the interpreter
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert kernel.usable(q, k, k, mask)
    assert not kernel.usable(torch.zeros(2, 4, 3, 32), k, k, mask)             # a prompt, not a decode step
    assert not kernel.usable(q, k, k, mask.float())                            # an additive mask
    assert not kernel.usable(q, k, k, mask.expand(2, 4, 1, 10))                # a mask per head
    assert not kernel.usable(torch.zeros(2, 4, 1, 24), torch.zeros(2, 4, 10, 24), torch.zeros(2, 4, 10, 24), mask)


def test_a_kernel_that_differs_from_sdpa_is_not_used(monkeypatch, caplog):
    monkeypatch.setattr(kernel, "decode_attention", lambda q, k, v, mask, scale: torch.zeros_like(q))
    assert not kernel._kernel_matches(torch.device("cpu"))
    assert "use SDPA instead" in caplog.text
