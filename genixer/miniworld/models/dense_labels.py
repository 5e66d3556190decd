"""Per-patch labels from COCO instances, for pretraining a vision tower on the mini world.

Each patch of the padded, resized model input gets the colour / shape / size of the object
under its centre (0 = background) and that object's box in the square input frame; with a
``background`` head, each patch outside every object also gets the image's background
("textured light grey", redrawn from the world's seed; 0 = an object is there), which the
instances file does not record and captions name.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from genixer.backbones.codec import Codec, ImageTransform
from genixer.data.images import load_rgb
from genixer.data.sources.coco import load_coco
from genixer.data.sources.files import AnnotationError, field
from genixer.miniworld.oracle import Oracle, world_seed
from genixer.miniworld.scene import BACKGROUNDS, COLORS, SHAPES, SIZES


def world_vocab(backgrounds: bool = False) -> dict[str, list[str]]:
    """The mini world's label names per attribute head (shapes in category-id order), and the background
    phrases when ``backgrounds``."""
    vocab = {"color": sorted(COLORS), "shape": list(SHAPES), "size": sorted(SIZES)}
    return {**vocab, "background": list(BACKGROUNDS)} if backgrounds else vocab


class DenseLabels:
    """Reads an instances JSON with ``attributes`` {color, size}; every label must be in ``vocab``. A
    ``background`` head needs ``world_file`` (the world's ``world.json``: its seed redraws the backgrounds)."""

    def __init__(self, instances: str, image_root: str, vocab: Mapping[str, Sequence[str]],
                 world_file: str | None = None) -> None:
        coco = load_coco(instances)
        self.backgrounds = list(vocab.get("background", ()))
        if self.backgrounds and world_file is None:
            raise ValueError("a background head needs world_file (world.json: its seed redraws each image's background)")
        self.oracle = Oracle.from_coco(coco, world_seed(world_file)) if self.backgrounds else None
        self.image_root = Path(image_root)
        self.images = list(coco.imgs.values())
        self.colors, self.shapes, self.sizes = (list(vocab[k]) for k in ("color", "shape", "size"))
        self.objects = defaultdict(list)
        for ann in coco.anns.values():  # file order (later objects win a patch they share)
            attrs = field(ann, "attributes", f"{instances}: annotation {ann['id']}")
            obj = (coco.cats[ann["category_id"]]["name"], attrs["color"], attrs["size"], ann["bbox"])
            for kind, names, value in zip(("shape", "color", "size"), (self.shapes, self.colors, self.sizes), obj):
                if value not in names:
                    raise AnnotationError(f"{instances}: annotation {ann['id']}: {kind} {value!r} is not in the vocabulary {names}")
            self.objects[ann["image_id"]].append(obj)


class DenseLabelDataset(Dataset):
    def __init__(self, labels: DenseLabels, transform: ImageTransform, input_size: int, grid: int) -> None:
        self.labels, self.transform = labels, transform
        self.input_size, self.grid = input_size, grid

    def __len__(self) -> int:
        return len(self.labels.images)

    def __getitem__(self, i: int) -> dict:
        info = self.labels.images[i]
        w, h = info["width"], info["height"]
        side = max(w, h)
        ox, oy = (side - w) // 2, (side - h) // 2
        g = self.grid
        centres = (torch.arange(g) + 0.5) * side / g  # patch centres in the padded square
        cls = {k: torch.zeros(g, g, dtype=torch.long) for k in ("color", "shape", "size")}
        box = torch.zeros(g, g, 4)
        for shape, color, size, (x, y, bw, bh) in self.labels.objects[info["id"]]:
            x1, y1 = x + ox, y + oy
            inside_x = (centres >= x1) & (centres <= x1 + bw)
            inside_y = (centres >= y1) & (centres <= y1 + bh)
            mask = inside_y[:, None] & inside_x[None, :]
            cls["color"][mask] = self.labels.colors.index(color) + 1
            cls["shape"][mask] = self.labels.shapes.index(shape) + 1
            cls["size"][mask] = self.labels.sizes.index(size) + 1
            box[mask] = torch.tensor([x1, y1, x1 + bw, y1 + bh]) / side
        if self.labels.backgrounds:  # on patches outside every object (the last head's 0: an object is there)
            kind = self.labels.backgrounds.index(self.labels.oracle.background(info["id"])) + 1
            cls["background"] = torch.where(cls["shape"] > 0, 0, kind)
        image = load_rgb(self.labels.image_root / info["file_name"])
        return {"pixel_values": self.transform(image), "box": box.flatten(0, 1), **{k: v.flatten() for k, v in cls.items()}}


class DenseLabelDataModule(L.LightningDataModule):
    """Per-patch labels in the vision tower's input frame: the ``codec``'s image transform and patch grid."""

    def __init__(self, instances: str, image_root: str, vocab: Mapping[str, Sequence[str]], codec: Codec,
                 batch_size: int, num_workers: int = 0, seed: int = 0, world_file: str | None = None,
                 val_instances: str | None = None) -> None:
        super().__init__()
        self.instances, self.image_root, self.vocab, self.codec = instances, image_root, vocab, codec
        self.world_file, self.val_instances = world_file, val_instances
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self._labels = None

    @property
    def labels(self) -> DenseLabels:
        if self._labels is None:
            self._labels = DenseLabels(self.instances, self.image_root, self.vocab, self.world_file)
        return self._labels

    def dataset(self, labels: DenseLabels) -> DenseLabelDataset:
        crop = self.codec.image.processor.crop_size["height"]
        return DenseLabelDataset(labels, self.codec.image, crop, math.isqrt(self.codec.num_image_tokens))

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset(self.labels)
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
            drop_last=len(dataset) >= self.batch_size, pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self) -> DataLoader | list:
        """``val_instances``' images (the world's val split), in file order; none without them."""
        if self.val_instances is None:
            return []
        labels = DenseLabels(self.val_instances, self.image_root, self.vocab, self.world_file)
        return DataLoader(self.dataset(labels), batch_size=self.batch_size, num_workers=self.num_workers,
                          pin_memory=torch.cuda.is_available())
