"""CLIP score of box crops: does the crop at a box look like its referring expression?

One item per entry of a row's ``regions`` (the (expression, normalized box) pairs its task wrote:
REC, REG, ...). Workers decode (once for an image's consecutive crops: ``ClipCropScorer.decoded``),
show the model the rounded pixel box and preprocess up to uint8 pixels (``DevicePixels``: scaling and
normalizing run on the device); the view is the one the model was trained with
(``region_view`` of its checkpoint):

* ``crop``: the box cut out (the original's way: neither position nor size relative to the other
  objects survives, so "the small circle on the left" and its twin on the right look the same);
* ``spotlight``: the whole image with everything outside the box dimmed, so position and relative
  size stay visible.

The model scores a batch in fp32 dot products:

* ``raw``: image · text of the projected, *unnormalized* embeddings, the original's score
  (threshold 60 on CLIP ViT-L/14; it scales with the embedding norms, docs/original.md);
* ``cosine`` and ``clipscore`` = 2.5 * max(cosine, 0) (CLIPScore, Hessel et al. 2021): scale-free.

Thresholds live in selection configs. Models come from open_clip: an architecture name plus a
``pretrained`` tag or weights file, or a checkpoint directory written by ``save_open_clip``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from open_clip.transform import image_transform_v2
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import Compose, Normalize, ToTensor

from genixer.backbones.open_clip import CONFIG_FILE, LOCAL_DIR, preprocess_config, region_view
from genixer.data.images import load_rgb
from genixer.filtering.scorer import Rejected, Scorer
from genixer.tasks.boxes import denormalize_box

BOX_TOLERANCE = 1e-6  # float noise only: generated boxes are 3-decimal text
SCORES = ("raw", "clipscore", "cosine", "crop")


def check_box(box: object) -> tuple[float, float, float, float]:
    """A valid normalized xyxy box (clamped within the tolerance); otherwise ``Rejected`` with why."""
    numbers = isinstance(box, (list, tuple)) and len(box) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    if not numbers:
        raise Rejected(f"box is not 4 finite numbers: {box!r}")
    if any(v < -BOX_TOLERANCE or v > 1 + BOX_TOLERANCE for v in box):
        raise Rejected(f"box {list(box)} outside [0, 1]")
    x1, y1, x2, y2 = (min(max(float(v), 0.0), 1.0) for v in box)
    if x1 >= x2 or y1 >= y2:
        raise Rejected(f"degenerate box {list(box)}")
    return x1, y1, x2, y2


def pixel_box(box: object, width: int, height: int, min_side: int) -> tuple[int, int, int, int]:
    """The crop in pixels (rounded, not truncated as the original did); small crops are ``Rejected``."""
    x1, y1, x2, y2 = denormalize_box(check_box(box), width, height)
    if x2 - x1 < min_side or y2 - y1 < min_side:
        raise Rejected(f"crop {x2 - x1}x{y2 - y1} px under min side {min_side}")
    return x1, y1, x2, y2


SPOTLIGHT_DIM = 0.35  # brightness left outside the box


def spotlight(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The whole image, dimmed outside the pixel ``box``."""
    out = image.point(lambda v: int(v * SPOTLIGHT_DIM))
    out.paste(image.crop(box), box[:2])
    return out


def region_image(image: Image.Image, box: tuple[int, int, int, int], view: str) -> Image.Image:
    """What the model sees of a pixel box: the crop, or the spotlighted whole image."""
    return image.crop(box) if view == "crop" else spotlight(image, box)


class DevicePixels:
    """open_clip's eval transform split at its ``ToTensor``: workers run the PIL steps (resize, crop, RGB) and hand
    over uint8 CHW pixels, a quarter of float32's bytes through shared and pinned memory; ``ToTensor``'s /255 and
    ``Normalize`` run on the device in float32, the same operations on the same values as the whole transform on the
    host. Refuses a transform not ending ``ToTensor``, ``Normalize``."""

    def __init__(self, transform: Compose) -> None:
        steps = list(getattr(transform, "transforms", []))
        if len(steps) < 2 or not isinstance(steps[-2], ToTensor) or not isinstance(steps[-1], Normalize):
            raise ValueError(f"the CLIP transform must end ToTensor, Normalize to move them to the device: {transform}")
        self.pil_steps, normalize = Compose(steps[:-2]), steps[-1]
        self.mean, self.std = (torch.tensor(v, dtype=torch.float32).view(-1, 1, 1) for v in (normalize.mean, normalize.std))

    def uint8(self, image: Image.Image) -> torch.Tensor:
        """The worker's half: PIL steps, then an RGB image's bytes as a (3, H, W) uint8 tensor."""
        image = self.pil_steps(image)
        if image.mode != "RGB":
            raise ValueError(f"the CLIP transform's PIL steps gave a {image.mode} image, not RGB")
        return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()

    def normalize(self, pixels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The device's half on a (B, 3, H, W) uint8 batch, in float32, then cast to the model's ``dtype``."""
        mean, std = self.mean.to(pixels.device), self.std.to(pixels.device)
        return pixels.to(torch.float32).div(255).sub(mean).div(std).to(dtype)


class ClipCropScorer(Scorer):
    """Scores (expression, box crop) pairs with an open_clip model.

    ``model`` is an open_clip architecture name with ``pretrained`` a tag or a weights file (None:
    random weights, for benchmarks); ``checkpoint`` is a directory from ``save_open_clip`` instead.
    The original's HF ``clip-vit-large-patch14`` is ``ViT-L-14-quickgelu`` with ``pretrained="openai"``.
    Crops with a side under ``min_side`` pixels are rejected. Each image decodes once for its consecutive crops.
    """

    def __init__(self, model: str = "ViT-L-14", pretrained: str | None = None, checkpoint: str | None = None,
                 min_side: int = 50, name: str = "clip") -> None:
        super().__init__(name)
        if checkpoint and pretrained:
            raise ValueError("a checkpoint directory carries its own weights: leave pretrained unset")
        if min_side < 1:
            raise ValueError(f"min_side must be at least 1 px, got {min_side}")
        if checkpoint and not Path(checkpoint, CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{checkpoint}: not an open_clip checkpoint dir (no {CONFIG_FILE})")
        self.min_side, self.pretrained = min_side, pretrained
        self.model_id = f"{LOCAL_DIR}{checkpoint}" if checkpoint else model
        # Resolved here, not in workers, so a bad model id fails the run instead of every item.
        self.transform = image_transform_v2(preprocess_config(self.model_id, pretrained), is_train=False)
        self.pixels = DevicePixels(self.transform)
        self.tokenizer = open_clip.get_tokenizer(self.model_id)
        self.view = region_view(self.model_id)
        self.last_decoded: tuple[tuple, Image.Image] | None = None  # (file key, image): see ``decoded``

    def items(self, row: dict) -> list[dict]:
        if row.get("status") != "ok":
            return []
        return [{"id": f"{row['id']}#{k}", "row_id": row["id"], "image": row["image"], "box": region["box"],
                 "expression": region["expression"]} for k, region in enumerate(row["regions"])]

    def load(self, item: dict, image_root: Path) -> dict:
        if not item["expression"]:
            raise Rejected("no expression: the question matches no REC template")
        check_box(item["box"])  # reject before decoding
        image = self.decoded(Path(image_root) / item["image"])
        # The decoded size is the frame: a normalized box stays right if the file was resized since.
        x1, y1, x2, y2 = pixel_box(item["box"], image.width, image.height, self.min_side)
        return {"image": self.pixels.uint8(region_image(image, (x1, y1, x2, y2), self.view)),   # normalized in score
                "text": self.tokenizer(item["expression"])[0],  # truncated to the context length
                "crop": torch.tensor([x2 - x1, y2 - y1])}

    def decoded(self, path: Path) -> Image.Image:
        """``load_rgb(path)``, reusing this process's last decode while the file is unchanged.

        An image's crops are consecutive items (its rows sort together, a row's regions in order) and a
        DataLoader worker loads whole batches, in order: an image decodes once per batch holding its crops,
        and under DDP once per rank holding some (ranks take items in turn). One image is kept; nothing
        modifies it (crops and spotlights are new images). A failed decode is not kept: each crop errs alike.
        """
        stat = os.stat(path)
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if self.last_decoded is None or self.last_decoded[0] != key:
            self.last_decoded = None  # at most one image held, also while the next one decodes
            self.last_decoded = (key, load_rgb(path))
        return self.last_decoded[1]

    def collate(self, loaded: list[dict]) -> dict:
        return {key: torch.stack([x[key] for x in loaded]) for key in ("image", "text", "crop")}

    def build(self) -> nn.Module:
        return open_clip.create_model(self.model_id, pretrained=self.pretrained)

    def score(self, model: nn.Module, batch: dict, meta: list[dict]) -> list[dict]:
        pixels = self.pixels.normalize(batch["image"], next(model.parameters()).dtype)
        image = model.encode_image(pixels, normalize=False).float()
        text = model.encode_text(batch["text"], normalize=False).float()
        raw = (image * text).sum(dim=-1)
        cosine = F.cosine_similarity(image, text, dim=-1)
        clipscore = 2.5 * cosine.clamp_min(0)
        columns = zip(meta, raw.tolist(), clipscore.tolist(), cosine.tolist(), batch["crop"].tolist())
        return [{**m, "raw": r, "clipscore": s, "cosine": c, "crop": crop} for m, r, s, c, crop in columns]

    def flops(self, model: nn.Module, batch: dict) -> float:
        """2 x parameters x tokens, per tower: each crop's patches + class token, each expression's context."""
        image, text = batch["image"], batch["text"]
        patch = model.visual.patch_size
        patch = patch[0] if isinstance(patch, tuple) else patch
        image_tokens = image.shape[0] * ((image.shape[-2] // patch) * (image.shape[-1] // patch) + 1)
        visual = sum(p.numel() for p in model.visual.parameters())
        textual = sum(p.numel() for p in model.parameters()) - visual
        return 2.0 * (visual * image_tokens + textual * text.numel())

    def summarize(self, lines: list[dict]) -> dict:
        """Per region ``raw`` / ``clipscore`` / ``cosine`` / ``crop`` (None where it failed), the first failure."""
        out = {key: [line.get(key) for line in lines] for key in SCORES}
        failed = next((line for line in lines if "status" in line), None)
        if failed:
            out.update(status=failed["status"], reason=failed["reason"])
        return out

    def config(self) -> dict:
        return {"model": self.model_id, "pretrained": self.pretrained, "min_side": self.min_side, "view": self.view}
