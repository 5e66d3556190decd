"""What every backbone declares: its codec, how it builds and saves a model, its image transform, and
the layer class a sharded strategy wraps (FSDP auto-wrap, activation checkpointing)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from torch import nn

from genixer.backbones.codec import Codec, ImageTransform


@runtime_checkable
class Backbone(Protocol):
    def codec(self, corpus: Iterable[str] = ()) -> Codec:
        """Tokenizer + image transform + conversation template; ``corpus``: texts to train a tokenizer on
        (a backbone that loads its tokenizer ignores it)."""

    def image_transform(self) -> ImageTransform:
        """The image preprocessing of the model's vision tower."""

    def build(self, codec: Codec) -> nn.Module:
        """The model, weights loaded or initialised; called late (``configure_model``)."""

    def save(self, model: nn.Module, codec: Codec, directory: str | Path) -> None:
        """A checkpoint directory the ``codec`` and ``build`` of a pretrained backbone read back."""

    @property
    def decoder_layers(self) -> tuple[type[nn.Module], ...]:
        """The repeated block classes (language model, vision tower) to wrap one by one when sharding."""
