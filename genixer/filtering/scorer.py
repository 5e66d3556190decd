"""The scorer contract: what a filter scores, how its inputs load, how a batch scores.

A generation row (``samples.jsonl``, status ok) yields zero or more *items* (``Scorer.items``)
from the typed fields its task wrote: one per ``qa_pairs`` entry for the judge, one per
``regions`` entry for CLIP. Items load and preprocess in DataLoader workers (``Scorer.load``); an
input that cannot be decoded is an error item, one that must not be scored a rejected item, and a
code bug stops the run. The filter module scores batches (``Scorer.score``) and the shard writer
appends one JSON line per item, keyed by the item id (``<sample id>#<k>``), which is what a resume
skips. ``Scorer.summarize`` folds a row's item lines into the row's annotation. Scorers annotate
only; ``selection`` drops.
"""
from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from genixer.data.images import IMAGE_ERRORS


class Scorer(abc.ABC):
    """A filter's scorer; ``name`` (its key under ``filter.scorers``) names its score folder and annotation."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    def items(self, row: dict) -> list[dict]:
        """Items to score from one generation row: dicts with ``id`` (``<row id>#<k>``) and ``row_id``."""

    @abc.abstractmethod
    def load(self, item: dict, image_root: Path) -> dict:
        """Decode and preprocess one item (runs in a worker); raise ``Rejected`` or an image error."""

    @abc.abstractmethod
    def collate(self, loaded: list[dict]) -> dict:
        """Stack successfully loaded items into model inputs."""

    @abc.abstractmethod
    def build(self) -> nn.Module:
        """The scoring model (weights loaded); built late, once per process."""

    @abc.abstractmethod
    def score(self, model: nn.Module, batch: dict, meta: list[dict]) -> list[dict]:
        """One output line per item of ``meta``: ``{"id", "row_id", ...fields}``."""

    @abc.abstractmethod
    def summarize(self, lines: list[dict]) -> dict:
        """A row's annotation from its item lines (in item order)."""

    @abc.abstractmethod
    def config(self) -> dict:
        """What makes scores comparable (model, prompt, ...): stored beside the shards, checked on resume."""

    def flops(self, model: nn.Module, batch: dict) -> float:
        """The forward's FLOPs on ``batch`` (2 x parameters x tokens), for the run's hardware limit; 0: unknown."""
        return 0.0

    def check(self) -> None:
        """Validate the scorer's inputs (files, tokenizer) before any item is loaded; raise with what is wrong."""


class Rejected(Exception):
    """An item that loads but must not be scored (e.g. a crop under the minimum side): a reason, not a crash."""


class ItemDataset(Dataset):
    """Items of one scorer; ``load`` failures become ``{"meta", "status", "reason"}`` rows."""

    def __init__(self, scorer: Scorer, items: list[dict], image_root: str | Path) -> None:
        self.scorer, self.items, self.image_root = scorer, items, Path(image_root)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        meta = {"id": item["id"], "row_id": item["row_id"]}
        try:
            return {"meta": meta, "inputs": self.scorer.load(item, self.image_root)}
        except Rejected as err:
            return {"meta": meta, "status": "rejected", "reason": str(err)}
        except IMAGE_ERRORS as err:  # an undecodable input is an error row; anything else is a bug and stops the run
            return {"meta": meta, "status": "error", "reason": f"image: {type(err).__name__}: {err}"}


class ContiguousShards(DistributedSampler):
    """Rank r of W takes the r-th of W contiguous, near-equal blocks of the items, so the consecutive items of one
    image (its crops, its QA pairs) stay on one rank and it is decoded once (Lightning's sampler deals items out
    in turn). Ranks are read when the sampler is iterated, after the process group formed; a
    ``DistributedSampler`` so Lightning keeps it."""

    def __init__(self, n: int) -> None:
        super().__init__(range(n), num_replicas=1, rank=0, shuffle=False)

    def block(self) -> range:
        world, rank = (dist.get_world_size(), dist.get_rank()) if dist.is_available() and dist.is_initialized() else (1, 0)
        size = -(-len(self.dataset) // world)
        return range(min(rank * size, len(self.dataset)), min((rank + 1) * size, len(self.dataset)))

    def __iter__(self) -> Iterator[int]:
        return iter(self.block())

    def __len__(self) -> int:
        return len(self.block())


class ItemCollator:
    """Splits loaded items from failed ones; the scorer stacks the loaded ones."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def __call__(self, batch: list[dict]) -> dict:
        ok = [b for b in batch if "inputs" in b]
        failed = [{**b["meta"], "status": b["status"], "reason": b["reason"]} for b in batch if "inputs" not in b]
        inputs = self.scorer.collate([b["inputs"] for b in ok]) if ok else None
        return {"meta": [b["meta"] for b in ok], "failed": failed, "inputs": inputs}


def to_device(inputs: dict, device: torch.device, dtype: torch.dtype | None = None) -> dict:
    """Move tensors; floating tensors take ``dtype`` (the model's) when given."""
    out = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, dtype=dtype if dtype is not None and value.is_floating_point() else None)
        out[key] = value
    return out
