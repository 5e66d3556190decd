"""A continuous-batching decode engine (the ``cache: engine`` generation option).

A fixed set of KV-cache *slots* (``SlotCache``) holds one sequence each, at its own columns, so a finished
sequence's slot takes a waiting prompt without touching the others. The decode step has fixed shapes (the
first ``bucket`` slots, one token each, the cache's whole width, masked per row); on CUDA it is captured as one
CUDA graph per bucket and replayed, one launch per step instead of the eager forward's Python. Once no prompt
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

import inspect
import time
from collections import deque
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from genixer.generation.compiled_layers import CompiledLayers
from genixer.generation.engine_attention import attending_as_engine, engine_attention
from genixer.generation.mt19937 import uses_kernel
from genixer.generation.sampling import PerSampleSampler, next_box_state
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


def _cache_kwarg(module: torch.nn.Module) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.2x); pass whichever the forward names."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


class DecodeEngine:
    """Continuous batching over ``slots`` sequences of up to ``max_prompt`` + ``max_new_tokens`` tokens."""

    def __init__(self, model, max_prompt: int, max_new_tokens: int, eos_token_id: int, pad_token_id: int,
                 min_new_tokens: int = 0, sampler: PerSampleSampler | None = None, slots: int | str = "auto",
                 prefill_rows: int = 16, sync_every: int = 8, graphs: bool | None = None,
                 memory_margin: float = 0.1, probe: list[Request] | None = None, max_slots: int | None = None,
                 timed: bool = False, compile_prefill: bool | None = None, compile_decode: bool | None = None) -> None:
        self.model, self.sampler = model, sampler
        self.max_new, self.min_new, self.eos, self.pad = max_new_tokens, min_new_tokens, eos_token_id, pad_token_id
        self.max_prompt, self.width = max_prompt, -(-(max_prompt + max_new_tokens) // 16) * 16  # aligned rows
        self.prefill_rows, self.sync_every = prefill_rows, sync_every
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.decoder, self.head = model.get_decoder(), model.get_output_embeddings()
        self.cache_kwarg, self.prefill_cache_kwarg = _cache_kwarg(self.decoder), _cache_kwarg(model.model)
        # Prefill forwards and decode steps run the decoder's layers compiled (``CompiledLayers``; default: on a GPU).
        on_gpu = self.device.type == "cuda"
        prefill, decode = (on_gpu if flag is None else flag for flag in (compile_prefill, compile_decode))
        layers = CompiledLayers(self.decoder, engine_attention) if prefill or decode else None
        self.compiled_prefill, self.compiled_decode = layers if prefill else None, layers if decode else None
        self.vocab = self.head.weight.shape[0]
        self.text_config = model.config.get_text_config()
        self.setup_s = {}   # seconds of the engine's start, by part (prefill compile, slot probe, graph capture)
        if self.compiled_prefill and probe:
            with self._setup_clock("prefill_compile"):
                self._compile_prefill(probe[0])
        if slots == "auto":  # as many as memory holds, but no more than could ever be busy (``max_slots``)
            with self._setup_clock("slot_probe"):
                slots = min(self._slot_count(probe, memory_margin), max_slots or float("inf"))
        self.slots = int(slots)
        n = self.slots
        self.cache = SlotCache(self.text_config, n, self.width, self.dtype, self.device)
        # The decode step's state, updated in place (a CUDA graph replays these very tensors).
        self.tokens = torch.full((n,), pad_token_id, dtype=torch.long, device=self.device)
        self.steps = torch.zeros(n, dtype=torch.long, device=self.device)  # tokens generated so far
        self.seeds = torch.zeros(n, dtype=torch.long, device=self.device)
        self.done = torch.ones(n, dtype=torch.bool, device=self.device)
        self.limits = torch.full((n,), max_new_tokens, dtype=torch.long, device=self.device)
        self.out = torch.full((n, max_new_tokens), pad_token_id, dtype=torch.long, device=self.device)
        self.columns = torch.arange(self.width, device=self.device)
        marks = sampler.box_marks if sampler is not None else None
        self.box_marks = None if marks is None else marks.to(self.device)
        self.in_box = None if marks is None else torch.zeros(n, dtype=torch.bool, device=self.device)
        # mt19937 noise off a GPU is drawn on the CPU and copied in per step; on a GPU it is computed there.
        self.host_noise = sampler is not None and sampler.noise == "mt19937" and not uses_kernel(self.device)
        self.noise = torch.zeros(n, self.vocab, device=self.device, dtype=torch.float32) if self.host_noise else None
        self.occupant: list[Request | None] = [None] * n
        self.host_steps = [0] * n  # the host's copy of ``steps`` (CPU noise needs it)
        self.waiting: deque[Request] = deque()
        self.pending = None  # the launched prefill chunk, until it lands
        self.side = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        # Seconds in prefill / decode / collect, prompts prefilled, decode steps (``timed`` syncs to measure).
        self.timed, self.stats = timed, {"prefill_s": 0.0, "decode_s": 0.0, "collect_s": 0.0, "prefilled": 0, "steps": 0}
        use_graphs = self.device.type == "cuda" if graphs is None else graphs
        # Decode runs over the first ``bucket`` slots, the smallest bucket holding every occupied slot (finished
        # rows are compacted downwards once no prompt waits); one CUDA graph per bucket, sharing one memory pool.
        self.buckets = sorted({-(-n * j // 8) for j in range(1, 9)})
        self.graphs = None
        if use_graphs:
            with self._setup_clock("graph_capture"):   # with compile_decode: the decode step's compile too
                self.graphs = self._capture()

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
        on a side stream while ``sync_every`` decode steps run on the main one (meant to overlap, compute beside
        memory traffic; on an H200 they run one after the other), then the finished rows are collected. (Landing
        the chunk before this round's steps instead would add 2% busy rows per step: not worth a switch.)"""
        finished = []
        while True:
            self._land()
            running = any(r is not None for r in self.occupant)
            if not (running or self.waiting) or (not drain and not self.waiting):
                return finished
            self._launch()
            if running:
                with self._clock("decode_s"):
                    for _ in range(self.sync_every):
                        self._decode()
                self.stats["steps"] += self.sync_every
            with self._clock("collect_s"):
                finished += self._collect()
            if not self.waiting and self.pending is None:
                self._compact()

    @contextmanager
    def _setup_clock(self, part: str):
        start = time.perf_counter()
        yield
        torch.cuda.synchronize(self.device) if self.device.type == "cuda" else None
        self.setup_s[part] = round(time.perf_counter() - start, 2)

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
            self._forward_prefill(ids, pixels, cache, torch.arange(rows, device=self.device))

    def _compile_prefill(self, probe: Request) -> None:
        """Compile the prefill for chunks of one prompt and of several (a size of 1 compiles apart) now: a compile
        in the middle of a run would hold the decode up for seconds."""
        for rows in (2, 1):
            self._probe_prefill(probe, rows, len(probe.input_ids))

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
        index = torch.tensor(slots, device=self.device)
        self.cache.positions[index] = self.width - 1
        lengths = [len(r.input_ids) for r in batch]
        ids = torch.full((len(batch), max(lengths)), self.pad, dtype=torch.long)
        for row, r in enumerate(batch):
            ids[row, :lengths[row]] = r.input_ids
        noise = self._cpu_noise([r.seed for r in batch], [0] * len(batch)) if self.host_noise else None
        if self.side is not None:
            self.side.wait_stream(torch.cuda.current_stream())
        with self._clock("prefill_s"), torch.cuda.stream(self.side) if self.side is not None else nullcontext():
            pixels = torch.stack([r.pixel_values for r in batch]).to(self.device, self.dtype)
            hidden = self._forward_prefill(ids.to(self.device), pixels, self.cache, index)
            last = torch.tensor(lengths, device=self.device) - 1
            logits = self.head(hidden[torch.arange(len(batch), device=self.device), last])
            seeds = torch.tensor([r.seed for r in batch], dtype=torch.long, device=self.device)
            first = self._choose(logits, torch.zeros_like(seeds), seeds, None if noise is None else noise.to(self.device))
            limits = torch.tensor([r.max_new_tokens or self.max_new for r in batch], device=self.device)
            ready = torch.cuda.Event() if self.side is not None else None
            if ready is not None:
                ready.record()
        self.pending = (slots, batch, index, first, seeds, last, limits, ready)
        self.stats["prefilled"] += len(batch)
        for s in slots:
            self.occupant[s] = RESERVED

    def _land(self) -> None:
        """The launched chunk's slots join the decode (after its prefill, on the main stream)."""
        if self.pending is None:
            return
        slots, batch, index, first, seeds, last, limits, ready = self.pending
        if ready is not None:
            torch.cuda.current_stream().wait_event(ready)
        self.tokens[index], self.seeds[index], self.steps[index] = first, seeds, 1
        self.cache.positions[index] = last + 1  # where the first new token's K/V goes
        self.out[index] = self.pad
        self.out[index, 0] = first
        self.limits[index] = limits
        self.done[index] = (first == self.eos) | (limits <= 1)
        if self.in_box is not None:
            self.in_box[index] = next_box_state(self.box_marks, torch.zeros_like(first, dtype=torch.bool), first)
        for s, r in zip(slots, batch):
            self.occupant[s], self.host_steps[s] = r, 1
        self.pending = None

    def _forward_prefill(self, ids, pixels, cache: SlotCache, index) -> torch.Tensor:
        n = ids.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=self.device).tril()[None, None].expand(len(ids), 1, n, n)
        cache.prefill_slots = index
        try:
            with self._attention(), self.compiled_prefill() if self.compiled_prefill else nullcontext():
                out = self.model.model(input_ids=ids, pixel_values=pixels, attention_mask=causal,
                                       position_ids=torch.arange(n, device=self.device)[None].expand(len(ids), n),
                                       use_cache=True, **{self.prefill_cache_kwarg: cache})
        finally:
            cache.prefill_slots = None
        return out.last_hidden_state

    def _attention(self):
        """The forwards inside use ``engine_attention`` (``attending_as_engine``)."""
        return attending_as_engine(self.text_config)

    def _collect(self) -> list[tuple[Request, torch.Tensor]]:
        """Free the slots whose sequence finished (one host sync)."""
        done = self.done.tolist()
        finished = [s for s, r in enumerate(self.occupant) if r is not None and r is not RESERVED and done[s]]
        if not finished:
            return []
        out = self.out[finished].cpu()
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
        src, dst = torch.tensor(movers, device=self.device), torch.tensor(holes, device=self.device)
        self.cache.move(src, dst)
        for state in (self.tokens, self.steps, self.seeds, self.done, self.out, self.limits, self.cache.positions,
                      self.in_box):
            if state is not None:
                state[dst] = state[src]
        for s, d in zip(movers, holes):
            self.occupant[d], self.host_steps[d], self.occupant[s] = self.occupant[s], self.host_steps[s], None
        self.done[src] = True

    # -- the decode step ------------------------------------------------------------------------------------
    def _decode(self) -> None:
        if self.host_noise:
            live = [s for s, r in enumerate(self.occupant) if r is not None and r is not RESERVED]
            noise = self._cpu_noise([self.occupant[s].seed for s in live], [self.host_steps[s] for s in live])
            self.noise[live] = noise.to(self.device, non_blocking=True)
        for s, r in enumerate(self.occupant):
            if r is not None:
                self.host_steps[s] += 1
        top = max((s for s, r in enumerate(self.occupant) if r is not None), default=0) + 1
        bucket = next(b for b in self.buckets if b >= top)
        if self.graphs is not None:
            self.graphs[bucket].replay()
        else:
            self._step(bucket)

    def _step(self, n: int) -> None:
        """One token for each of the first ``n`` slots, in place; finished and empty ones compute too."""
        self.cache.active = n
        # A finished, empty or reserved (prefilling) slot writes at the last column, which no sequence reaches,
        # and attends to column 0 alone: its result is thrown away, and reading its whole row cost as much as
        # a live row's.
        idle = self.done[:n]
        positions = torch.where(idle, self.width - 1, self.cache.positions[:n].clamp(max=self.width - 1))
        mask = torch.where(idle[:, None], self.columns[None] == 0, self.columns[None] <= positions[:, None])[:, None, None]
        self.cache.positions[:n] = positions
        with self._attention(), self.compiled_decode() if self.compiled_decode else nullcontext():
            hidden = self.decoder(input_ids=self.tokens[:n, None], attention_mask=mask, position_ids=positions[:, None],
                                  use_cache=True, **{self.cache_kwarg: self.cache}).last_hidden_state
        steps, done, rows = self.steps[:n], self.done[:n], self.cache.rows[:n]
        in_box = None if self.in_box is None else self.in_box[:n]
        chosen = self._choose(self.head(hidden[:, -1]), steps, self.seeds[:n], None if self.noise is None else self.noise[:n],
                              in_box)
        if in_box is not None:
            in_box.copy_(next_box_state(self.box_marks, in_box, chosen))
        live = ~done
        step = steps.clamp(max=self.max_new - 1)
        self.out[rows, step] = torch.where(live, chosen, self.out[rows, step])
        done |= live & ((chosen == self.eos) | (steps + 1 >= self.limits[:n]))
        self.tokens[:n] = chosen
        steps += 1
        self.cache.positions[:n] += 1

    def _choose(self, logits, steps, seeds, noise, in_box=None) -> torch.Tensor:
        """The next token of each row: EOS barred before ``min_new_tokens``, then greedy or sampled (greedy where
        ``in_box``)."""
        scores = logits.float()
        if self.min_new:
            barred = (steps < self.min_new)[:, None] & (torch.arange(scores.shape[-1], device=scores.device) == self.eos)
            scores = scores.masked_fill(barred, float("-inf"))
        if self.sampler is not None:
            noise = self.sampler.gumbel(seeds, steps, scores) if noise is None else noise
            sampled = self.sampler.sample_scores(scores, noise)
            if self.sampler.sample_tokens is not None:
                sampled = torch.where((steps < self.sampler.sample_tokens)[:, None], sampled, scores)
            scores = self.sampler.greedy_in_boxes(sampled, scores, in_box)
        return scores.argmax(-1)

    def _cpu_noise(self, seeds: list[int], steps: list[int]) -> torch.Tensor:
        """mt19937 noise for rows that still sample (zeros past ``sample_tokens``), pinned for the copy."""
        limit = self.sampler.sample_tokens
        noise = torch.zeros(len(seeds), self.vocab, dtype=torch.float32)
        rows = [i for i, step in enumerate(steps) if limit is None or step < limit]
        if rows:
            noise[rows] = self.sampler.gumbel([seeds[i] for i in rows], [steps[i] for i in rows], noise)
        return noise.pin_memory() if self.device.type == "cuda" else noise

    def _capture(self) -> dict[int, torch.cuda.CUDAGraph]:
        """Warm the decode step up on a side stream, then capture it per bucket, largest first (slots all
        idle: nothing is lost). Replays never overlap and write only the engine's own state, so the graphs
        share one memory pool."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        # Warm-up rows are live and a whole prompt long: the decode attention kernel is tuned at its first call,
        # and rows of one column would tune it for launch overhead rather than for reading a real row.
        self.done.fill_(False)
        self.cache.positions.fill_(self.max_prompt)
        with torch.cuda.stream(stream), torch.no_grad():
            # The largest bucket first (where the kernel tunes); compiled decode layers warm every bucket, so that
            # they compile before capture, never inside it (a bucket of 1 compiles apart).
            for _ in range(2):
                for n in reversed(self.buckets) if self.compiled_decode else [self.slots]:
                    self._step(n)
        torch.cuda.current_stream().wait_stream(stream)
        graphs, pool = {}, torch.cuda.graph_pool_handle()
        for n in sorted(self.buckets, reverse=True):
            graphs[n] = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graphs[n], pool=pool), torch.no_grad():
                self._step(n)
        self.steps.zero_()
        self.cache.positions.zero_()
        self.done.fill_(True)
        self.out.fill_(self.pad)
        return graphs
