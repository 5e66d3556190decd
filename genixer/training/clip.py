"""Contrastive pretraining of a small open_clip CLIP (the mini world's REC crop scorer)."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from open_clip.loss import ClipLoss
from torch.nn import functional as F

from genixer.backbones.open_clip import ClipCodec, OpenClip
from genixer.training import optim


class MultiPositiveClipLoss(ClipLoss):
    """open_clip's symmetric InfoNCE where an image may match several texts and a text several images.

    ``positives`` [images, texts] spreads each target evenly over the matches (the same phrase
    or a compatible one occurs many times per batch: not a negative). Image rows with no match
    (hard negatives) only compete for the texts, texts with no match (ambiguous phrases) only for
    the images. Without ``positives`` this is ``ClipLoss``.
    """

    def forward(self, image_features, text_features, logit_scale, positives: torch.Tensor | None = None):
        if positives is None:
            return super().forward(image_features, text_features, logit_scale)
        per_image, per_text = self.get_logits(image_features, text_features, logit_scale)
        pos = positives.float()
        rows, cols = pos.sum(1) > 0, pos.sum(0) > 0
        image_to_text = F.cross_entropy(per_image[rows].float(), pos[rows] / pos[rows].sum(1, keepdim=True))
        text_to_image = F.cross_entropy(per_text[cols].float(), pos.T[cols] / pos.T[cols].sum(1, keepdim=True))
        return (image_to_text + text_to_image) / 2


class ClipPretrainModule(L.LightningModule):
    """The ``backbone``'s CLIP (``OpenClip``: built from its model config) trained on the data module's
    pairs; exported as an open_clip checkpoint directory by the backbone."""

    def __init__(self, backbone: OpenClip, codec: ClipCodec, optimizer: Callable, scheduler: Callable | None = None,
                 weight_decay: float = 0.1, max_logit_scale: float = 100.0) -> None:
        super().__init__()
        self.backbone, self.codec = backbone, codec
        self.optimizer, self.scheduler, self.weight_decay = optimizer, scheduler, weight_decay
        self.max_log_scale = math.log(max_logit_scale)
        self.loss = MultiPositiveClipLoss()
        self.model = None

    def export(self, directory: str | Path, dtype: str | None = None) -> None:
        model = self.model.to(getattr(torch, dtype)) if dtype else self.model
        self.backbone.save(model, self.codec, directory)

    def configure_model(self) -> None:
        if self.model is None:
            self.model = self.backbone.build(self.codec)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image, text, scale = self.model(batch["images"], batch["texts"])
        loss = self.loss(image, text, scale, batch["positives"])
        n = batch["texts"].shape[0]
        with torch.no_grad():  # a paired image's best text is one of its matches (images that match some text)
            best = (image[:n] @ text.T).argmax(-1)
            hit = batch["positives"][torch.arange(n, device=best.device), best]
            acc = hit[batch["positives"][:n].any(1)].float().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/acc", acc, prog_bar=True, batch_size=n)
        self.log("train/logit_scale", scale, batch_size=n)
        self.log("train/images", float(batch["images"].shape[0]), batch_size=n)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        with torch.no_grad():  # as open_clip's training loop: temperature at most 1 / max_logit_scale
            self.model.logit_scale.clamp_(0, self.max_log_scale)

    def configure_optimizers(self):
        return optim.configure(self, self.optimizer, self.scheduler, self.weight_decay)
