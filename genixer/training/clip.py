"""Contrastive pretraining of a small open_clip CLIP (the mini world's REC crop scorer)."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import lightning as L
import open_clip
import torch
from open_clip.loss import ClipLoss
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from torch.nn import functional as F

from genixer.filtering.clip import save_open_clip
from genixer.training import optim


class MultiPositiveClipLoss(ClipLoss):
    """open_clip's symmetric InfoNCE where an image may match several texts and a text several images.

    ``positives`` [images, texts] spreads each target evenly over the matches (the same phrase
    or a compatible one occurs many times per batch: not a negative). Image rows with no match
    (hard negatives) only compete for the texts. Without ``positives`` this is ``ClipLoss``.
    """

    def forward(self, image_features, text_features, logit_scale, positives: torch.Tensor | None = None):
        if positives is None:
            return super().forward(image_features, text_features, logit_scale)
        per_image, per_text = self.get_logits(image_features, text_features, logit_scale)
        pos = positives.float()
        rows = pos.sum(1) > 0
        image_to_text = F.cross_entropy(per_image[rows].float(), pos[rows] / pos[rows].sum(1, keepdim=True))
        text_to_image = F.cross_entropy(per_text.float(), pos.T / pos.T.sum(1, keepdim=True))
        return (image_to_text + text_to_image) / 2


class ClipPretrainModule(L.LightningModule):
    """``open_clip.CLIP(**model_cfg)`` trained on the datamodule's pairs; exported with ``save_open_clip``.

    ``preprocess_cfg`` (open_clip ``PreprocessCfg`` fields) is saved with the weights, so the
    filter preprocesses crops exactly as training did.
    """

    def __init__(self, model_cfg: dict, optimizer: Callable, scheduler: Callable | None = None,
                 preprocess_cfg: dict | None = None, weight_decay: float = 0.1, max_logit_scale: float = 100.0) -> None:
        super().__init__()
        self.model_cfg, self.preprocess_cfg = dict(model_cfg), dict(preprocess_cfg or {})
        self.optimizer, self.scheduler, self.weight_decay = optimizer, scheduler, weight_decay
        self.max_log_scale = math.log(max_logit_scale)
        self.loss = MultiPositiveClipLoss()
        self.model = None

    def image_transform(self) -> Callable:
        """open_clip's eval transform, resolved as the crop scorer resolves it (the tower's size wins)."""
        merged = merge_preprocess_dict(PreprocessCfg(), {**self.preprocess_cfg, "size": self.model_cfg["vision_cfg"]["image_size"]})
        return image_transform_v2(PreprocessCfg(**merged), is_train=False)

    def tokenizer(self) -> open_clip.SimpleTokenizer:
        return open_clip.SimpleTokenizer(context_length=self.model_cfg["text_cfg"]["context_length"])

    def bind(self, datamodule) -> None:
        datamodule.transform, datamodule.tokenizer = self.image_transform(), self.tokenizer()

    def export(self, directory: str | Path, dtype: str | None = None) -> None:
        model = self.model.to(getattr(torch, dtype)) if dtype else self.model
        save_open_clip(model, self.model_cfg, directory, self.preprocess_cfg)

    def configure_model(self) -> None:
        if self.model is None:
            self.model = open_clip.CLIP(**self.model_cfg)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        image, text, scale = self.model(batch["images"], batch["texts"])
        loss = self.loss(image, text, scale, batch["positives"])
        n = batch["texts"].shape[0]
        with torch.no_grad():  # a paired image's best text is one of its matches
            best = (image[:n] @ text.T).argmax(-1)
            acc = batch["positives"][torch.arange(n, device=best.device), best].float().mean()
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
