"""Depth up-scaling (``genixer.training.deepen``): twice the layers, the same function."""
from __future__ import annotations

import pytest
import torch
from transformers import LlavaForConditionalGeneration

from conftest import ROOT
from genixer.training import deepen


def test_deepened_model_computes_the_same_logits_and_its_copies_can_learn(tmp_path):
    source = ROOT / "checkpoints/genixer_s_mini"
    deepen.main([str(source), str(tmp_path / "deep")])
    small = LlavaForConditionalGeneration.from_pretrained(source, dtype=torch.float32).eval()
    deep = LlavaForConditionalGeneration.from_pretrained(tmp_path / "deep", dtype=torch.float32).eval()
    layers = small.config.text_config.num_hidden_layers
    assert deep.config.text_config.num_hidden_layers == 2 * layers
    torch.manual_seed(0)
    text = torch.randint(5, 1000, (2, 12))
    ids = torch.cat([text[:, :3], torch.full((2, 64), small.config.image_token_index), text[:, 3:]], 1)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(small(input_ids=ids, pixel_values=pixels).logits,
                              deep(input_ids=ids, pixel_values=pixels).logits, atol=1e-5)
    copy = deep.model.language_model.layers[1]
    assert not copy.self_attn.o_proj.weight.any() and not copy.mlp.down_proj.weight.any()
    assert torch.equal(copy.self_attn.q_proj.weight, small.model.language_model.layers[0].self_attn.q_proj.weight)
    deep.train()   # the zeroed projections get gradients: the copies start contributing after one step
    deep(input_ids=ids, pixel_values=pixels, labels=ids).loss.backward()
    assert copy.self_attn.o_proj.weight.grad.abs().sum() > 0 and copy.mlp.down_proj.weight.grad.abs().sum() > 0
    assert (tmp_path / "deep/tokenizer.json").is_file() and not (tmp_path / "deep/RECIPE.md").exists()
    assert not list((tmp_path / "deep").glob("*.jsonl"))
    with pytest.raises(SystemExit, match="exists"):
        deepen.main([str(source), str(tmp_path / "deep")])
