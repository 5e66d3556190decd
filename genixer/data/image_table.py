"""Every image of a training set preprocessed once, for small images trained over many epochs.

The image transform (pad to square + the HF processor) costs a few ms per item, more than the rest of an
item together: a tiny model's loader then caps its steps/s. ``ImageTable.build`` transforms each distinct
image once (in ``num_workers`` processes) into one tensor held by the data module; loader workers forked
from it read its rows without copying. Memory: images x 3 x size^2 x 4 bytes (3,000 images at 64 px:
147 MB; at LLaVA-1.5's 336 px, 1.4 MB per image, so large sets keep the per-item transform).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from genixer.data.images import load_rgb

log = logging.getLogger(__name__)


class _Transformed(Dataset):
    def __init__(self, paths: Sequence[str], transform: Callable) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(load_rgb(self.paths[i]))


class ImageTable:
    """path -> its transformed tensor, for a fixed set of paths."""

    def __init__(self, paths: Sequence[str], pixels: torch.Tensor) -> None:
        if len(paths) != len(pixels):
            raise ValueError(f"{len(paths)} paths for {len(pixels)} tensors")
        self.rows, self.pixels = {p: i for i, p in enumerate(paths)}, pixels

    @classmethod
    def build(cls, paths: Sequence[str], transform: Callable, num_workers: int = 0, batch_size: int = 256) -> ImageTable:
        distinct = sorted(set(paths))
        loader = DataLoader(_Transformed(distinct, transform), batch_size=batch_size, num_workers=num_workers)
        table = cls(distinct, torch.cat(list(loader)) if distinct else torch.empty(0))
        log.info("image table: %d images, %.0f MB", len(distinct), table.pixels.nbytes / 2**20)
        return table

    def __contains__(self, path: str) -> bool:
        return path in self.rows

    def __getitem__(self, path: str) -> torch.Tensor:
        row = self.rows.get(path)
        if row is None:
            raise KeyError(f"{path} is not in the image table (built for {len(self.rows)} other images)")
        return self.pixels[row]
