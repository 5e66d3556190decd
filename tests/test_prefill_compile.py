"""The engine's compiled prefill (``CompiledPrefill``): the same numbers as the eager layers and norms, swapped in
only inside their context, and the engine's greedy tokens through them still HF ``generate``'s (CPU, fp32;
compiling on the CPU takes tens of seconds, so this file runs in the lane beside the main suite)."""
from __future__ import annotations

import torch

from genixer.generation.prefill_compile import CompiledPrefill
from tests.test_engine import decode, mini  # noqa: F401 - the shipped Genixer_L mini fixture


def test_compiled_forwards_equal_the_eager_modules_inside_their_context_only(mini):  # noqa: F811
    model = mini[2]
    decoder = model.get_decoder()
    layers = len(decoder.layers)
    compiled = CompiledPrefill(decoder)
    assert (compiled.layers, compiled.pieces) == (layers, layers + 1)   # every layer whole, and the final norm
    assert CompiledPrefill(decoder, whole_layers=False).pieces == 3 * layers + 1   # two norms and an MLP per layer
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, model.config.get_text_config().hidden_size, generator=gen)
    positions = torch.arange(7)[None].expand(3, 7)
    embeddings = decoder.rotary_emb(x, positions)
    layer, norm = decoder.layers[-1], decoder.norm

    def run(n):   # a causal layer (no mask, no cache) and the final norm on the first n positions
        rope = tuple(e[:, :n] for e in embeddings)
        return [layer(x[:, :n], attention_mask=None, position_ids=positions[:, :n], position_embeddings=rope), norm(x[:, :n])]

    with torch.no_grad():
        eager = run(7) + run(4)
        with compiled():
            assert all("forward" in m.__dict__ for m in (layer, norm))
            inside = run(7) + run(4)   # another length: no recompile needed
        assert all("forward" not in m.__dict__ for m in (layer, norm))   # the class's forward again
    for a, b in zip(eager, inside):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(eager[0], x)   # the layer did something
    assert CompiledPrefill(torch.nn.Sequential(torch.nn.Linear(2, 2))).pieces == 0   # another architecture: none


def test_engine_with_compiled_prefill_gives_hf_generates_greedy_tokens(mini, monkeypatch):  # noqa: F811
    hf = decode(mini, "dynamic", 40)
    swapped = []
    real = CompiledPrefill.__call__
    monkeypatch.setattr(CompiledPrefill, "__call__", lambda self: swapped.append(self.pieces) or real(self))
    assert decode(mini, "engine", 40, slots=2) == hf and not swapped   # auto: off on a CPU
    with torch.inference_mode():   # as under Lightning's predict
        assert decode(mini, "engine", 40, slots=2, compile_prefill=True) == hf
    assert swapped and all(swapped)   # every prefill ran through the compiled layers
