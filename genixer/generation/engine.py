"""A continuous-batching decode engine (the ``cache: engine`` generation option).

A fixed set of KV-cache *slots* (``SlotCache``) holds one sequence each, at its own columns, so a finished
sequence's slot takes a waiting prompt without touching the others. The decode step (``DecodeStep``) has fixed
shapes (the first ``bucket`` slots, one token each, the cache's whole width, masked per row); on CUDA it is captured
as one CUDA graph per bucket and replayed, one launch per step instead of the eager forward's Python. Once no prompt
waits, finished rows are compacted into the low slots so that decode runs over fewer. The host looks at the
GPU every ``sync_every`` steps: it collects finished rows and launches the prefill of ``prefill_rows`` waiting
prompts (right-padded, straight into free slots) on a side stream, beside the next decode steps, with the
decoder's layers compiled (``CompiledLayers``, on a GPU by default; so are the decode step's, ``compile_decode``,
captured inside its graphs). Prompts attend
causally with no mask (``engine_attention``: the flash kernel), decode steps through their per-row mask (on a GPU
with ``decode_attention``, which reads only the columns the mask keeps).

Tokens: greedy, or the per-sample sampler's warpers + noise keyed by (seed, step) (greedy inside boxes with its
``box_marks``: a per-slot state says whether a box is open); a sequence's tokens do not depend on which others
share the engine. Slots: a count, or "auto" (free GPU memory after one prefill of ``prefill_rows`` prompts, less
a margin, over the bytes one slot's K/V takes; at most ``max_slots``).
"""
from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch._dynamo.utils import compilation_time_metrics

from genixer.generation.compiled_layers import CompiledLayers
from genixer.generation.decode_step import DecodeStep, cache_kwarg
from genixer.generation.engine_attention import attending_as_engine, engine_attention
from genixer.generation.mt19937 import uses_kernel
from genixer.generation.sampling import PerSampleSampler
from genixer.generation.slot_cache import SlotCache


@dataclass
class Request:
    """One prompt: unpadded ``input_ids`` (1-D), its ``pixel_values``, its sampling ``seed``, any ``key``, and
    optionally its own ``max_new_tokens`` (at most the engine's)."""

    key: Any
    input_ids: torch.Tensor
    pixel_values: torch.Tensor
    seed: int = 0
    max_new_tokens: int | None = None


RESERVED = Request(None, torch.empty(0), torch.empty(0))  # a slot's occupant while its prompt is prefilled


def compile_seconds() -> float:
    """Seconds this process has spent in torch.compile so far."""
    return sum(compilation_time_metrics.get("_compile.compile_inner", []))


class DecodeEngine:
    """Continuous batching over ``slots`` sequences of up to ``max_prompt`` + ``max_new_tokens`` tokens."""

    step_class = DecodeStep   # the decode step (a subclass may change how tokens are chosen)

    def __init__(self, model, max_prompt: int, max_new_tokens: int, eos_token_id: int, pad_token_id: int,
                 min_new_tokens: int = 0, sampler: PerSampleSampler | None = None, slots: int | str = "auto",
                 prefill_rows: int = 16, sync_every: int = 8, graphs: bool | None = None,
                 memory_margin: float = 0.1, probe: list[Request] | None = None, max_slots: int | None = None,
                 timed: bool = False, compile_prefill: bool | None = None, compile_decode: bool | None = None) -> None:
        self.model, self.sampler = model, sampler
        self.max_new, self.pad = max_new_tokens, pad_token_id
        self.max_prompt, self.width = max_prompt, -(-(max_prompt + max_new_tokens) // 16) * 16  # aligned rows
        self.prefill_rows, self.sync_every = prefill_rows, sync_every
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.prefill_cache_kwarg = cache_kwarg(model.model)
        # Prefill forwards and decode steps run the decoder's layers compiled (``CompiledLayers``; default: on a GPU).
        on_gpu = self.device.type == "cuda"
        prefill, decode = (on_gpu if flag is None else flag for flag in (compile_prefill, compile_decode))
        layers = CompiledLayers(model.get_decoder(), engine_attention) if prefill or decode else None
        self.compiled_prefill = layers if prefill else None
        self.text_config, self.vocab = model.config.get_text_config(), model.get_output_embeddings().weight.shape[0]
        # The forwards' attention context (``attending_as_engine``); not a bound method, which would tie the decode
        # step back to the engine: a cycle that keeps the K/V slots allocated until Python's collector runs.
        self.attention = partial(attending_as_engine, self.text_config)
        self.setup_s = {}   # the engine's start in seconds, by part (prefill_compile, slot_probe, decode_warmup, ...)
        self.setup_compile_s = {}   # of which torch.compile's (dynamo's count: tracing, and compiling or a cache load)
        if self.compiled_prefill and probe:
            with self._setup_clock("prefill_compile"):
                self._compile_prefill(probe[0])
        if slots == "auto":  # as many as memory holds, but no more than could ever be busy (``max_slots``)
            with self._setup_clock("slot_probe"):
                slots = min(self._slot_count(probe, memory_margin), max_slots or float("inf"))
        self.slots = int(slots)
        self.cache = SlotCache(self.text_config, self.slots, self.width, self.dtype, self.device)
        # mt19937 noise off a GPU is drawn on the CPU and copied in per step; on a GPU it is computed there.
        self.host_noise = sampler is not None and sampler.noise == "mt19937" and not uses_kernel(self.device)
        self.decode = self.step_class(model, self.cache, max_new_tokens, min_new_tokens, eos_token_id, pad_token_id, sampler,
                                 self.attention, layers if decode else None, self.host_noise)
        self.occupant: list[Request | None] = [None] * self.slots
        self.host_steps = [0] * self.slots  # the host's copy of the decode step's ``steps`` (CPU noise needs it)
        self.waiting: deque[Request] = deque()
        self.pending = None  # the launched prefill chunk, until it lands
        self.side = torch.cuda.Stream(self.device) if on_gpu else None
        # Seconds in prefill / decode / collect, prompts prefilled, decode steps (``timed`` syncs to measure).
        self.timed, self.stats = timed, {"prefill_s": 0.0, "decode_s": 0.0, "collect_s": 0.0, "prefilled": 0, "steps": 0}
        # Decode runs over the first ``bucket`` slots, the smallest bucket holding every occupied slot (finished
        # rows are compacted downwards once no prompt waits); on CUDA one graph per bucket.
        self.buckets = sorted({-(-self.slots * j // 8) for j in range(1, 9)})
        if on_gpu if graphs is None else graphs:
            with self._setup_clock("decode_warmup"):   # compiles what the probe did not (a bucket of 1: <= 8 slots),
                self.decode.warm_up(self.buckets, max_prompt)   # checks and tunes the decode kernels
            with self._setup_clock("graph_capture"):
                self.decode.capture(self.buckets)

    # -- public ---------------------------------------------------------------------------------------------
    def submit(self, requests: list[Request]) -> None:
        for r in requests:
            if len(r.input_ids) > self.max_prompt:
                raise ValueError(f"prompt of {len(r.input_ids)} tokens is longer than this engine's {self.max_prompt}")
            if r.max_new_tokens is not None and not 1 <= r.max_new_tokens <= self.max_new:
                raise ValueError(f"a request's max_new_tokens must be in [1, {self.max_new}], got {r.max_new_tokens}")
        self.waiting.extend(requests)

    @property
    def busy(self) -> bool:
        return bool(self.waiting) or any(r is not None for r in self.occupant)

    def run(self, drain: bool = True) -> list[tuple[Request, torch.Tensor]]:
        """Decode until every request finished (``drain``) or until every waiting one has a slot;
        returns the finished ``(request, new token ids)``, ids padded with ``pad_token_id`` after EOS.

        Each round: the previous round's prefill joins the decode, one chunk of waiting prompts is prefilled
        on a side stream while ``sync_every`` decode steps run on the main one (queued beside it, the host not
        waiting for it; meant to overlap compute with memory traffic, but on an H200 the GPU runs them one after the
        other: ``docs/engine.md``), then the finished rows are collected. (Landing
        the chunk before this round's steps instead would add 2% busy rows per step: not worth a switch.) Without
        ``drain`` the last round returns before its collect: its steps keep the GPU busy while the caller fetches
        more prompts, and the next call collects them."""
        finished = []
        while True:
            self._land()
            running = any(r is not None for r in self.occupant)
            if not (running or self.waiting):
                return finished
            self._launch()
            if running:
                with self._clock("decode_s"):
                    for _ in range(self.sync_every):
                        self._decode()
                self.stats["steps"] += self.sync_every
            if not drain and not self.waiting:
                return finished
            with self._clock("collect_s"):
                finished += self._collect()
            if not self.waiting and self.pending is None:
                self._compact()

    @contextmanager
    def _setup_clock(self, part: str):
        start, compiling = time.perf_counter(), compile_seconds()
        yield
        torch.cuda.synchronize(self.device) if self.device.type == "cuda" else None
        self.setup_s[part] = round(time.perf_counter() - start, 2)
        self.setup_compile_s[part] = round(compile_seconds() - compiling, 2)

    @contextmanager
    def _clock(self, key: str):
        if not self.timed:
            yield
            return
        torch.cuda.synchronize() if self.device.type == "cuda" else None
        start = time.perf_counter()
        yield
        torch.cuda.synchronize() if self.device.type == "cuda" else None
        self.stats[key] += time.perf_counter() - start

    # -- slots ----------------------------------------------------------------------------------------------
    def _probe_prefill(self, probe: Request, rows: int, width: int) -> None:
        """One prefill of ``rows`` copies of the probe prompt, right-padded to ``width``, into a scratch cache."""
        cache = SlotCache(self.text_config, rows, width, self.dtype, self.device)
        ids = torch.full((rows, width), self.pad, dtype=torch.long, device=self.device)
        ids[:, :len(probe.input_ids)] = probe.input_ids.to(self.device)
        pixels = probe.pixel_values.to(self.device, self.dtype)[None].expand(rows, *probe.pixel_values.shape)
        with torch.no_grad():
            self._forward_prefill(ids, pixels, cache, list(range(rows)))

    def _compile_prefill(self, probe: Request) -> None:
        """Compile the layers now (one compile serves every chunk and decode step: ``CompiledLayers``): a compile in
        the middle of a run would hold the decode up for seconds."""
        self._probe_prefill(probe, 1, len(probe.input_ids))

    def _slot_count(self, probe: list[Request] | None, margin: float) -> int:
        """As many slots as free memory holds once a prefill of ``prefill_rows`` prompts (``probe``'s first
        prompt, repeated, padded to ``max_prompt``) has run."""
        if self.device.type != "cuda" or not probe:
            raise ValueError("generation.slots=auto needs a CUDA device and a probe request; set a number of slots")
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        self._probe_prefill(probe[0], self.prefill_rows, self.max_prompt)
        peak = torch.cuda.max_memory_allocated() - before
        torch.cuda.empty_cache()
        free, total = torch.cuda.mem_get_info()
        # K/V, the output buffer, and the decode step's own (slots x vocab) float temporaries (about 8 of them).
        per_slot = (SlotCache.bytes_per_slot(self.text_config, self.width, self.dtype)
                    + 8 * self.max_new + 8 * 4 * self.vocab)
        return max(1, int((free - peak - margin * total) // per_slot))

    def _launch(self) -> None:
        """Prefill one chunk of waiting prompts into free slots (their K/V and first token); the slots join the
        decode at the next ``_land``. The decode steps running meanwhile still write those slots' K/V, but only
        at the last column (parked there first), which no prompt reaches."""
        free = [s for s, r in enumerate(self.occupant) if r is None][:self.prefill_rows]
        if not self.waiting or not free:
            return
        batch = [self.waiting.popleft() for _ in range(min(len(free), len(self.waiting)))]
        slots = free[:len(batch)]
        lengths = [len(r.input_ids) for r in batch]
        ids = torch.full((len(batch), max(lengths)), self.pad, dtype=torch.long)
        for row, r in enumerate(batch):
            ids[row, :lengths[row]] = r.input_ids
        # The chunk's host values in one copy that does not wait for the GPU, so that this round's decode steps are
        # queued while the prefill runs (a plain host-to-GPU copy blocks until its stream is idle).
        index, last, seeds, limits = self._upload(torch.tensor(
            [slots, [n - 1 for n in lengths], [r.seed for r in batch], [r.max_new_tokens or self.max_new for r in batch]]))
        self.cache.positions.index_fill_(0, index, self.width - 1)   # (``t[i] = scalar`` waits for the GPU)
        noise = self._cpu_noise([r.seed for r in batch], [0] * len(batch)) if self.host_noise else None
        if self.side is not None:
            self.side.wait_stream(torch.cuda.current_stream())
        with self._clock("prefill_s"), torch.cuda.stream(self.side) if self.side is not None else nullcontext():
            pixels = torch.stack([r.pixel_values for r in batch])
            pixels = (self._upload(pixels) if pixels.device.type == "cpu" else pixels).to(self.dtype)
            hidden = self._forward_prefill(self._upload(ids), pixels, self.cache, slots, index)
            logits = self.decode.head(hidden[torch.arange(len(batch), device=self.device), last])
            first = self.decode.choose(logits, torch.zeros_like(seeds), seeds,
                                       None if noise is None else self._upload(noise))
            ready = torch.cuda.Event() if self.side is not None else None
            if ready is not None:
                ready.record()
        self.pending = (slots, batch, index, first, seeds, last, limits, ready)
        self.stats["prefilled"] += len(batch)
        for s in slots:
            self.occupant[s] = RESERVED

    def _upload(self, host: torch.Tensor) -> torch.Tensor:
        """``host`` on the engine's device, copied from pinned memory without waiting for the GPU."""
        return host.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else host

    def _land(self) -> None:
        """The launched chunk's slots join the decode (after its prefill, on the main stream)."""
        if self.pending is None:
            return
        slots, batch, index, first, seeds, last, limits, ready = self.pending
        if ready is not None:
            torch.cuda.current_stream().wait_event(ready)
        self.decode.admit(index, first, seeds, limits)
        self.cache.positions[index] = last + 1  # where the first new token's K/V goes
        for s, r in zip(slots, batch):
            self.occupant[s], self.host_steps[s] = r, 1
        self.pending = None

    def _forward_prefill(self, ids, pixels, cache: SlotCache, slots: list[int], index=None) -> torch.Tensor:
        n = ids.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=self.device).tril()[None, None].expand(len(ids), 1, n, n)
        with cache.prefill_into(slots, index), self.attention(), self.compiled_prefill() if self.compiled_prefill else nullcontext():
            out = self.model.model(input_ids=ids, pixel_values=pixels, attention_mask=causal,
                                   position_ids=torch.arange(n, device=self.device)[None].expand(len(ids), n),
                                   use_cache=True, **{self.prefill_cache_kwarg: cache})
        return out.last_hidden_state

    def _collect(self) -> list[tuple[Request, torch.Tensor]]:
        """Free the slots whose sequence finished (one host sync)."""
        done = self.decode.done.tolist()
        finished = [s for s, r in enumerate(self.occupant) if r is not None and r is not RESERVED and done[s]]
        if not finished:
            return []
        out = self.decode.out[finished].cpu()
        result = []
        for row, s in enumerate(finished):
            result.append((self.occupant[s], out[row]))
            self.occupant[s] = None
        return result

    def _compact(self) -> None:
        """Move the occupied slots above the first n (n occupied) into the free ones below, so that decode
        runs over fewer slots; a slot's K/V is one contiguous copy."""
        occupied = [s for s, r in enumerate(self.occupant) if r is not None]
        movers = [s for s in occupied if s >= len(occupied)]
        if not movers:
            return
        holes = [s for s in range(len(occupied)) if self.occupant[s] is None]
        self.decode.move(torch.tensor(movers, device=self.device), torch.tensor(holes, device=self.device))
        for s, d in zip(movers, holes):
            self.occupant[d], self.host_steps[d], self.occupant[s] = self.occupant[s], self.host_steps[s], None

    # -- decode steps -------------------------------------------------------------------------------------
    def _decode(self) -> None:
        """One decode step over the smallest bucket holding every occupied slot."""
        if self.host_noise:
            live = [s for s, r in enumerate(self.occupant) if r is not None and r is not RESERVED]
            noise = self._cpu_noise([self.occupant[s].seed for s in live], [self.host_steps[s] for s in live])
            self.decode.noise[live] = self._upload(noise)
        for s, r in enumerate(self.occupant):
            if r is not None:
                self.host_steps[s] += 1
        top = max((s for s, r in enumerate(self.occupant) if r is not None), default=0) + 1
        bucket = next(b for b in self.buckets if b >= top)
        self.decode(bucket)

    def _cpu_noise(self, seeds: list[int], steps: list[int]) -> torch.Tensor:
        """mt19937 noise for rows that still sample (zeros past ``sample_tokens``), on the host."""
        limit = self.sampler.sample_tokens
        noise = torch.zeros(len(seeds), self.vocab, dtype=torch.float32)
        rows = [i for i, step in enumerate(steps) if limit is None or step < limit]
        if rows:
            noise[rows] = self.sampler.gumbel([seeds[i] for i in rows], [steps[i] for i in rows], noise)
        return noise
