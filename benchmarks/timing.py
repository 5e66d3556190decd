"""A Lightning callback timing predict loops: end to end (every rank ready -> every rank done) and steady state."""
from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback


class Stopwatch(Callback):
    """``seconds``: from all ranks set up to all ranks done; ``steady_rate``: rank 0's items/s after its first batch."""

    def on_predict_start(self, trainer, pl_module) -> None:
        trainer.strategy.barrier("bench:start")
        self.start = time.perf_counter()
        self.batches = []  # (seconds since start, items) per finished batch on this rank

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.batches.append((time.perf_counter() - self.start, len(outputs)))

    def on_predict_end(self, trainer, pl_module) -> None:
        trainer.strategy.barrier("bench:end")
        self.seconds = time.perf_counter() - self.start

    def first_batch_seconds(self) -> float:
        return self.batches[0][0] if self.batches else 0.0

    def steady_rate(self, world_size: int = 1) -> float | None:
        """Items per second after the first batch (warm-up: kernels, allocator, workers starting), all ranks."""
        if len(self.batches) < 2:
            return None
        items = sum(n for _, n in self.batches[1:])
        return items * world_size / (self.batches[-1][0] - self.batches[0][0])
