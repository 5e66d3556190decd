"""Vision-tower pretraining on dense per-patch labels (the mini world's stage 1)."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from genixer.backbones.codec import Codec
from genixer.backbones.llava import VISION_DIR, TinyLlava
from genixer.training import optim


class VisionPretrainModule(L.LightningModule):
    """Heads on the penultimate-layer patch features (what LLaVA reads) predict attributes + boxes.

    ``vocab``: the label names of each attribute head (``color``, ``shape``, ``size``; index 0 of a
    head is the background); the data module encodes labels with the same lists.
    """

    def __init__(self, backbone: TinyLlava, codec: Codec, vocab: Mapping[str, Sequence[str]], optimizer: Callable,
                 scheduler: Callable | None = None, box_weight: float = 5.0) -> None:
        super().__init__()
        self.backbone, self.codec = backbone, codec
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self.optimizer, self.scheduler, self.box_weight = optimizer, scheduler, box_weight
        self.tower = None

    def export(self, directory: str | Path, dtype: str | None = None) -> None:
        """The tower as a CLIPVisionModel dir (``vision_tower/``) that stage 2 starts from."""
        tower = self.tower.to(getattr(torch, dtype)) if dtype else self.tower
        tower.save_pretrained(Path(directory, VISION_DIR))
        self.codec.image.processor.save_pretrained(Path(directory, VISION_DIR))
        Path(directory, "vocab.json").write_text(json.dumps(self.vocab, indent=1))

    def configure_model(self) -> None:
        if self.tower is not None:
            return
        self.tower = self.backbone.build_vision()
        hidden = self.tower.config.hidden_size
        self.heads = nn.ModuleDict({k: nn.Linear(hidden, len(v) + 1) for k, v in self.vocab.items()})
        self.box_head = nn.Linear(hidden, 4)

    def features(self, batch: dict) -> torch.Tensor:
        """Per-patch features: the penultimate layer (what LLaVA reads), CLS dropped."""
        return self.tower(pixel_values=batch["pixel_values"], output_hidden_states=True).hidden_states[-2][:, 1:]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        feats = self.features(batch)
        losses = {k: F.cross_entropy(head(feats).flatten(0, 1), batch[k].flatten()) for k, head in self.heads.items()}
        fg = batch["shape"] > 0
        box = self.box_head(feats).sigmoid()
        losses["box"] = self.box_weight * F.l1_loss(box[fg], batch["box"][fg]) if fg.any() else box.sum() * 0
        loss = sum(losses.values())
        n = batch["pixel_values"].shape[0]
        for k, v in losses.items():
            self.log(f"train/{k}", v, batch_size=n)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        acc = (self.heads["shape"](feats).argmax(-1) == batch["shape"])[fg].float().mean()
        self.log("train/shape_acc", acc, prog_bar=True, batch_size=n)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """On images the tower never trains on: each attribute head's accuracy on the patches inside an object,
        and the box head's mean L1 error there (a fraction of the square input's side)."""
        feats = self.features(batch)
        fg = batch["shape"] > 0
        for k in ("color", "shape", "size"):
            acc = (self.heads[k](feats).argmax(-1) == batch[k])[fg].float().mean()
            self.log(f"val/{k}_acc", acc, batch_size=int(fg.sum()), sync_dist=True)
        l1 = (self.box_head(feats).sigmoid()[fg] - batch["box"][fg]).abs().mean()
        self.log("val/box_l1", l1, batch_size=int(fg.sum()), sync_dist=True)

    def configure_optimizers(self):
        return optim.configure(self, self.optimizer, self.scheduler)
