"""The engine's KV cache: one row ("slot") per sequence, each written at its own columns."""
from __future__ import annotations

from contextlib import contextmanager

import torch

from genixer.runs.roofline import head_dim, kv_bytes_per_token

MAX_RUNS = 4   # a prefill's slots in more runs than this are written by one index_copy_ (see ``prefill_into``)


class SlotCache:
    """Per-layer K/V ``(slots, kv_heads, width, head_dim)``, written per slot.

    The model calls ``update`` from every attention layer (duck-typed for transformers' ``Cache``). In prefill
    (``prefill_into``: the chunk's slots, row by row) the new keys go to columns 0..n-1 of those slots and attention
    sees only them; in decode each slot's one new key goes to its own column (``self.positions``) and attention
    sees the whole width under the caller's mask.
    """

    def __init__(self, text_config, slots: int, width: int, dtype: torch.dtype, device: torch.device) -> None:
        shape = (slots, text_config.num_key_value_heads, width, head_dim(text_config))
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(text_config.num_hidden_layers)]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.rows = torch.arange(slots, device=device)
        self.positions = torch.zeros(slots, dtype=torch.long, device=device)
        self.prefill_runs: list[tuple[int, int, int]] | None = None   # (first slot, first row, count)
        self.prefill_index: torch.Tensor | None = None   # or the slots, for one index_copy_
        self.active = slots  # decode touches slots [0, active) only

    @staticmethod
    def bytes_per_slot(text_config, width: int, dtype: torch.dtype) -> int:
        return kv_bytes_per_token(text_config, torch.finfo(dtype).bits // 8) * width

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        k, v = self.keys[layer_idx], self.values[layer_idx]
        if self.prefill_index is not None:
            n = key.shape[2]
            k.narrow(2, 0, n).index_copy_(0, self.prefill_index, key)
            v.narrow(2, 0, n).index_copy_(0, self.prefill_index, value)
            return key, value
        if self.prefill_runs is not None:
            n = key.shape[2]
            for slot, row, count in self.prefill_runs:  # a strided copy per run of consecutive slots
                k[slot:slot + count, :, :n].copy_(key[row:row + count])
                v[slot:slot + count, :, :n].copy_(value[row:row + count])
            return key, value
        n = self.active
        k, v = k[:n], v[:n]
        k[self.rows[:n], :, self.positions[:n]] = key[:, :, 0]
        v[self.rows[:n], :, self.positions[:n]] = value[:, :, 0]
        return k, v

    @contextmanager
    def prefill_into(self, slots: list[int], index: torch.Tensor | None = None):
        """Inside: the forward's prompts (rows, in order) are written to ``slots`` (``index``: the same on the
        device, if the caller has them): a strided copy per run of consecutive slots when there are at most
        ``MAX_RUNS``, else one ``index_copy_`` (one layer's K/V of 16 prompts on an H200: one run 238 us,
        ``index_copy_`` 327, 16 runs of one slot 544)."""
        runs = []
        for row, slot in enumerate(slots):
            if runs and slot == runs[-1][0] + runs[-1][2]:
                runs[-1][2] += 1
            else:
                runs.append([slot, row, 1])
        if len(runs) <= MAX_RUNS:
            self.prefill_runs = [tuple(run) for run in runs]
        else:
            self.prefill_index = torch.tensor(slots, device=self.rows.device) if index is None else index
        try:
            yield
        finally:
            self.prefill_runs = self.prefill_index = None

    def move(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """Copy slots ``src``' K/V to slots ``dst`` (compaction)."""
        for k, v in zip(self.keys, self.values):
            k[dst], v[dst] = k[src], v[src]
