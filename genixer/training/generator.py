"""The generator LightningModule: trains Genixer_L / Genixer_S (and judges fine-tuned from them)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

from genixer.backbones.codec import Codec
from genixer.backbones.llava import parts
from genixer.backbones.protocol import Backbone
from genixer.training import optim


class GeneratorModule(L.LightningModule):
    """A ``backbone`` and its ``codec`` (built once by the pipeline, shared with the data module).

    The model is built late (``configure_model``) for sharded strategies. ``trainable`` names the
    parts that learn (``vision``, ``projector``, ``language``); the rest is frozen, as in the LLaVA /
    Genixer recipes.
    """

    def __init__(self, backbone: Backbone, codec: Codec, optimizer: Callable, scheduler: Callable | None = None,
                 trainable: tuple[str, ...] = ("projector", "language"), weight_decay: float = 0.0) -> None:
        super().__init__()
        self.backbone, self.codec = backbone, codec
        self.optimizer, self.scheduler, self.weight_decay = optimizer, scheduler, weight_decay
        self.trainable = tuple(trainable)
        self.model = None

    def export(self, directory: str | Path, dtype: str | None = None) -> None:
        """A plain HF checkpoint dir: model (safetensors), tokenizer, processor, template."""
        model = self.model.to(getattr(torch, dtype)) if dtype else self.model
        self.backbone.save(model, self.codec, directory)

    def configure_model(self) -> None:
        if self.model is not None:
            return
        self.model = self.backbone.build(self.codec)
        named = parts(self.model.config)
        unknown = set(self.trainable) - set(named)
        if unknown:
            raise ValueError(f"unknown trainable parts {sorted(unknown)}; choose from {sorted(named)}")
        prefixes = tuple(p for part in self.trainable for p in named[part])
        for name, param in self.model.named_parameters():
            param.requires_grad_(name.startswith(prefixes))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def configure_optimizers(self):
        return optim.configure(self, self.optimizer, self.scheduler, self.weight_decay)
