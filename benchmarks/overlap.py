"""Can one H200 run the prefill's matmuls and the decode attention at the same time? (issue 14: 1.5x HF)

The engine's time per request is the serial sum of prefill (compute-bound GEMMs) and decode (its attention bound by
memory). Passing the serial limit needs the two to run at once. Sessions 28 and 44 found no overlap inside the engine
(a high-priority decode stream, cuBLAS SM carveout), which cannot tell whether the hardware or the engine's structure
is to blame. This benchmark asks the hardware alone, at 7B shape, with no engine around it:

- ``A``: one layer's prefill matmuls for a chunk of ``--rows`` prompts of ``--length`` tokens (q/k/v, output,
  gate/up, down; bf16), ``--layers-a`` times;
- ``B``: the engine's decode attention kernel over ``--slots`` rows of ``--kept`` cached columns, ``--layers-b`` times
  (chosen so that B alone takes about as long as A alone), or a plain device copy of the same bytes (``copy``);
- each alone, then both at once on two streams: plain, B on a high-priority stream, A's matmuls leaving ``k`` SMs
  free (``torch._C._set_sm_carveout_experimental``), and each on its own green context (an SM partition) where torch
  has them.

``speedup = (A alone + B alone) / both at once``: 1.0 is no overlap, up to 2.0 when they take equal time.

    python -m benchmarks.overlap
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.engine_checks import gpu_us
from genixer.generation.decode_attention import decode_attention

HIDDEN, HEADS, FFN = 4096, 32, 11008


def prefill_matmuls(tokens: int):
    x = torch.randn(tokens, HIDDEN, device="cuda", dtype=torch.bfloat16)
    h = torch.randn(tokens, FFN, device="cuda", dtype=torch.bfloat16)
    weights = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.01
               for n, k in ((3 * HIDDEN, HIDDEN), (HIDDEN, HIDDEN), (2 * FFN, HIDDEN), (HIDDEN, FFN))]

    def run():
        for w in weights:
            F.linear(h if w.shape[1] == FFN else x, w)
    flops = 2 * tokens * sum(w.numel() for w in weights)
    return run, flops


def decode_attn(slots: int, kept: int, width: int):
    q = torch.randn(slots, HEADS, 1, 128, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(slots, HEADS, width, 128, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    mask = (torch.arange(width, device="cuda") < kept)[None, None, None].expand(slots, 1, 1, width).contiguous()

    def run():
        decode_attention(q, k, v, mask, 128 ** -0.5)
    return run, 2 * slots * HEADS * kept * 128 * 2


def device_copy(nbytes: int):
    src = torch.empty(nbytes // 2, device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    return lambda: dst.copy_(src)   # reads and writes nbytes in all


def ms(fn, reps: int = 5) -> float:
    fn()   # warm-up (a kernel's first call tunes or compiles it)
    return gpu_us(fn, reps) / 1e3


def together(a, na: int, b, nb: int, stream_a, stream_b, carveout: int | None = None):
    """A ``na`` times on ``stream_a`` and B ``nb`` times on ``stream_b``, queued alternately, joined at the end."""
    def run():
        here = torch.cuda.current_stream()
        stream_a.wait_stream(here)
        stream_b.wait_stream(here)
        for i in range(max(na, nb)):
            if i < nb:
                with torch.cuda.stream(stream_b):
                    b()
            if i < na:
                with torch.cuda.stream(stream_a):
                    if carveout is not None:
                        torch._C._set_sm_carveout_experimental(carveout)
                    a()
                    if carveout is not None:
                        torch._C._set_sm_carveout_experimental(None)
        here.wait_stream(stream_a)
        here.wait_stream(stream_b)
    return run


def repeat(fn, n: int):
    def run():
        for _ in range(n):
            fn()
    return run


_GREEN = []


def green_streams(sms_a: int):
    """Two streams on disjoint SM partitions (``sms_a`` SMs and the rest), or the reason torch cannot make them."""
    try:
        from torch.cuda.green_contexts import GreenContext
        total = torch.cuda.get_device_properties(0).multi_processor_count
        ctx_a, ctx_b = GreenContext.create(sms_a, 0), GreenContext.create(total - sms_a, 0)
        _GREEN.extend((ctx_a, ctx_b))   # a context freed while its stream runs ends in "context is destroyed"
        if hasattr(ctx_a, "Stream"):
            return ctx_a.Stream(), ctx_b.Stream()
        streams = []
        for ctx in (ctx_a, ctx_b):
            ctx.set_context()
            streams.append(torch.cuda.Stream())
            ctx.pop_context()
        return tuple(streams)
    except Exception as err:  # noqa: BLE001 - reported in the result
        return f"{type(err).__name__}: {err}"[:300]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16, help="prompts in a prefill chunk (the engine's default)")
    parser.add_argument("--length", type=int, default=628)
    parser.add_argument("--slots", type=int, default=280)
    parser.add_argument("--kept", type=int, default=690, help="cached columns a decode row reads (mean over a run)")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--layers-a", type=int, default=4)
    parser.add_argument("--carveouts", default="16,32,48,66")
    parser.add_argument("--green", default="100,116", help="SMs given to A in a green-context split")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    a1, flops = prefill_matmuls(args.rows * args.length)
    attn, nbytes = decode_attn(args.slots, args.kept, args.width)
    result = {"gpu": torch.cuda.get_device_name(), "sms": torch.cuda.get_device_properties(0).multi_processor_count,
              "args": vars(args), "prefill_layer_TFLOP": round(flops / 1e12, 2), "attention_layer_GB": round(nbytes / 1e9, 2)}
    t_a1, t_attn = ms(a1), ms(attn)
    result.update(prefill_layer_ms=round(t_a1, 3), prefill_TFLOPs=round(flops / t_a1 / 1e9, 1),
                  attention_layer_ms=round(t_attn, 3), attention_GBps=round(nbytes / t_attn / 1e6))
    na = args.layers_a
    nb = max(1, round(na * t_a1 / t_attn))   # B alone about as long as A alone
    copy = device_copy(nbytes)
    kinds = {"attention": (attn, nb), "copy": (copy, max(1, round(na * t_a1 / ms(copy))))}
    plain, low, high = torch.cuda.Stream(), torch.cuda.Stream(), torch.cuda.Stream(priority=-1)
    rows = []
    for name, (b1, n) in kinds.items():
        alone_a, alone_b = ms(repeat(a1, na)), ms(repeat(b1, n))
        setups = {"streams": (plain, low, None), "b_high_priority": (plain, high, None)}
        setups.update({f"carve{k}+b_high_priority": (plain, high, k) for k in map(int, filter(None, args.carveouts.split(",")))})
        for sms in map(int, filter(None, args.green.split(","))):
            streams = green_streams(sms)
            if isinstance(streams, str):
                rows.append({"b": name, "setup": f"green{sms}", "error": streams})
            else:
                setups[f"green{sms}"] = (*streams, None)
        for setup, (sa, sb, carve) in setups.items():
            row = {"b": name, "b_reps": n, "setup": setup, "a_alone_ms": round(alone_a, 2), "b_alone_ms": round(alone_b, 2)}
            try:
                both = ms(together(a1, na, b1, n, sa, sb, carve))
                row.update(both_ms=round(both, 2), speedup=round((alone_a + alone_b) / both, 3))
            except Exception as err:  # noqa: BLE001 - one setup's failure is a result, not the end of the run
                row["error"] = f"{type(err).__name__}: {err}"[:300]
            rows.append(row)
            print(json.dumps(row), flush=True)
    result["runs"] = rows
    Path(args.out).mkdir(parents=True, exist_ok=True)
    name = f"overlap_{result['gpu'].replace(' ', '_')}{'_' + args.tag if args.tag else ''}.json"
    Path(args.out, name).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()
