"""A samples/s progress bar with ETA for predict loops (rank 0 draws it; every rank counts)."""
from __future__ import annotations

import time

from lightning.pytorch.callbacks import Callback
from tqdm.auto import tqdm


class SampleProgress(Callback):
    """Counts samples, not batches: rank 0's bar shows its own samples/s and ETA, plus the job-wide rate.

    Ranks run at about the same pace, so the job's rate is rank 0's times the number of ranks.
    ``rate`` (samples/s over the whole job) is kept for the manifest.
    """

    def __init__(self, desc: str = "generate") -> None:
        self.desc = desc
        self.bar = None
        self.started = 0.0
        self.samples = 0
        self.rate = 0.0

    def on_predict_start(self, trainer, pl_module) -> None:
        total = sum(_rank_samples(loader) for loader in _loaders(trainer))
        self.started, self.samples = time.perf_counter(), 0
        if trainer.is_global_zero:
            self.bar = tqdm(total=total, unit="sample", desc=f"{self.desc} (rank 0 of {trainer.world_size})",
                            dynamic_ncols=True, smoothing=0.1)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        n = len(outputs)  # predict steps return one row per sample (error rows included)
        self.samples += n
        elapsed = time.perf_counter() - self.started
        self.rate = self.samples * trainer.world_size / elapsed if elapsed > 0 else 0.0
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(job=f"{self.rate:.1f} samples/s", refresh=False)

    def on_predict_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _rank_samples(loader) -> int:
    """Samples this rank will see (the distributed sampler's length, not the dataset's)."""
    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None) or loader.sampler
    return len(sampler)


def _loaders(trainer) -> list:
    loaders = trainer.predict_dataloaders
    return list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]
