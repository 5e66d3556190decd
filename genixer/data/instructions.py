"""Generator-training data: mixture annotations -> (image, instruction, target) tensors."""
from __future__ import annotations

import functools
import random
from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from genixer.backbones.codec import IGNORE_INDEX, Codec
from genixer.data.batching import MEGABATCH_FACTOR, LengthGroupedSampler, ResumableLoader, ShuffledSampler
from genixer.data.image_table import ImageTable
from genixer.data.images import load_rgb
from genixer.data.mixture import Mixture
from genixer.data.packing import PackedCollator, PackedRows, pack_rows
from genixer.tasks.base import Task


class InstructionDataset(Dataset):
    """Item i renders annotation i with a template chosen from (seed, epoch, i) only."""

    def __init__(self, items: list[tuple[str, dict]], tasks: dict[str, Task], codec: Codec, seed: int, epoch: int = 0,
                 images: ImageTable | None = None):
        self.items, self.tasks, self.codec = items, tasks, codec
        self.seed, self.epoch, self.images = seed, epoch, images   # images: preprocessed once (image_table)

    def __len__(self) -> int:
        return len(self.items)

    def render(self, i: int) -> list[tuple[str, str]]:
        """(human, gpt) turns of item i: a generator's (instruction, target), or a conversation's own turns."""
        name, ann = self.items[i]
        return self.tasks[name].turns(ann, f"{self.seed}:{self.epoch}:{i}")

    def encoded_turns(self, i: int) -> list[tuple[str, str]]:
        """Item i's turns as the codec encodes them: the image placeholder opens the first human message."""
        (human, gpt), *rest = self.render(i)
        return [(self.codec.human_message(human), gpt), *rest]

    def __getitem__(self, i: int) -> dict:
        input_ids, labels = self.codec.encode_train(self.encoded_turns(i))
        path = self.items[i][1]["image"]
        pixel_values = self.images[path] if self.images is not None else self.codec.image(load_rgb(path))
        return {"input_ids": input_ids, "labels": labels, "pixel_values": pixel_values}

    def lengths(self, chunk: int = 1024) -> list[int]:
        """Each item's ``len(input_ids)`` (text tokens + ``num_image_tokens``), without loading an image.

        Tokenizes the rendered conversation as ``encode_train`` does, in chunks and without offsets.
        """
        codec = self.codec
        texts = [codec.conversation.render(self.encoded_turns(i))[0] for i in range(len(self))]
        lengths = []
        for start in range(0, len(texts), chunk):
            ids = codec.tokenizer(texts[start : start + chunk], add_special_tokens=True)["input_ids"]
            lengths += [min(len(x) - 1 + codec.num_image_tokens, codec.max_length) for x in ids]  # <image> -> n ids
        return lengths


def pad_right(seqs: list[torch.Tensor], value: int) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)


class TrainCollator:
    """Right-pads ids (pad id) and labels (-100); attention mask marks real tokens."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        lengths = torch.tensor([len(b["input_ids"]) for b in batch])
        ids = pad_right([b["input_ids"] for b in batch], self.pad_id)
        return {
            "input_ids": ids,
            "labels": pad_right([b["labels"] for b in batch], IGNORE_INDEX),
            "attention_mask": (torch.arange(ids.shape[1])[None] < lengths[:, None]).long(),
            "pixel_values": torch.stack([b["pixel_values"] for b in batch]),
        }


def instruction_texts(mixture: Mixture, seed: int) -> Iterator[str]:
    """Every text a generator trained on ``mixture`` reads or writes (what a tiny tokenizer learns from)."""
    for task in mixture.tasks.values():
        yield from task.corpus()
    dataset = InstructionDataset(mixture.items(), mixture.tasks, codec=None, seed=seed)
    for i in range(len(dataset)):
        for turn in dataset.render(i):
            yield from turn


class InstructionDataModule(L.LightningDataModule):
    """A mixture's annotations rendered by their tasks and encoded by the generator's ``codec``.

    ``group_by_length``: batches of similar token length (genixer.data.batching), built per epoch
    from the epoch's rendered texts; each DDP rank gets its own whole batches. Off: one seeded permutation
    per epoch, split across ranks. Either way the loader resumes mid-epoch from a checkpoint, in the same
    order (``ResumableLoader``: ``ckpt_path=last``).
    ``packing``: each epoch's samples packed into rows of up to ``codec.max_length`` tokens, no sample attending
    another (genixer.data.packing); ``batch_size`` then counts rows, and ranks and resume work on whole rows.
    Rows are all nearly full, so it replaces ``group_by_length`` (both set is an error). Validation stays unpacked.
    ``image_table``: every distinct image transformed once, before the first epoch (genixer.data.image_table:
    for small images over many epochs).
    ``val_fraction``: that share of the mixture's images (seeded) is held out, with every annotation of them,
    for a validation loss (``val/loss``) the trainer computes as configured (``val_check_interval``).
    """

    def __init__(self, mixture: Mixture, codec: Codec, batch_size: int, num_workers: int = 0, seed: int = 0,
                 group_by_length: bool = False, megabatch_factor: int = MEGABATCH_FACTOR, image_table: bool = False,
                 val_fraction: float = 0.0, packing: bool = False) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"data.val_fraction={val_fraction}: a share of the images in [0, 1)")
        if packing and group_by_length:
            raise ValueError("data.packing and data.group_by_length both set: packed rows are all nearly full, "
                             "so there is no padding left to group away; choose one")
        self.mixture, self.codec = mixture, codec
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.group_by_length, self.megabatch_factor = group_by_length, megabatch_factor
        self.image_table, self.images = image_table, None
        self.val_fraction, self.packing = val_fraction, packing
        if val_fraction:   # Lightning validates only a data module whose val_dataloader is overridden
            self.val_dataloader = self.validation_loader

    def image_rows(self) -> ImageTable | None:
        """With ``image_table``: every image of the mixture (train and validation), transformed once."""
        if self.image_table and self.images is None:
            self.images = ImageTable.build([ann["image"] for _, ann in self.mixture.items()], self.codec.image,
                                           self.num_workers)
        return self.images

    @functools.cached_property
    def splits(self) -> tuple[list[tuple[str, dict]], list[tuple[str, dict]]]:
        """(train items, validation items), drawn once: the validation images are ``val_fraction`` of the distinct
        images, drawn by seed, so no validation image is ever trained on."""
        items = self.mixture.items()
        if not self.val_fraction:
            return items, []
        images = sorted({ann["image"] for _, ann in items})
        held = set(random.Random(f"{self.seed}:val").sample(images, max(1, round(self.val_fraction * len(images)))))
        return [it for it in items if it[1]["image"] not in held], [it for it in items if it[1]["image"] in held]

    def validation_loader(self) -> DataLoader:
        """The held-out images' items, templates fixed (epoch 0), in mixture order."""
        dataset = InstructionDataset(self.splits[1], self.mixture.tasks, self.codec, self.seed, epoch=0,
                                     images=self.image_rows())
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=TrainCollator(self.codec.tokenizer.pad_token_id))

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer else 0
        dataset = InstructionDataset(self.splits[0], self.mixture.tasks, self.codec, self.seed, epoch, self.image_rows())
        ranks = {"num_replicas": self.trainer.world_size, "rank": self.trainer.global_rank} if self.trainer else {}
        collate = TrainCollator(self.codec.tokenizer.pad_token_id)
        if self.packing:   # the same rows on every rank; the sampler below then deals out whole rows
            rows = pack_rows(dataset.lengths(), self.codec.max_length, self.seed, epoch)
            dataset = PackedRows(dataset, rows, self.codec.max_length)
            collate = PackedCollator(self.codec.tokenizer.pad_token_id)
        if self.group_by_length:
            sampler = LengthGroupedSampler(dataset.lengths(), self.batch_size, self.seed, epoch,
                                           megabatch_factor=self.megabatch_factor, **ranks)
            drop_last = False   # the sampler yields whole batches
        else:
            sampler = ShuffledSampler(len(dataset), self.seed, epoch, **ranks)
            drop_last = sampler.num_samples >= self.batch_size
        return ResumableLoader(dataset, batch_size=self.batch_size, sampler=sampler, drop_last=drop_last,
                               num_workers=self.num_workers, collate_fn=collate, pin_memory=torch.cuda.is_available(),
                               progress=self.batches_trained)

    def batches_trained(self) -> int:
        """Batches of the current epoch trained so far (what a checkpoint's resume skips)."""
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed if self.trainer else 0
