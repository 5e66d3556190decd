"""The continuous-batching decode engine (``generation.cache=engine``) and the counter-based sampling noise."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from conftest import ROOT, shipped_mini_batch
from genixer.generation.engine import DecodeEngine, Request
from genixer.generation.counter import bits_to_uniform, counter_gumbel
from genixer.generation.sampling import PerSampleSampler
from genixer.generation.settings import Decoding

PROMPTS = ["Ask a question about the image and answer it.\nThis is the Common VQA task.",
           "Where is it?\nThis is a Referring Expression Comprehension (REC) task.", "Describe", "What?",
           "Tell me a long story about the image, please.", "Is there a red circle?"]


@pytest.fixture(scope="module")
def mini():
    """The shipped Genixer_L mini checkpoint in fp32 (its answers end with EOS at different lengths)."""
    return shipped_mini_batch(PROMPTS)


def unpadded(batch: dict) -> list[torch.Tensor]:
    """The batch's prompts without their left padding."""
    return [row[mask.bool()] for row, mask in zip(batch["input_ids"], batch["attention_mask"])]


def decode(mini, cache: str, new_tokens: int = 24, **settings) -> list[list[int]]:
    from genixer.generation.module import GenerationModule

    backbone, codec, model, batch = mini
    module = GenerationModule(backbone, codec, Decoding.from_config({"cache": cache, "max_new_tokens": new_tokens, **settings}))
    module.model = model
    with torch.no_grad():
        return [ids[ids != codec.tokenizer.pad_token_id].tolist() for ids in module.generate(batch)[0]]


def test_greedy_equals_hf_generate_under_refill(mini):
    """Two slots for six left-padded prompts: rows finish at different steps, slots are refilled and compacted,
    and every row's tokens equal HF generate's (fp32, CPU)."""
    hf = decode(mini, "dynamic", 40)
    eos = mini[1].tokenizer.eos_token_id
    ended = [len(ids) for ids in hf if ids[-1] == eos]
    assert len(set(ended)) >= 2 and len(ended) == len(hf)  # EOS at different steps: refill is exercised
    assert len(set(mini[3]["attention_mask"].sum(-1).tolist())) > 2  # and different padding
    for slots in (1, 2, 6):
        assert decode(mini, "engine", 40, slots=slots) == hf, slots


def test_sampled_tokens_do_not_depend_on_slots_and_match_the_static_loop(mini):
    for sampling in ({"do_sample": True, "temperature": 1.5, "top_k": 20},  # mt19937 noise: the published sampler
                     {"do_sample": True, "temperature": 1.2, "top_p": 0.9, "noise": "counter", "sample_tokens": 6}):
        static = decode(mini, "static", **sampling)
        assert decode(mini, "engine", slots=2, **sampling) == static == decode(mini, "engine", slots=4, **sampling)
    greedy = decode(mini, "static")
    assert static != greedy  # the sampled rows really sample


def test_engine_counts_and_limits(mini):
    """Per-request limits, the stats, and requests refused before decoding."""
    backbone, codec, model, batch = mini
    tok = codec.tokenizer
    ids = unpadded(batch)
    engine = DecodeEngine(model, max(map(len, ids)), 16, tok.eos_token_id, tok.pad_token_id, min_new_tokens=16,
                          slots=2, timed=True)
    engine.submit([Request(k, ids[k], batch["pixel_values"][k], max_new_tokens=3 + k) for k in range(len(ids))])
    out = {r.key: (row != tok.pad_token_id).sum().item() for r, row in engine.run()}
    assert out == {k: 3 + k for k in range(len(ids))}  # EOS barred: every row runs to its own limit
    assert engine.stats["prefilled"] == len(ids) and not engine.busy
    with pytest.raises(ValueError, match="longer than"):
        engine.submit([Request(0, torch.ones(engine.max_prompt + 1, dtype=torch.long), batch["pixel_values"][0])])
    with pytest.raises(ValueError, match="max_new_tokens"):
        engine.submit([Request(0, ids[0], batch["pixel_values"][0], max_new_tokens=17)])
    with pytest.raises(ValueError, match="slots=auto"):  # no GPU memory to size from
        DecodeEngine(model, 10, 4, tok.eos_token_id, tok.pad_token_id)


def test_the_mixed_benchmarks_engine_ends_each_row_with_eos_at_its_length(mini):
    """``benchmarks/engine.py``'s mixed-length workload: EOS chosen at each request's own last step (EOS barred
    before: no row could end early by itself)."""
    from benchmarks.engine import ForcedLengthEngine

    _, codec, model, batch = mini
    tok = codec.tokenizer
    ids = unpadded(batch)
    engine = ForcedLengthEngine(model, max(map(len, ids)), 12, tok.eos_token_id, tok.pad_token_id, min_new_tokens=12,
                                slots=2)
    engine.submit([Request(k, ids[k], batch["pixel_values"][k], max_new_tokens=3 + k) for k in range(len(ids))])
    for request, row in engine.run():
        real = row[row != tok.pad_token_id].tolist()
        assert len(real) == 3 + request.key and real[-1] == tok.eos_token_id and tok.eos_token_id not in real[:-1]


def test_the_benchmarks_engine_variants(mini):
    """``benchmarks/engine.py --variants``: parts joined by ``+`` pick the mixins and arguments; the serial and
    carved variants decode what the engine decodes; an unknown part is refused."""
    from benchmarks.engine import CarvedPrefill, ForcedLengthEngine, SerialLaunch, variant_engine

    cls, kwargs, priority = variant_engine(ForcedLengthEngine, "serial+rows4+priority")
    assert issubclass(cls, SerialLaunch) and issubclass(cls, ForcedLengthEngine) and not issubclass(cls, CarvedPrefill)
    assert kwargs == {"compile_prefill": True, "compile_decode": True, "prefill_rows": 4} and priority
    cls, kwargs, priority = variant_engine(DecodeEngine, "eager+carve16")
    assert cls.carveout == 16 and kwargs == {"compile_prefill": False, "compile_decode": False} and not priority
    assert variant_engine(DecodeEngine, "compiled_decode")[0] is DecodeEngine
    with pytest.raises(ValueError, match="unknown engine variant 'carve'"):
        variant_engine(DecodeEngine, "serial+carve")
    _, codec, model, batch = mini
    ids = unpadded(batch)
    outs = []
    for variant in ("eager", "serial+eager"):
        cls, kwargs, _ = variant_engine(DecodeEngine, variant)
        engine = cls(model, max(map(len, ids)), 6, codec.tokenizer.eos_token_id, codec.tokenizer.pad_token_id, slots=2, **kwargs)
        engine.submit([Request(k, ids[k], batch["pixel_values"][k]) for k in range(len(ids))])
        outs.append({r.key: row.tolist() for r, row in engine.run()})
    assert outs[0] == outs[1] and len(outs[0]) == len(ids)


def test_an_engine_is_freed_when_dropped(mini):
    """No reference cycle: the last reference gone, the engine (and its K/V slots) goes at once, not when Python's
    collector runs (a new engine's slot count reads free memory)."""
    import gc
    import weakref

    _, codec, model, batch = mini
    ids = unpadded(batch)[0]
    engine = DecodeEngine(model, len(ids), 4, codec.tokenizer.eos_token_id, codec.tokenizer.pad_token_id, slots=2)
    engine.submit([Request(0, ids, batch["pixel_values"][0])])
    engine.run()
    gc.disable()
    try:
        ref = weakref.ref(engine)
        del engine
        assert ref() is None
    finally:
        gc.enable()


def test_the_module_times_building_its_engine(mini):
    """``engine_setup_s`` (the generation manifest's): the engine is built, and timed, once for batches that fit it."""
    from genixer.generation.module import GenerationModule

    backbone, codec, model, batch = mini
    module = GenerationModule(backbone, codec, Decoding.from_config({"cache": "engine", "max_new_tokens": 4, "slots": 2}))
    module.model = model
    with torch.no_grad():
        module.generate(batch)
        first = module.engine_setup_s
        module.generate(batch)
    assert first > 0 and module.engine_setup_s == first
    # on a CPU with set slots: no compile, no probe, no graphs
    assert module.engine_setup_parts_s == module.engine_setup_compile_s == {}


def test_with_the_engine_only_the_pixels_go_to_the_device(mini):
    """The engine cuts prompts on the host (no wait for the GPU): Lightning's move to the device takes the pixels
    alone; the other caches move the whole batch."""
    from genixer.generation.module import GenerationModule

    backbone, codec, _, batch = mini
    batch = {**batch, "errors": []}
    for cache, prompts_on in (("engine", "cpu"), ("static", "meta")):
        module = GenerationModule(backbone, codec, Decoding.from_config({"cache": cache, "max_new_tokens": 4}))
        moved = module.transfer_batch_to_device(batch, torch.device("meta"), 0)
        assert moved["pixel_values"].device.type == "meta" and moved["meta"] == batch["meta"]
        assert moved["input_ids"].device.type == moved["attention_mask"].device.type == prompts_on
    errors_only = {"meta": [], "errors": [{"id": "x", "status": "error"}]}
    assert GenerationModule(backbone, codec, Decoding.from_config({"cache": "engine", "max_new_tokens": 4})).transfer_batch_to_device(
        errors_only, torch.device("meta"), 0) == errors_only


def test_prompts_attend_causally_without_a_mask(mini, monkeypatch):
    """Prefill hands SDPA no mask (right-padded prompts: causal is exact, and takes the flash kernel); a decode step
    hands it its mask; the model's own attention setting is back afterwards."""
    import genixer.generation.engine_attention as attention_module

    calls, real = [], attention_module.sdpa_attention_forward
    def recording(module, query, key, value, mask, **kwargs):
        calls.append((query.shape[2], mask is None))
        return real(module, query, key, value, mask, **kwargs)
    monkeypatch.setattr(attention_module, "sdpa_attention_forward", recording)
    _, codec, model, batch = mini
    ids = [row[m.bool()] for row, m in zip(batch["input_ids"], batch["attention_mask"])]
    engine = DecodeEngine(model, max(map(len, ids)), 3, codec.tokenizer.eos_token_id, codec.tokenizer.pad_token_id, slots=2)
    engine.submit([Request(k, ids[k], batch["pixel_values"][k]) for k in range(2)])
    engine.run()
    assert {(q > 1, no_mask) for q, no_mask in calls} == {(True, True), (False, False)}
    assert model.config.get_text_config()._attn_implementation == "sdpa"


def test_auto_slots_stop_at_what_could_be_busy(mini, monkeypatch):
    """Memory for 50 slots (on an H200 a tiny model got 99,955), 7 requests at most: 7 slots."""
    _, codec, model, _ = mini
    monkeypatch.setattr(DecodeEngine, "_slot_count", lambda self, probe, margin: 50)
    tok = codec.tokenizer
    assert DecodeEngine(model, 10, 4, tok.eos_token_id, tok.pad_token_id, max_slots=7).slots == 7
    assert DecodeEngine(model, 10, 4, tok.eos_token_id, tok.pad_token_id).slots == 50


def test_settings_refuse_what_the_engine_cannot_do():
    with pytest.raises(ValueError, match="unsupported"):
        Decoding.from_config({"cache": "engine", "max_new_tokens": 4, "num_beams": 2})
    with pytest.raises(ValueError, match="slots"):
        Decoding.from_config({"cache": "engine", "max_new_tokens": 4, "slots": 0})
    with pytest.raises(ValueError, match="noise"):
        Decoding.from_config({"max_new_tokens": 4, "do_sample": True, "temperature": 1.0, "noise": "philox"})
    ok = Decoding.from_config({"cache": "engine", "max_new_tokens": 4, "slots": 3, "do_sample": True, "temperature": 1.0,
                               "noise": None})
    assert ok.slots == 3 and ok.settings() == {"do_sample": True, "temperature": 1.0, "max_new_tokens": 4}
    assert ok.compile_prefill is None and ok.compile_decode is None   # auto: on a GPU
    for key in ("compile_prefill", "compile_decode"):
        assert getattr(Decoding.from_config({"cache": "engine", "max_new_tokens": 4, key: False}), key) is False
        with pytest.raises(ValueError, match=key):
            Decoding.from_config({"cache": "engine", "max_new_tokens": 4, key: "yes"})


def test_counter_noise_is_per_row_and_samples_the_softmax():
    seeds = torch.tensor([5, 2**62 + 17, 123456789])
    steps = torch.tensor([0, 7, 3])
    noise = counter_gumbel(seeds, steps, 1000)
    assert torch.isfinite(noise).all() and noise.shape == (3, 1000)
    assert torch.equal(counter_gumbel(seeds[1:2], steps[1:2], 1000)[0], noise[1])  # independent of the other rows
    assert not torch.equal(noise[0], counter_gumbel(seeds[:1], steps[:1] + 1, 1000)[0])  # a new step, new noise
    assert not torch.equal(noise[0, :500], noise[0, 500:])
    # Gumbel-max draws follow the softmax (3,000 seeds, one step each).
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    sampler = PerSampleSampler([], 0, temperature=1.0, noise="counter")
    many = torch.arange(3000)
    draws = (sampler.warp(logits.expand(3000, 4)) + sampler.gumbel(many, torch.zeros(3000, dtype=torch.long), logits[None])).argmax(-1)
    assert torch.allclose(torch.bincount(draws, minlength=4).float() / 3000, logits.softmax(-1), atol=0.03)
    # The extreme hash values still give finite noise (no uniform of exactly 0 or 1).
    uniform = bits_to_uniform(torch.tensor([0, 1, 2**31, 2**32 - 2, 2**32 - 1]))
    assert (uniform > 0).all() and (uniform < 1).all() and torch.isfinite(-torch.log(-torch.log(uniform))).all()


def test_the_scheduling_benchmark_counts_what_the_engine_did():
    """``benchmarks/schedule.py``: every request finishes at its forced length, a step never holds more busy rows
    than slots, and there are at least as many steps as the tokens need; more slots, fewer steps."""
    from benchmarks.schedule import schedule

    few, more = (schedule(20, slots, 6, prefill_rows=4, sync_every=2) for slots in (4, 8))
    for out, slots in ((few, 4), (more, 8)):
        assert out["finished"] == 20 and out["lengths"] == [6]
        assert out["busy_rows_per_step"] <= slots and out["decode_steps"] >= 20 * 5 / slots
    assert more["decode_steps"] < few["decode_steps"]


REC = ("Using only what is shown in the image, write a question and its answer. This is a Referring Expression "
       "Comprehension (REC) task. The question will give an expression of a specific region of the image. Please "
       "provide the coordinates in the answer.")


def s_mini_rec(k_images: int = 4):
    from genixer.backbones.llava import PretrainedLlava
    from genixer.generation.queries import PromptCollator

    backbone = PretrainedLlava(str(ROOT / "checkpoints/genixer_s_mini"), dtype="float32")
    codec = backbone.codec()
    items = [{"meta": {"seed": 5 * k}, "input_ids": codec.encode_prompt(REC),
              "pixel_values": codec.image(Image.effect_noise((90 + 10 * k, 80), 60).convert("RGB"))} for k in range(k_images)]
    return items, (backbone, codec, backbone.build(codec).eval(), PromptCollator(codec.tokenizer.pad_token_id)(items))


def test_word_groups_write_each_groups_best_word_on_every_path():
    """Grouped words (Genixer_S's REC decoding): the engine, the static loop and HF generate agree, and every grouped
    word written is its group's most likely word after the tokens before it."""
    from genixer.generation.sampling import word_groups

    items, s_mini = s_mini_rec()
    groups = [["small", "large"], ["red", "green", "blue", "yellow", "purple", "orange"],
              ["circle", "square", "triangle", "diamond", "star"], ["left", "right", "top", "bottom"]]
    settings = {"do_sample": True, "temperature": 1.0, "noise": "counter", "greedy_boxes": True, "word_groups": groups}
    grouped = decode(s_mini, "dynamic", 48, **settings)
    assert decode(s_mini, "static", 48, **settings) == grouped
    assert decode(s_mini, "engine", 48, slots=2, **settings) == grouped
    assert decode(s_mini, "dynamic", 48, **{**settings, "word_groups": None}) != grouped
    codec, model = s_mini[1], s_mini[2]
    tables = word_groups(codec.tokenizer, groups)
    checked = 0
    for item, ids in zip(items, grouped):
        sequence = torch.cat([item["input_ids"], torch.tensor(ids)])[None]
        with torch.no_grad():
            logits = model(input_ids=sequence, pixel_values=item["pixel_values"][None]).logits[0]
        start = len(item["input_ids"]) - 1   # logits at i predict token i + 1
        for i, token in enumerate(ids):
            for table in tables:
                if token in table.tolist():
                    checked += 1
                    assert token == int(table[logits[start + i, table].argmax()]), (i, token)
    assert checked >= 4


def test_greedy_boxes_is_greedy_inside_boxes_on_every_path():
    """Sampled words, greedy boxes (Genixer_S writing REC samples): the engine, the static loop and HF generate
    agree, and each box equals the greedy continuation of the sampled words before it."""
    from genixer.generation.sampling import box_marks

    items, s_mini = s_mini_rec()
    codec = s_mini[1]
    settings = {"do_sample": True, "temperature": 1.5, "top_k": 20, "noise": "counter"}
    boxed = decode(s_mini, "dynamic", 48, greedy_boxes=True, **settings)
    assert decode(s_mini, "static", 48, greedy_boxes=True, **settings) == boxed
    assert decode(s_mini, "engine", 48, slots=2, greedy_boxes=True, **settings) == boxed
    assert decode(s_mini, "dynamic", 48, **settings) != boxed   # boxes sampled otherwise
    marks, model = box_marks(codec.tokenizer), s_mini[2]
    checked = 0
    for item, ids in zip(items, boxed):
        opened = next((i + 1 for i, t in enumerate(ids) if marks[t] == 1), len(ids))
        closed = next((i + 1 for i in range(opened, len(ids)) if marks[ids[i]] == 2), None)
        if closed is None:
            continue   # a row that wanders off on a noise image writes no whole box (one of the four, seed 0)
        checked += 1
        prefix = torch.cat([item["input_ids"], torch.tensor(ids[:opened])])[None]
        with torch.no_grad():
            greedy = model.generate(input_ids=prefix, attention_mask=torch.ones_like(prefix), do_sample=False,
                                    pixel_values=item["pixel_values"][None], max_new_tokens=closed - opened,
                                    pad_token_id=codec.tokenizer.pad_token_id)
        assert greedy[0, prefix.shape[1]:].tolist() == ids[opened:closed]
    assert checked >= 3


def test_a_prefill_writes_each_prompt_to_its_slot():
    """``SlotCache.prefill_into``: rows go to their slots (in runs of consecutive slots, or by index when the runs
    are many); the rest stay untouched."""
    from transformers import LlamaConfig

    from genixer.generation.slot_cache import SlotCache

    config = LlamaConfig(hidden_size=16, num_attention_heads=2, num_key_value_heads=2, num_hidden_layers=1)
    for slots, runs in (([4, 0, 1, 3], [(4, 0, 1), (0, 1, 2), (3, 3, 1)]), ([8, 0, 6, 2, 4], None)):
        cache = SlotCache(config, 10, 8, torch.float32, torch.device("cpu"))
        key, value = torch.randn(len(slots), 2, 5, 8), torch.randn(len(slots), 2, 5, 8)
        with cache.prefill_into(slots):
            assert cache.prefill_runs == runs and (cache.prefill_index is None) == (runs is not None)
            keys, values = cache.update(key, value, 0)
            assert keys is key and values is value   # the prompts attend to their own keys only
        assert cache.prefill_runs is None and cache.prefill_index is None
        for got, new in ((cache.keys[0], key), (cache.values[0], value)):
            want = torch.zeros(10, 2, 8, 8)
            want[slots, :, :5] = new
            assert torch.equal(got, want)
