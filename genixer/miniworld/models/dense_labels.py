"""Per-patch labels from COCO instances, for pretraining a vision tower on the mini world.

Each patch of the padded, resized model input gets the colour / shape / size of the object
under its centre (0 = background) and that object's box in the square input frame.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from genixer.backbones.codec import ImageTransform
from genixer.data.images import load_rgb
from genixer.data.sources.files import field, read_json


class DenseLabels:
    """Reads an instances JSON with ``attributes`` {color, size}; vocabularies from the data."""

    def __init__(self, instances: str, image_root: str) -> None:
        data = read_json(instances)
        self.image_root = Path(image_root)
        self.images = field(data, "images", instances)
        self.shapes = [c["name"] for c in sorted(field(data, "categories", instances), key=lambda c: c["id"])]
        shape_of = {c["id"]: c["name"] for c in data["categories"]}
        self.objects = defaultdict(list)
        for ann in field(data, "annotations", instances):
            attrs = field(ann, "attributes", f"{instances}: annotation {ann.get('id')}")
            self.objects[ann["image_id"]].append((shape_of[ann["category_id"]], attrs["color"], attrs["size"], ann["bbox"]))
        objs = [o for objs in self.objects.values() for o in objs]
        self.colors = sorted({o[1] for o in objs})
        self.sizes = sorted({o[2] for o in objs})

    def vocab(self) -> dict[str, list[str]]:
        return {"color": self.colors, "shape": self.shapes, "size": self.sizes}


class DenseLabelDataset(Dataset):
    def __init__(self, labels: DenseLabels, transform: ImageTransform, input_size: int, patch_size: int) -> None:
        self.labels, self.transform = labels, transform
        self.input_size, self.grid = input_size, input_size // patch_size

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
        image = load_rgb(self.labels.image_root / info["file_name"])
        return {"pixel_values": self.transform(image), "box": box.flatten(0, 1), **{k: v.flatten() for k, v in cls.items()}}


class DenseLabelDataModule(L.LightningDataModule):
    def __init__(self, instances: str, image_root: str, batch_size: int, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.instances, self.image_root = instances, image_root
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.transform: ImageTransform | None = None  # attached by the pipeline
        self.input_size = self.patch_size = None
        self._labels = None

    @property
    def labels(self) -> DenseLabels:
        if self._labels is None:
            self._labels = DenseLabels(self.instances, self.image_root)
        return self._labels

    def train_dataloader(self) -> DataLoader:
        dataset = DenseLabelDataset(self.labels, self.transform, self.input_size, self.patch_size)
        return DataLoader(
            dataset, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
            drop_last=len(dataset) >= self.batch_size, pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(self.seed),
        )
