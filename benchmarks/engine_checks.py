"""The decode engine's checks and microbenchmarks on a GPU, for ``benchmarks/engine.py``: a tiny model's sanity
checks (graph == eager, engine == static loop in fp32, the noise kernels' bits, where one launch makes the host wait),
one layer's prefill K/V write and decode attention at 7B shape, and ``--profile``'s look at where the engine's time
goes."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from genixer.generation.counter import counter_gumbel, counter_gumbel_reference
from genixer.generation.engine import DecodeEngine, Request
from genixer.generation.sampling import PerSampleSampler


def sanity() -> dict:
    """A tiny LLaVA: graph replay == eager step tokens (greedy and sampled); counter noise GPU == CPU."""
    from genixer.backbones.conversation import Conversation
    from genixer.backbones.llava import TinyLlava
    from benchmarks.llava7b import SYSTEM
    backbone = TinyLlava(Conversation("vicuna_v1", SYSTEM), image_size=56, vocab_size=300, max_length=256,
                         vision=dict(patch_size=14, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2),
                         text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2))
    codec = backbone.codec([SYSTEM, "describe the picture and ask a question"] * 20)
    model = backbone.build(codec).cuda().eval()
    gen = torch.Generator().manual_seed(0)
    requests = [Request(i, codec.encode_prompt("describe the picture" + " and ask" * (i % 5)),
                        torch.randn(3, 56, 56, generator=gen), seed=1000 + i) for i in range(11)]
    result = {}
    for name, sampler in (("greedy", None), ("sampled", PerSampleSampler([], 0, temperature=1.0, noise="counter")),
                          ("sampled_mt19937", PerSampleSampler([], 0, temperature=1.0))):
        outs = []
        for graphs in (False, True):
            engine = DecodeEngine(model, max(len(r.input_ids) for r in requests), 24, codec.tokenizer.eos_token_id, codec.tokenizer.pad_token_id,
                                  sampler=sampler, slots=4, graphs=graphs, prefill_rows=3)
            engine.submit(requests)
            outs.append({r.key: ids.tolist() for r, ids in engine.run()})
        result[f"graph_equals_eager_{name}"] = outs[0] == outs[1]
    # The engine (side-stream prefill, graphs, refill) against the static-cache loop, greedy, fp32: same tokens.
    from genixer.generation.decoding import decode_static
    model = model.float()
    refs = {}
    for r in requests:
        ids = r.input_ids[None].cuda()
        refs[r.key] = decode_static(model, ids, torch.ones_like(ids), r.pixel_values[None].cuda(), 24,
                                    codec.tokenizer.eos_token_id, codec.tokenizer.pad_token_id)[0].tolist()
    for name, compile_decode in (("", False), ("_compiled_decode", True)):
        engine = DecodeEngine(model, max(len(r.input_ids) for r in requests), 24, codec.tokenizer.eos_token_id,
                              codec.tokenizer.pad_token_id, slots=4, prefill_rows=3, compile_decode=compile_decode)
        engine.submit(requests)
        ours = {r.key: ids.tolist() for r, ids in engine.run()}
        result[f"engine_equals_static_loop_fp32{name}"] = all(
            ours[k][:len(ref)] == ref and all(t == codec.tokenizer.pad_token_id for t in ours[k][len(ref):])
            for k, ref in refs.items())
    result["launch_syncs"] = launch_syncs(engine, requests[:3])
    seeds, steps = torch.randint(0, 2**62, (64,)), torch.randint(0, 300, (64,))
    cpu, gpu = counter_gumbel(seeds, steps, 32064), counter_gumbel(seeds.cuda(), steps.cuda(), 32064).cpu()
    from genixer.generation.counter import uses_kernel as counter_kernel
    result["counter_kernel_used"] = counter_kernel(torch.device("cuda"))
    result["counter_kernel_equals_gpu_reference"] = bool(torch.equal(
        gpu, counter_gumbel_reference(seeds.cuda(), steps.cuda(), 32064).cpu()))
    result["counter_noise_gpu_vs_cpu_max_abs"] = float((cpu - gpu).abs().max())
    result["counter_noise_argmax_equal"] = bool(torch.equal(cpu.argmax(-1), gpu.argmax(-1)))
    # mt19937 on the GPU (the default noise): the kernel's uniforms are the CPU generator's bits; Gumbel noise
    # equal up to the two devices' log rounding, the same argmax
    from genixer.generation.mt19937 import uses_kernel
    from genixer.generation.sampling import mt19937_gumbel, mt19937_gumbel_rows
    result["mt19937_kernel_used"] = uses_kernel(torch.device("cuda"))
    gpu = mt19937_gumbel_rows(seeds.cuda(), steps.cuda(), 32064).cpu()
    cpu = torch.stack([mt19937_gumbel(int(a), int(b), 32064) for a, b in zip(seeds, steps)])
    result["mt19937_gumbel_gpu_vs_cpu_max_abs"] = float((cpu - gpu).abs().max())
    result["mt19937_argmax_equal"] = bool(torch.equal(cpu.argmax(-1), gpu.argmax(-1)))
    from genixer.generation.decode_attention import usable
    q, mask = torch.zeros(1, 32, 1, 128, device="cuda", dtype=torch.bfloat16), torch.ones(1, 1, 1, 16, dtype=torch.bool, device="cuda")
    result["decode_attention_kernel_used"] = usable(q, q.expand(1, 32, 16, 128), q.expand(1, 32, 16, 128), mask)
    return result


def launch_syncs(engine: DecodeEngine, requests: list[Request]) -> list[str]:
    """Where one prefill launch makes the host wait for the GPU (torch's sync debug mode), as ``file:line``. None
    may come after the prefill's layers are queued, or the round's decode steps cannot run beside them."""
    import warnings
    engine.submit(requests)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            engine._launch()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    engine.run()
    return [f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)]


def gpu_us(fn, reps: int) -> float:
    """Microseconds of GPU time per call of ``fn`` over ``reps`` calls (after whatever ran before)."""
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return round(1e3 * start.elapsed_time(end) / reps, 1)


def prefill_cache_write(slots: int = 267, rows: int = 16, length: int = 628, width: int = 768, reps: int = 20) -> dict:
    """One layer's prefill K/V write into the slot cache at 7B shape (bf16), microseconds: ``SlotCache.prefill_into``
    with the chunk's slots in one run, in four, and scattered, those both as one ``index_copy_`` (the engine's way
    beyond ``MAX_RUNS`` runs, and before session 43) and as a copy per slot."""
    from transformers import LlamaConfig

    from genixer.generation import slot_cache
    config = LlamaConfig(hidden_size=4096, num_attention_heads=32, num_key_value_heads=32, num_hidden_layers=1)
    cache = slot_cache.SlotCache(config, slots, width, torch.bfloat16, torch.device("cuda"))
    key = torch.randn(rows, length, 32, 128, device="cuda", dtype=torch.bfloat16).transpose(1, 2)  # as the layers give
    value = torch.randn_like(key)
    out = {"slots": slots, "rows": rows, "length": length, "MB_written": round(2 * key.numel() * 2 / 1e6, 1)}
    scattered = list(range(0, rows * 16, 16))
    default = slot_cache.MAX_RUNS
    cases = {"one_run": (list(range(rows)), default), "four_runs": ([s + 8 * (s // 4) for s in range(rows)], default),
             "index_copy": (scattered, 0), "scattered_copies": (scattered, rows)}
    for name, (targets, max_runs) in cases.items():
        slot_cache.MAX_RUNS = max_runs
        def write():
            with cache.prefill_into(targets):
                cache.update(key, value, 0)
        try:
            write()
            out[f"{name}_us"] = gpu_us(write, reps)
        finally:
            slot_cache.MAX_RUNS = default
        out[f"{name}_written_right"] = bool(torch.equal(cache.keys[0][targets, :, :length], key))
    return out


def attention_kernels(slots: int = 128, width: int = 768, reps: int = 20) -> dict:
    """One decode step's attention of one layer at 7B shape (32 heads x 128, bf16), rows' lengths drawn from
    640-768 of ``width`` columns: microseconds per call of our kernel and of SDPA's kernels that run it."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from genixer.generation.decode_attention import decode_attention
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(slots, 32, n, 128, generator=gen).to("cuda", torch.bfloat16) for n in (1, width, width))
    lengths = torch.randint(640, width + 1, (slots,), generator=gen)
    mask = (torch.arange(width)[None] < lengths[:, None])[:, None, None].cuda()
    sdpa = torch.nn.functional.scaled_dot_product_attention
    out = {"slots": slots, "width": width, "GB_read_by_lengths": round(float(lengths.sum()) * 32 * 128 * 4 / 1e9, 3)}
    runs = {"ours": lambda: decode_attention(q, k, v, mask, 128 ** -0.5)}
    for name, backend in (("sdpa_efficient", SDPBackend.EFFICIENT_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION),
                          ("sdpa_math", SDPBackend.MATH)):
        def run(backend=backend):
            with sdpa_kernel([backend]):
                return sdpa(q, k, v, attn_mask=mask)
        runs[name] = run
    want = sdpa(q.float(), k.float(), v.float(), attn_mask=mask)
    for name, fn in runs.items():
        try:
            with torch.no_grad():
                got = fn()
                out[name] = {"us": gpu_us(fn, reps), "max_abs_err": float((got.float() - want).abs().max())}
        except Exception as err:  # noqa: BLE001 - a kernel that cannot run this input
            out[name] = f"{type(err).__name__}: {str(err)[:200]}"
    from genixer.generation import decode_attention as module
    out["ours_config"] = str(getattr(module._tuned_kernel, "best_config", None))
    # cuDNN on a mini-world generator's decode shape (4 heads x 64): it failed there in an earlier engine
    q, k = torch.randn(96, 4, 1, 64, device="cuda", dtype=torch.bfloat16), torch.randn(96, 4, 304, 64, device="cuda", dtype=torch.bfloat16)
    small = (torch.arange(304, device="cuda")[None] < torch.randint(200, 305, (96,), device="cuda")[:, None])[:, None, None]
    try:
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            got = sdpa(q, k, k, attn_mask=small)
        out["sdpa_cudnn_mini_shape_max_abs_err"] = float((got.float() - sdpa(q.float(), k.float(), k.float(), attn_mask=small)).abs().max())
    except Exception as err:  # noqa: BLE001
        out["sdpa_cudnn_mini_shape"] = f"{type(err).__name__}: {str(err)[:300]}"
    return out


def profile(model, prompts, pixels, pad, eos, args) -> dict:
    """Where the engine's time goes (greedy, forced 128): prefill / decode / collect seconds at a few prefill
    chunk sizes, then the top CUDA kernels of one prefill chunk and 8 eager decode steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    out = {"attention_kernels": attention_kernels()}
    print(json.dumps(out["attention_kernels"]), flush=True)
    out["phases"] = []
    probe = [Request(0, prompts[0], pixels[0])]
    for prefill_rows in (16, 64):
        engine = DecodeEngine(model, max(map(len, prompts)), 128, eos, pad, min_new_tokens=128, slots=args.slots if args.slots == "auto"
                              else int(args.slots), prefill_rows=prefill_rows, probe=probe, timed=True)
        engine.submit([Request(i, prompts[i], pixels[i % 16]) for i in range(args.requests)])
        start = time.perf_counter()
        engine.run()
        seconds = time.perf_counter() - start
        phase = {"prefill_rows": prefill_rows, "slots": engine.slots, "seconds": round(seconds, 2), "setup_parts_s": engine.setup_s,
                 **{k: round(v, 2) for k, v in engine.stats.items()}}
        phase["decode_ms_per_step"] = round(1e3 * engine.stats["decode_s"] / engine.stats["steps"], 2)
        phase["prefill_ms_per_prompt"] = round(1e3 * engine.stats["prefill_s"] / engine.stats["prefilled"], 2)
        out["phases"].append(phase)
        print(json.dumps(phase), flush=True)
        del engine
        torch.cuda.empty_cache()
    engine = DecodeEngine(model, max(map(len, prompts)), 128, eos, pad, min_new_tokens=128, slots=128, prefill_rows=16,
                          graphs=False)
    engine.submit([Request(i, prompts[i], pixels[i % 16]) for i in range(128)])
    while engine.waiting:  # all 128 prefilled, chunk by chunk
        engine._launch()
        engine._land()
    for _ in range(2):
        engine._decode()
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(8):
            engine._decode()
        torch.cuda.synchronize()
    out["decode_kernels_8_steps_128_slots"] = prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=50)
    engine.occupant = [None] * engine.slots
    engine.submit([Request(i, prompts[i], pixels[i % 16]) for i in range(16)])
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        engine._launch()
        engine._land()
        torch.cuda.synchronize()
    out["prefill_kernels_16_prompts"] = prof.key_averages().table(sort_by="cuda_time_total", row_limit=20, max_name_column_width=50)
    print(out["decode_kernels_8_steps_128_slots"], out["prefill_kernels_16_prompts"], sep="\n", flush=True)
    return out
