"""The generator LightningModule: trains Genixer_L / Genixer_S and generates with them."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from transformers import LogitsProcessorList

from genixer.backbones.codec import Codec
from genixer.backbones.llava import parts
from genixer.generation.decoding import decode_static
from genixer.generation.sampling import PerSampleSampler
from genixer.training import optim


class GeneratorModule(L.LightningModule):
    """Wraps a backbone; the model is built late (``configure_model``) for sharded strategies.

    ``trainable`` names the parts that learn (``vision``, ``projector``, ``language``);
    the rest is frozen, as in the LLaVA / Genixer recipes.
    """

    def __init__(
        self,
        backbone,
        codec: Codec | None = None,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        trainable: tuple[str, ...] = ("projector", "language"),
        weight_decay: float = 0.0,
        generation: dict | None = None,
    ) -> None:
        super().__init__()
        self.backbone, self.codec = backbone, codec
        self.optimizer, self.scheduler, self.weight_decay = optimizer, scheduler, weight_decay
        self.trainable = tuple(trainable)
        self.generation = dict(generation or {})
        self.model = None

    def bind(self, datamodule) -> None:
        """Train the codec (tokenizer) on the data when the backbone needs one; share it."""
        if self.codec is None:
            self.codec = self.backbone.codec(datamodule.corpus())
        datamodule.codec = self.codec

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
        if self.optimizer is None:
            raise ValueError("no optimizer configured for training")
        return optim.configure(self, self.optimizer, self.scheduler, self.weight_decay)

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
        """New token ids per row: HF ``generate`` (dynamic cache) or our static-cache loop (``cache: static``)."""
        kwargs = self.decoding(batch)
        cache = kwargs.pop("cache", "dynamic")
        ids, mask = batch["input_ids"], batch["attention_mask"]
        pixels = batch["pixel_values"].to(self.dtype_for_inputs())
        pad, eos = self.codec.tokenizer.pad_token_id, self.codec.tokenizer.eos_token_id
        if cache == "static":
            processors = kwargs.pop("logits_processor", None) or [None]
            kwargs.pop("do_sample", None)
            unknown = set(kwargs) - {"max_new_tokens", "min_new_tokens"}
            if unknown:
                raise ValueError(f"cache=static decodes greedily or with the per-sample sampler; unsupported: {sorted(unknown)}")
            return decode_static(self.model, ids, mask, pixels, kwargs["max_new_tokens"], eos, pad,
                                 kwargs.get("min_new_tokens", 0), processors[0])
        if cache != "dynamic":
            raise ValueError(f"generation.cache must be 'dynamic' (HF generate) or 'static', got {cache!r}")
        out = self.model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, pad_token_id=pad,
                                  eos_token_id=eos, **kwargs)
        return out[:, ids.shape[1]:]

    def decoding(self, batch: dict) -> dict:
        """HF generate kwargs; sampling becomes per-sample seeded (see ``generation.sampling``)."""
        kwargs = dict(self.generation)
        if not kwargs.pop("do_sample", False):
            return kwargs
        sampler = PerSampleSampler([m["seed"] for m in batch["meta"]], batch["input_ids"].shape[1],
                                   kwargs.pop("temperature", 1.0), kwargs.pop("top_p", None), kwargs.pop("top_k", None))
        return {**kwargs, "do_sample": False, "logits_processor": LogitsProcessorList([sampler])}

    def dtype_for_inputs(self) -> torch.dtype:
        return next(self.model.parameters()).dtype
