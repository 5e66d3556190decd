"""A Lightning callback timing predict loops over all ranks: end to end and steady state."""
from __future__ import annotations

import time

import torch
from lightning.pytorch.callbacks import Callback


class Stopwatch(Callback):
    """``seconds``: from all ranks set up to all ranks done. ``steady_rate``: every rank's items after its
    first batch, summed, over the window from the earliest first-batch end to the latest last-batch end
    (gathered from all ranks, not rank 0's rate times the world size)."""

    def on_predict_start(self, trainer, pl_module) -> None:
        trainer.strategy.barrier("bench:start")
        self.start = time.perf_counter()
        self.batches = []  # (seconds since start, items) per finished batch on this rank

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.batches.append((time.perf_counter() - self.start, len(outputs)))

    def on_predict_end(self, trainer, pl_module) -> None:
        first, last = (self.batches[0][0], self.batches[-1][0]) if self.batches else (0.0, 0.0)
        mine = torch.tensor([first, last, sum(n for _, n in self.batches[1:]), len(self.batches)],
                            dtype=torch.float64, device=pl_module.device)
        # One row per rank: first-batch end, last-batch end, items after the first batch, batches.
        self.ranks = trainer.strategy.all_gather(mine).reshape(-1, 4).tolist()
        trainer.strategy.barrier("bench:end")
        self.seconds = time.perf_counter() - self.start

    def first_batch_seconds(self) -> float:
        """The slowest rank's first batch (warm-up: kernels, allocator, workers starting)."""
        return max(r[0] for r in self.ranks)

    def steady_rate(self) -> float | None:
        """Items per second after the first batch, all ranks together; None if a rank ran under 2 batches."""
        if min(r[3] for r in self.ranks) < 2:
            return None
        items = sum(r[2] for r in self.ranks)
        return items / (max(r[1] for r in self.ranks) - min(r[0] for r in self.ranks))
