"""Fuyu's model inputs for one image and prompt, equal to ``FuyuProcessor``'s, without its padded canvas.

``FuyuProcessor(images=image, text=text)`` (transformers 5.x) shrinks the image to fit the canvas
(``size``, 1080x1920) keeping its aspect (never enlarging), pads it to the whole canvas with
``padding_value``, rescales and normalizes every canvas pixel, then keeps only the crop that covers the
image rounded up to whole 30x30 patches and cuts that into patches (row-major, each patch
``(y, x, channel)``-flattened). Its ids: per patch row ``|SPEAKER|`` per patch and ``|NEWLINE|``, ``<s>``
(the tokenized run less its first token), then the text and ``<0x04>`` (beginning of answer), tokenized
without special tokens.

``FuyuInputs`` runs the same steps on that crop only, in uint8 until the last: the same resize (on
channels-last pixels, as the PIL image holds them: identical and faster), padding only up to the patch
grid, the same patch layout, then the processor's own rescale-and-normalize on the patches; the
image-run ids are tokenized once per grid shape. Outputs are identical (``tests/test_filter_judge.py``),
at a fraction of the work.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as tvF
from transformers import FuyuProcessor
from transformers.models.fuyu.processing_fuyu import BEGINNING_OF_ANSWER_STRING


def pad(pixels: torch.Tensor, height: int, width: int, fill: float, mode: str) -> torch.Tensor:
    """``tvF.pad`` of ``(1, C, h, w)`` pixels on the bottom and right to ``height`` x ``width``, kept channels last."""
    if mode != "constant":
        return tvF.pad(pixels, [0, 0, width - pixels.shape[-1], height - pixels.shape[-2]], fill=fill, padding_mode=mode)
    padded = torch.full((1, height, width, pixels.shape[1]), fill, dtype=pixels.dtype)
    padded[:, : pixels.shape[-2], : pixels.shape[-1]] = pixels.permute(0, 2, 3, 1)
    return padded.permute(0, 3, 1, 2)


class FuyuInputs:
    """``(input_ids, patches)`` of one image and text, as ``processor(images=image, text=text)`` gives them."""

    def __init__(self, processor: FuyuProcessor) -> None:
        self.processor, self.image_processor, self.tokenizer = processor, processor.image_processor, processor.tokenizer
        self.image_run_ids: dict[tuple[int, int], torch.Tensor] = {}  # (patch rows, patch columns) -> ids

    def __call__(self, image, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``image``: a PIL image (or what the image processor takes); returns 1-D ids and ``(patches, 3 * 30 * 30)``."""
        patches, grid = self.patches(image)
        prompt_ids = self.tokenizer(text + BEGINNING_OF_ANSWER_STRING, add_special_tokens=False)["input_ids"]
        return torch.cat([self.image_ids(*grid), torch.tensor(prompt_ids, dtype=torch.long)]), patches

    def patches(self, image) -> tuple[torch.Tensor, tuple[int, int]]:
        """The image's patches and their grid ``(rows, columns)``."""
        ip = self.image_processor
        canvas, patch = ip.size, ip.patch_size
        if isinstance(image, Image.Image) and image.mode == "RGB":  # process_image's values, channels last in memory
            pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
        else:
            pixels = ip.process_image(image, do_convert_rgb=ip.do_convert_rgb)[None]  # (1, C, H, W) uint8
        if ip.do_resize:
            pixels = ip.resize(pixels, canvas, resample=ip.resample)  # a no-op unless larger than the canvas
        _, channels, height, width = pixels.shape
        if height > canvas.height or width > canvas.width:
            raise ValueError(f"{height}x{width} is larger than the {canvas.height}x{canvas.width} canvas (do_resize is off)")
        # The processor's crop of its padded canvas: the image rounded up to whole patches (within the canvas).
        crop_height = min(canvas.height, math.ceil(height / patch.height) * patch.height)
        crop_width = min(canvas.width, math.ceil(width / patch.width) * patch.width)
        if (crop_height, crop_width) != (height, width):
            if not ip.do_pad:
                raise ValueError(f"{height}x{width} is not whole {patch.height}x{patch.width} patches and do_pad is off")
            pixels = pad(pixels, crop_height, crop_width, ip.padding_value, ip.padding_mode)
        rows, columns = crop_height // patch.height, crop_width // patch.width
        # patchify_image's layout: row-major patches, each (y, x, channel)-flattened; still uint8.
        patches = (pixels[0].permute(1, 2, 0).reshape(rows, patch.height, columns, patch.width, channels)
                   .permute(0, 2, 1, 3, 4).reshape(rows * columns, patch.height * patch.width, channels))
        # Rescale and normalize last, on a (patches, C, pixels, 1) view: the processor's own op, per channel.
        mean, std = (tuple(x) if isinstance(x, list) else x for x in (ip.image_mean, ip.image_std))  # as preprocess does
        values = ip.rescale_and_normalize(patches.permute(0, 2, 1)[..., None], ip.do_rescale, ip.rescale_factor,
                                          ip.do_normalize, mean, std)
        return values[..., 0].permute(0, 2, 1).reshape(rows * columns, -1), (rows, columns)

    def image_ids(self, rows: int, columns: int) -> torch.Tensor:
        """The processor's ids of a ``rows`` x ``columns`` patch grid: its tokenized run, less the first token."""
        if (rows, columns) not in self.image_run_ids:
            row = self.processor.image_token * columns + self.processor.image_newline_token
            ids = self.tokenizer(row * rows + "<s>", add_special_tokens=False)["input_ids"]
            self.image_run_ids[rows, columns] = torch.tensor(ids[1:], dtype=torch.long)
        return self.image_run_ids[rows, columns]
