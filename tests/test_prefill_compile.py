"""The engine's compiled prefill pieces (``CompiledPrefill``): the same numbers as the eager modules, swapped in
only inside their context, and the engine's greedy tokens through them still HF ``generate``'s (CPU, fp32;
compiling on the CPU takes tens of seconds, so this file runs in the lane beside the main suite)."""
from __future__ import annotations

import torch

from genixer.generation.prefill_compile import CompiledPrefill
from tests.test_engine import decode, mini  # noqa: F401 - the shipped Genixer_L mini fixture


def test_compiled_pieces_equal_the_eager_modules_inside_their_context_only(mini):  # noqa: F811
    model = mini[2]
    decoder = model.get_decoder()
    layers = len(decoder.layers)
    compiled = CompiledPrefill(decoder)
    assert compiled.pieces == 3 * layers + 1   # two norms and an MLP per layer, the final norm
    x = torch.randn(3, 7, model.config.get_text_config().hidden_size, generator=torch.Generator().manual_seed(0))
    modules = [decoder.layers[0].input_layernorm, decoder.layers[-1].mlp, decoder.norm]
    with torch.no_grad():
        eager = [m(x) for m in modules]
        with compiled():
            assert all("forward" in m.__dict__ for m in modules)
            inside = [m(x) for m in modules] + [m(x[:1, :4]) for m in modules]   # another shape: no recompile needed
        assert all("forward" not in m.__dict__ for m in modules)   # the class's forward again
    for a, b in zip(eager, inside[:3]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(eager, inside[3:]):
        torch.testing.assert_close(a[:1, :4], b, rtol=1e-5, atol=1e-5)
    assert CompiledPrefill(torch.nn.Sequential(torch.nn.Linear(2, 2))).pieces == 0   # another architecture: none


def test_engine_with_compiled_prefill_gives_hf_generates_greedy_tokens(mini, monkeypatch):  # noqa: F811
    hf = decode(mini, "dynamic", 40)
    swapped = []
    real = CompiledPrefill.__call__
    monkeypatch.setattr(CompiledPrefill, "__call__", lambda self: swapped.append(self.pieces) or real(self))
    assert decode(mini, "engine", 40, slots=2) == hf and not swapped   # auto: off on a CPU
    with torch.inference_mode():   # as under Lightning's predict
        assert decode(mini, "engine", 40, slots=2, compile_prefill=True) == hf
    assert swapped and all(swapped)   # every prefill ran through the compiled pieces
