"""Sequence packing: several samples back to back in one row of at most ``capacity`` tokens, none seeing another.

``pack_rows`` plans an epoch's rows from the samples' token lengths (image tokens included): the samples in
a seeded order (``seed + epoch``), each put into the open row with the least room that still fits it (best
fit), else into a new row. The plan depends on (lengths, capacity, seed, epoch) only, so every DDP rank
computes the same rows; a sampler over *rows* (``ShuffledSampler``) then gives each rank whole, disjoint
rows and resumes mid-epoch at row granularity (``ResumableLoader``), as for unpacked samples.

A packed row (``PackedRows``) concatenates its samples' ``input_ids`` and ``labels``, with ``position_ids``
restarting at 0 for each sample (RoPE sees each sample as it would alone) and the samples' images in row
order (the LLaVA forward fills image-token positions with image features in order). ``PackedCollator``
pads rows to the longest and passes no ``attention_mask``: transformers then reads the sample boundaries
from the position-id restarts and masks attention block-diagonally (``masking_utils.find_packed_sequence_indices``;
only without a KV cache, so the forward passes ``use_cache=False``: genixer.training.generator). Padding is
a segment of its own (positions from 0 again), attended by no real token and never supervised.

Labels: each sample's first label is ignored (it always is: the prompt opens a sample), so no sample learns
to predict the next one's first token; the loss stays the mean over supervised tokens, as unpacked.
``sample_lengths`` (every packed sample's token count, in order) lets the throughput meter count real tokens.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from genixer.backbones.codec import IGNORE_INDEX


def pack_rows(lengths: Sequence[int], capacity: int, seed: int, epoch: int) -> list[list[int]]:
    """Rows of sample indices (each index once, each row's lengths summing to at most ``capacity``)."""
    too_long = [i for i, n in enumerate(lengths) if n > capacity]
    if too_long:
        raise ValueError(f"{len(too_long)} samples are longer than a packed row of {capacity} tokens "
                         f"(sample {too_long[0]}: {lengths[too_long[0]]})")
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    shortest = min(lengths, default=0)
    rows: list[list[int]] = []
    room: list[tuple[int, int]] = []   # (tokens free, row), sorted: the rows that can still take a sample
    for i in order:
        k = bisect.bisect_left(room, (lengths[i], -1))   # the tightest row the sample fits in
        if k < len(room):
            free, row = room.pop(k)
            rows[row].append(i)
        else:
            free, row = capacity, len(rows)
            rows.append([i])
        if free - lengths[i] >= shortest:
            bisect.insort(room, (free - lengths[i], row))
    return rows


class PackedRows(Dataset):
    """Row r: the samples ``rows[r]`` of ``samples`` (items with ``input_ids``, ``labels``, ``pixel_values``)."""

    def __init__(self, samples: Dataset, rows: list[list[int]], capacity: int) -> None:
        self.samples, self.rows, self.capacity = samples, rows, capacity

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, r: int) -> dict:
        items = [self.samples[i] for i in self.rows[r]]
        lengths = [len(item["input_ids"]) for item in items]
        if sum(lengths) > self.capacity:   # the plan's lengths disagree with the encoded samples
            raise RuntimeError(f"packed row {r} holds {sum(lengths)} tokens, more than {self.capacity}")
        labels = [item["labels"].clone() for item in items]
        for label in labels:
            label[0] = IGNORE_INDEX
        return {
            "input_ids": torch.cat([item["input_ids"] for item in items]),
            "labels": torch.cat(labels),
            "position_ids": torch.cat([torch.arange(n) for n in lengths]),
            "pixel_values": torch.stack([item["pixel_values"] for item in items]),
            "sample_lengths": torch.tensor(lengths),
        }


class PackedCollator:
    """Right-pads packed rows (ids: ``pad_id``, labels: ignored, positions: a new segment from 0); images and
    sample lengths of all rows in row order. No ``attention_mask``: the position ids carry the boundaries."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]) -> dict:
        width = max(len(row["input_ids"]) for row in rows)

        def padded(key: str, fill: int) -> torch.Tensor:
            return torch.stack([torch.cat([row[key], row[key].new_full((width - len(row[key]),), fill)]) for row in rows])
        return {
            "input_ids": padded("input_ids", self.pad_id),
            "labels": padded("labels", IGNORE_INDEX),
            "position_ids": torch.stack([torch.cat([row["position_ids"], torch.arange(width - len(row["position_ids"]))])
                                         for row in rows]),
            "pixel_values": torch.cat([row["pixel_values"] for row in rows]),
            "sample_lengths": torch.cat([row["sample_lengths"] for row in rows]),
        }
