"""The engine's compiled decoder layers (``CompiledLayers``): the same numbers as the eager layers and norms, swapped
in only inside their context, and the engine's greedy tokens through them (prefill, and decode steps with
``compile_decode``) still HF ``generate``'s (CPU, fp32; compiling on the CPU takes tens of seconds, so this file
runs in the lane beside the main suite)."""
from __future__ import annotations

import torch

from genixer.generation import compiled_layers
from genixer.generation.compiled_layers import CompiledLayers
from genixer.generation.engine import DecodeEngine
from genixer.generation.engine_attention import engine_attention
from tests.test_engine import decode, mini  # noqa: F401 - the shipped Genixer_L mini fixture


def test_compiled_forwards_equal_the_eager_modules_inside_their_context_only(mini):  # noqa: F811
    model = mini[2]
    decoder = model.get_decoder()
    layers = len(decoder.layers)
    compiled = CompiledLayers(decoder, engine_attention)
    assert (compiled.layers, compiled.pieces) == (layers, layers + 1)   # every layer whole, and the final norm
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
    assert CompiledLayers(torch.nn.Sequential(torch.nn.Linear(2, 2)), engine_attention).pieces == 0   # none to take


def test_engine_with_compiled_layers_gives_hf_generates_greedy_tokens(mini, monkeypatch):  # noqa: F811
    hf = decode(mini, "dynamic", 40)
    tokens = []   # tokens through the compiled layers: prompts' (> 2) and decode steps' (one per slot, 2 slots)
    real_output = compiled_layers.attention_output
    monkeypatch.setattr(compiled_layers, "attention_output", lambda x, *a: tokens.append(len(x)) or real_output(x, *a))
    assert decode(mini, "engine", 40, slots=2) == hf and not tokens   # auto: off on a CPU
    with torch.inference_mode():   # as under Lightning's predict
        assert decode(mini, "engine", 40, slots=2, compile_prefill=True) == hf
    assert tokens and min(tokens) > 2   # every prefill, and no decode step, ran through the compiled layers
    tokens.clear()
    with torch.inference_mode():   # the generation setting reaches the engine
        assert decode(mini, "engine", 40, slots=2, compile_prefill=True, compile_decode=True) == hf
    assert min(tokens) <= 2 < max(tokens)   # now the decode steps too


def test_the_engine_compiles_its_prefill_before_it_runs(mini):  # noqa: F811
    """The layers compile when the engine is built (from its probe request), once for chunks of one prompt and of
    several and for the decode steps (their tokens flattened: no batch or length of 1 to specialize; 16 slots: every
    decode bucket holds 2 slots or more), none while it runs."""
    from torch._dynamo.utils import counters
    from genixer.generation.engine import Request

    backbone, codec, model, batch = mini
    tok = codec.tokenizer
    ids = [row[mask.bool()] for row, mask in zip(batch["input_ids"], batch["attention_mask"])]
    requests = [Request(k, ids[k], batch["pixel_values"][k]) for k in range(len(ids))]
    with torch.inference_mode():
        before = counters["stats"]["unique_graphs"]
        engine = DecodeEngine(model, max(map(len, ids)), 6, tok.eos_token_id, tok.pad_token_id, slots=16,
                              prefill_rows=2, probe=requests, compile_prefill=True, compile_decode=True)
        compiled = counters["stats"]["unique_graphs"]
        assert compiled - before <= 3   # attention inputs, attention output, the final norm (fewer if an earlier test compiled them)
        engine.submit(requests)
        engine.run()
    assert engine.stats["prefilled"] == len(requests) and counters["stats"]["unique_graphs"] == compiled
    assert list(engine.setup_s) == ["prefill_compile"] and engine.setup_s["prefill_compile"] > 0   # timed apart
    spent = engine.setup_compile_s["prefill_compile"]   # torch.compile's share of it
    assert 0 <= spent <= engine.setup_s["prefill_compile"] + 0.01
    if compiled > before:
        assert spent > 0
