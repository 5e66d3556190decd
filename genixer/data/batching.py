"""Length-grouped batches: samples of similar token length share a batch (less padding).

Like LLaVA's ``group_by_modality_length`` / HF's ``LengthGroupedSampler``: shuffle the indices
with a generator seeded by ``seed + epoch``, cut them into megabatches of
``batch_size * megabatch_factor``, sort each megabatch by length (longest first), cut it into
batches, then shuffle the order of the batches. The order depends on (lengths, seed, epoch) only,
so every rank computes the same list of batches.

DDP: the sampler is a ``DistributedSampler`` subclass, so Lightning (``use_distributed_sampler``)
leaves it alone instead of wrapping it in its own. Rank r takes batches r, r + W, r + 2W, ...
(W = world size) and yields their indices back to back; the DataLoader cuts them with the same
``batch_size``, so each rank gets whole grouped batches, disjoint from the other ranks'.

drop_last: only full batches are kept (the ``len % batch_size`` samples left at the end of the
shuffled order are dropped, a different few each epoch), and the number of batches is cut to a
multiple of W so that every rank runs the same number of steps (fewer batches than ranks is an
error, not an empty epoch). On one process, a dataset smaller than one batch gives one partial
batch, as the plain DataLoader (``drop_last=False`` then) does.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler

MEGABATCH_FACTOR = 50  # HF's LengthGroupedSampler uses 50 batches per megabatch


def grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                    megabatch_factor: int = MEGABATCH_FACTOR) -> list[list[int]]:
    """Every batch of the epoch (all ranks), in training order; whole batches only (see module doc)."""
    n = len(lengths)
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    if n < batch_size:
        return [sorted(order, key=lambda i: -lengths[i])] if n else []
    order = order[: n - n % batch_size]
    mega = batch_size * megabatch_factor
    batches = []
    for start in range(0, len(order), mega):
        group = sorted(order[start : start + mega], key=lambda i: -lengths[i])  # stable: ties keep the shuffle
        batches += [group[k : k + batch_size] for k in range(0, len(group), batch_size)]
    return [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]


class LengthGroupedSampler(DistributedSampler):
    """Yields this rank's grouped batches back to back; use it with ``DataLoader(batch_size=batch_size)``."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, epoch: int = 0,
                 num_replicas: int = 1, rank: int = 0, megabatch_factor: int = MEGABATCH_FACTOR) -> None:
        super().__init__(lengths, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.lengths, self.batch_size, self.megabatch_factor = list(lengths), batch_size, megabatch_factor
        self.set_epoch(epoch)  # Lightning calls set_epoch(current_epoch) too: the same value
        if num_replicas > 1 and len(self.lengths) // batch_size < num_replicas:
            raise ValueError(f"{len(self.lengths)} samples make fewer batches of {batch_size} "
                             f"than the {num_replicas} ranks")

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch."""
        batches = grouped_batches(self.lengths, self.batch_size, self.seed, self.epoch, self.megabatch_factor)
        usable = len(batches) - len(batches) % self.num_replicas
        return batches[self.rank : usable : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        n = len(self.lengths)
        if n < self.batch_size:
            return n  # one process (__init__ refuses more): the one partial batch
        return (n // self.batch_size) // self.num_replicas * self.batch_size


def padded_tokens(batches: list[list[int]], lengths: Sequence[int]) -> int:
    """Tokens a right-padded batch holds in total (real + padding): sum of max length x batch size."""
    return sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
