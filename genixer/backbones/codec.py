"""Codec: the text and image interface of a generator, saved with its checkpoint.

It turns (image, instruction, target) into model tensors for training, prompts into
tensors for generation, and generated ids back into text. Label masking follows
docs/original.md §3: only assistant replies and the ``</s>`` closing each one are supervised.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, PreTrainedTokenizerBase

from genixer.backbones.conversation import FILE_NAME as CONVERSATION_FILE
from genixer.backbones.conversation import Conversation
from genixer.data.images import pad_to_square

IGNORE_INDEX = -100
CODEC_FILE = "codec.json"  # image-token layout, saved beside the tokenizer
LAYOUT_KEYS = ("image_token", "image_prefix", "image_suffix", "image_separator", "max_length")


@dataclass
class ImageTransform:
    """Pad to square (LLaVA-1.5 ``image_aspect_ratio=pad``), then the HF image processor."""

    processor: object  # an HF image processor (CLIPImageProcessor for LLaVA)
    pad_color: tuple[int, int, int] | None = None  # None: the processor's mean colour (LLaVA-1.5)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        colour = self.pad_color or tuple(int(x * 255) for x in self.processor.image_mean)
        square = pad_to_square(image.convert("RGB"), tuple(colour))
        return self.processor(images=square, return_tensors="pt")["pixel_values"][0]


@dataclass
class Codec:
    """``image_prefix + image_token + image_suffix + separator + instruction`` is the first human
    message: LLaVA-1.5 writes ``<image>\n...``; Shikra ``<im_start><im_patch><im_end> ...``.
    The image token is expanded to ``num_image_tokens`` ids that the model fills with features.
    """

    tokenizer: PreTrainedTokenizerBase
    image: ImageTransform
    conversation: Conversation
    num_image_tokens: int
    image_token: str = "<image>"
    image_prefix: str = ""
    image_suffix: str = ""
    image_separator: str = "\n"
    max_length: int = 2048

    @property
    def image_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.image_token)

    # text ---------------------------------------------------------------------------
    def human_message(self, instruction: str) -> str:
        return f"{self.image_prefix}{self.image_token}{self.image_suffix}{self.image_separator}{instruction}"

    def encode_train(self, turns: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and labels for a conversation; the first human turn carries the image."""
        text, spans = self.conversation.render(turns)
        enc = self.tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
        labels = [
            tok if any(end > a and start < b for a, b in spans) else IGNORE_INDEX
            for tok, (start, end) in zip(enc["input_ids"], enc["offset_mapping"])
        ]
        ids, labels = self._expand_image(enc["input_ids"], labels)
        if len(ids) > self.max_length:  # once per process and max_length (Python's default warning filter)
            warnings.warn(f"training samples longer than max_length={self.max_length} tokens are cut there, and their "
                          "ends are not trained on: raise backbone.max_length", stacklevel=2)
        return torch.tensor(ids[: self.max_length]), torch.tensor(labels[: self.max_length])

    def encode_prompt(self, instruction: str, history: list[tuple[str, str]] = ()) -> torch.Tensor:
        text = self.conversation.prompt(list(history), self.human_message(instruction))
        ids, _ = self._expand_image(self.tokenizer(text)["input_ids"], None)
        return torch.tensor(ids)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Generated ids -> text, cut at the first EOS (``</s>``), stripped."""
        ids = [int(i) for i in ids]
        eos = self.tokenizer.eos_token_id
        if eos in ids:
            ids = ids[: ids.index(eos)]
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def _expand_image(self, ids: list[int], labels: list[int] | None):
        """Each image placeholder becomes ``num_image_tokens`` ids (never supervised)."""
        image_id, n = self.image_token_id, self.num_image_tokens
        if ids.count(image_id) != 1:
            raise ValueError(f"expected exactly one {self.image_token} in the prompt, got {ids.count(image_id)}")
        k = ids.index(image_id)
        ids = ids[:k] + [image_id] * n + ids[k + 1 :]
        if labels is not None:
            labels = labels[:k] + [IGNORE_INDEX] * n + labels[k + 1 :]
        return ids, labels

    # persistence ------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        self.tokenizer.save_pretrained(directory)
        self.image.processor.save_pretrained(directory)
        self.conversation.save(directory)
        layout = {k: getattr(self, k) for k in LAYOUT_KEYS}
        Path(directory, CODEC_FILE).write_text(json.dumps({**layout, "pad_color": self.image.pad_color}, indent=2))

    @classmethod
    def load(
        cls, directory: str | Path, num_image_tokens: int, conversation: Conversation | None = None, **kwargs
    ) -> "Codec":
        """Load from a checkpoint dir; its saved conversation template wins over ``conversation``."""
        saved = Path(directory, CONVERSATION_FILE)
        conversation = Conversation.load(directory) if saved.exists() else conversation
        if conversation is None:
            raise FileNotFoundError(f"{saved} is missing and no conversation template was configured")
        # A llava-hf dir has no codec.json: the LLaVA-1.5 layout (defaults) applies.
        layout = json.loads(Path(directory, CODEC_FILE).read_text()) if Path(directory, CODEC_FILE).exists() else {}
        pad_color = layout.pop("pad_color", None)
        return cls(
            tokenizer=AutoTokenizer.from_pretrained(directory),
            image=ImageTransform(AutoImageProcessor.from_pretrained(directory), pad_color and tuple(pad_color)),
            conversation=conversation,
            num_image_tokens=num_image_tokens,
            **{**layout, **kwargs},
        )
