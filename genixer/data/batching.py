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

import itertools
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, DistributedSampler

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


class EpochSampler(DistributedSampler):
    """This rank's indices of one epoch, in an order fixed by (seed, epoch); ``skip`` indices are left out of the
    next pass only (a resumed epoch: ``ResumableLoader``). A ``DistributedSampler`` so Lightning keeps it."""

    skip = 0

    def order(self) -> list[int]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return itertools.islice(iter(self.order()), skip, None)


class ShuffledSampler(EpochSampler):
    """One seeded permutation per epoch, rank r taking every W-th index from r (W ranks, equal shares); on one
    process the order of ``DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed + epoch))``."""

    def __init__(self, n: int, seed: int = 0, epoch: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.set_epoch(epoch)

    def order(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        torch.empty((), dtype=torch.int64).random_(generator=generator)   # what that DataLoader draws first (workers' seed)
        order = torch.randperm(len(self.dataset), generator=generator).tolist()
        return order[self.rank : self.num_samples * self.num_replicas : self.num_replicas]


class ResumableLoader(DataLoader):
    """A DataLoader over an ``EpochSampler`` whose state is how far training got into the epoch (``progress()``:
    batches trained). Lightning stores it in every checkpoint and loads it before a resumed epoch's first batch,
    so the epoch goes on from the next batch in the same order (the skipped batches' data is never loaded)."""

    def __init__(self, *args, progress: Callable[[], int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError(f"ResumableLoader needs an EpochSampler, not {type(self.sampler).__name__}")
        self.progress = progress

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": self.progress()}

    def load_state_dict(self, state: dict) -> None:
        if state["epoch"] != self.sampler.epoch:
            raise RuntimeError(f"checkpoint saved in epoch {state['epoch']}, resumed with epoch {self.sampler.epoch}'s data")
        if state["batches"] < len(self):   # a checkpoint at the epoch's end resumes with the next epoch
            self.sampler.skip = state["batches"] * self.batch_size


class LengthGroupedSampler(EpochSampler):
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

    def order(self) -> list[int]:
        return [i for batch in self.batches() for i in batch]

    def __len__(self) -> int:
        n = len(self.lengths)
        if n < self.batch_size:
            return n  # one process (__init__ refuses more): the one partial batch
        return (n // self.batch_size) // self.num_replicas * self.batch_size


def padded_tokens(batches: list[list[int]], lengths: Sequence[int]) -> int:
    """Tokens a right-padded batch holds in total (real + padding): sum of max length x batch size."""
    return sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
