"""The generation LightningModule: a generator checkpoint decoding prompt batches (predict only)."""
from __future__ import annotations

import lightning as L
import torch
from transformers import LogitsProcessorList

from genixer.backbones.codec import Codec
from genixer.backbones.protocol import Backbone
from genixer.generation.decoding import decode_static
from genixer.generation.sampling import PerSampleSampler
from genixer.generation.settings import Decoding


class GenerationModule(L.LightningModule):
    """``backbone`` and its ``codec`` (built once by the pipeline, shared with the prompt dataset).

    The model is built late (``configure_model``): once per process, on its device.
    """

    def __init__(self, backbone: Backbone, codec: Codec, decoding: Decoding) -> None:
        super().__init__()
        self.backbone, self.codec, self.decoding = backbone, codec, decoding
        self.model = None

    def configure_model(self) -> None:
        if self.model is None:
            self.model = self.backbone.build(self.codec).eval().requires_grad_(False)

    @torch.no_grad()
    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        """Generate for the images that loaded; pass error rows through unchanged."""
        rows = list(batch["errors"])
        if batch["meta"]:
            new = self.generate(batch).cpu()
            for meta, ids in zip(batch["meta"], new):
                rows.append({**meta, "text": self.codec.decode(ids),
                             "new_tokens": int((ids != self.codec.tokenizer.pad_token_id).sum())})
        return rows

    def generate(self, batch: dict) -> torch.Tensor:
        """New token ids per row: HF ``generate`` (dynamic cache) or our static-cache loop."""
        ids, mask = batch["input_ids"], batch["attention_mask"]
        pixels = batch["pixel_values"].to(next(self.model.parameters()).dtype)
        pad, eos = self.codec.tokenizer.pad_token_id, self.codec.tokenizer.eos_token_id
        sampler = self.sampler(batch) if self.decoding.do_sample else None
        kwargs = self.decoding.kwargs
        if self.decoding.cache == "static":
            return decode_static(self.model, ids, mask, pixels, kwargs["max_new_tokens"], eos, pad,
                                 kwargs.get("min_new_tokens", 0), sampler)
        processors = {"logits_processor": LogitsProcessorList([sampler])} if sampler else {}
        out = self.model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, pad_token_id=pad,
                                  eos_token_id=eos, do_sample=False, **kwargs, **processors)
        return out[:, ids.shape[1]:]

    def sampler(self, batch: dict) -> PerSampleSampler:
        """Sampling, seeded per sample: greedy decoding over warped logits plus the sample's own noise."""
        return PerSampleSampler([m["seed"] for m in batch["meta"]], batch["input_ids"].shape[1], **self.decoding.sampling)
