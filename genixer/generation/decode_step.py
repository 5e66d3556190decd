"""The engine's decode step: one token for each of the first ``n`` KV-cache slots, over fixed shapes.

Each slot's state lives in tensors updated in place, so that a CUDA graph can replay the step: its last token, the
tokens generated so far, its sampling seed, whether it is done, its token limit, its output row, and whether a box
is open (``box_marks``: greedy inside boxes). Done, empty and reserved slots compute too (their results are thrown
away): a step's shapes depend on ``n`` alone. On CUDA the step is captured as one graph per ``n`` (the engine's
buckets), the graphs sharing one memory pool; ``compiled`` (``CompiledLayers``) runs the layers compiled inside them.
"""
from __future__ import annotations

import inspect
from contextlib import nullcontext
from typing import Callable

import torch

from genixer.generation.sampling import PerSampleSampler, next_box_state
from genixer.generation.slot_cache import SlotCache


def cache_kwarg(module: torch.nn.Module) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.2x); the name ``module``'s forward takes."""
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


class DecodeStep:
    """The decode step over ``cache``'s slots; ``attention``: the context the layers attend in (the engine's)."""

    def __init__(self, model, cache: SlotCache, max_new_tokens: int, min_new_tokens: int, eos_token_id: int,
                 pad_token_id: int, sampler: PerSampleSampler | None, attention: Callable, compiled=None,
                 host_noise: bool = False) -> None:
        self.decoder, self.head, self.cache, self.sampler = model.get_decoder(), model.get_output_embeddings(), cache, sampler
        self.attention, self.compiled = attention, compiled
        self.max_new, self.min_new, self.eos, self.pad = max_new_tokens, min_new_tokens, eos_token_id, pad_token_id
        self.cache_kwarg = cache_kwarg(self.decoder)
        n, device = len(cache.rows), cache.rows.device
        self.width = cache.keys[0].shape[2]
        self.tokens = torch.full((n,), pad_token_id, dtype=torch.long, device=device)
        self.steps = torch.zeros(n, dtype=torch.long, device=device)  # tokens generated so far
        self.seeds = torch.zeros(n, dtype=torch.long, device=device)
        self.done = torch.ones(n, dtype=torch.bool, device=device)
        self.limits = torch.full((n,), max_new_tokens, dtype=torch.long, device=device)
        self.out = torch.full((n, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
        self.columns = torch.arange(self.width, device=device)
        marks = sampler.box_marks if sampler is not None else None
        self.box_marks = None if marks is None else marks.to(device)
        self.in_box = None if marks is None else torch.zeros(n, dtype=torch.bool, device=device)
        # mt19937 noise off a GPU is drawn on the host (by the engine) and copied in before each step.
        vocab = self.head.weight.shape[0]
        self.noise = torch.zeros(n, vocab, device=device, dtype=torch.float32) if host_noise else None
        self.graphs: dict[int, torch.cuda.CUDAGraph] | None = None

    def __call__(self, n: int) -> None:
        """One step over the first ``n`` slots: its graph's replay if captured, else eagerly."""
        if self.graphs is not None:
            self.graphs[n].replay()
        else:
            self.step(n)

    def admit(self, index: torch.Tensor, first: torch.Tensor, seeds: torch.Tensor, limits: torch.Tensor) -> None:
        """Slots ``index`` start their sequences: ``first`` token (from the prefill), ``seeds``, token ``limits``."""
        # Scalars by ``index_fill_``: ``t[index] = scalar`` copies the scalar to the GPU and waits for it.
        self.tokens[index], self.seeds[index] = first, seeds
        self.steps.index_fill_(0, index, 1)
        self.out.index_fill_(0, index, self.pad)
        self.out[index, 0] = first
        self.limits[index] = limits
        self.done[index] = (first == self.eos) | (limits <= 1)
        if self.in_box is not None:
            self.in_box[index] = next_box_state(self.box_marks, torch.zeros_like(first, dtype=torch.bool), first)

    def move(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """Slots ``src``' sequences (K/V and state) to slots ``dst``; ``src`` are left done."""
        self.cache.move(src, dst)
        for state in (self.tokens, self.steps, self.seeds, self.done, self.out, self.limits, self.cache.positions,
                      self.in_box):
            if state is not None:
                state[dst] = state[src]
        self.done.index_fill_(0, src, True)

    def step(self, n: int) -> None:
        """One token for each of the first ``n`` slots, in place."""
        self.cache.active = n
        # A done, empty or reserved (prefilling) slot writes at the last column, which no sequence reaches, and
        # attends to column 0 alone: its result is thrown away, and reading its whole row cost as much as a live row's.
        idle = self.done[:n]
        positions = torch.where(idle, self.width - 1, self.cache.positions[:n].clamp(max=self.width - 1))
        mask = torch.where(idle[:, None], self.columns[None] == 0, self.columns[None] <= positions[:, None])[:, None, None]
        self.cache.positions[:n] = positions
        with self.attention(), self.compiled() if self.compiled else nullcontext():
            hidden = self.decoder(input_ids=self.tokens[:n, None], attention_mask=mask, position_ids=positions[:, None],
                                  use_cache=True, **{self.cache_kwarg: self.cache}).last_hidden_state
        steps, done, rows = self.steps[:n], self.done[:n], self.cache.rows[:n]
        in_box = None if self.in_box is None else self.in_box[:n]
        chosen = self.choose(self.head(hidden[:, -1]), steps, self.seeds[:n], None if self.noise is None else self.noise[:n],
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

    def choose(self, logits, steps, seeds, noise, in_box=None) -> torch.Tensor:
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

    def warm_up(self, buckets: list[int], prompt_length: int) -> None:
        """Run the step for each of ``buckets`` on a side stream, before ``capture``: whatever compiles or tunes at
        a first call does so here, never inside a capture (slots all idle: nothing is lost)."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        # Warm-up rows are live and ``prompt_length`` long: the decode attention kernel is tuned at its first call,
        # and rows of one column would tune it for launch overhead rather than for reading a real row.
        self.done.fill_(False)
        self.cache.positions.fill_(prompt_length)
        with torch.cuda.stream(stream), torch.no_grad():
            # The largest bucket first (where the kernel tunes); compiled layers warm every bucket, so that they
            # compile before capture, never inside it (a bucket of 1 compiles apart).
            for _ in range(2):
                for n in sorted(buckets, reverse=True) if self.compiled else [max(buckets)]:
                    self.step(n)
        torch.cuda.current_stream().wait_stream(stream)

    def capture(self, buckets: list[int]) -> None:
        """Capture the step for each of ``buckets``, largest first, after ``warm_up``; then reset every slot to idle.
        Replays never overlap and write only this step's own state: one memory pool."""
        graphs, pool = {}, torch.cuda.graph_pool_handle()
        for n in sorted(buckets, reverse=True):
            graphs[n] = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graphs[n], pool=pool), torch.no_grad():
                self.step(n)
        self.steps.zero_()
        self.cache.positions.zero_()
        self.done.fill_(True)
        self.out.fill_(self.pad)
        self.graphs = graphs
