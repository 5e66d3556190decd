"""CLIP score of REC box crops (spec §7.2): does the crop at the box look like the expression?

One item per row that carries an (expression, normalized box) pair: REC, REG and REC-shaped
task-agnostic rows, read from the row's ``parsed`` record (or parsed here with the REC task when
a row has only text). Workers decode, crop at the rounded pixel box and preprocess; the model
scores a batch in fp32 dot products:

* ``raw``: image · text of the projected, *unnormalized* embeddings, the original's score
  (threshold 60 on CLIP ViT-L/14; spec §12 item 12: it scales with the embedding norms);
* ``cosine`` and ``clipscore`` = 2.5 * max(cosine, 0) (CLIPScore, Hessel et al. 2021): scale-free.

Thresholds live in selection configs. Models come from open_clip: an architecture name plus a
``pretrained`` tag or weights file, or a checkpoint directory written by ``save_open_clip``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import open_clip
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from open_clip.utils import to_2tuple
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from genixer.data.images import load_rgb
from genixer.filtering.scorer import Rejected, Scorer
from genixer.tasks import EXPR, REC, Task, TemplatePool, format_qa
from genixer.tasks.boxes import denormalize_box

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
LOCAL_DIR = "local-dir:"
BOX_TOLERANCE = 1e-6  # float noise only: generated boxes are 3-decimal text
SCORES = ("raw", "clipscore", "cosine", "crop")


def save_open_clip(model: nn.Module, model_cfg: dict, directory: str | Path,
                   preprocess_cfg: dict | None = None) -> Path:
    """Write an open_clip checkpoint directory (open_clip's hub layout, loadable as ``local-dir:``)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": dict(preprocess_cfg or {})}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS_FILE))
    return out


def preprocess_config(model_id: str, pretrained: str | None = None) -> PreprocessCfg:
    """open_clip's eval preprocessing for a model, resolved from configs alone (workers never build it)."""
    model_cfg = open_clip.get_model_config(model_id)
    if model_cfg is None:
        raise ValueError(f"unknown open_clip model {model_id!r}")
    if model_id.startswith(LOCAL_DIR):
        config = json.loads(Path(model_id.removeprefix(LOCAL_DIR), CONFIG_FILE).read_text())
        overlay = config.get("preprocess_cfg", {})
    else:
        overlay = open_clip.get_pretrained_cfg(model_id, pretrained) if pretrained else {}
    merged = merge_preprocess_dict(PreprocessCfg(), overlay)
    merged["size"] = to_2tuple(model_cfg["vision_cfg"]["image_size"])  # as create_model: the tower's size wins
    return PreprocessCfg(**merged)


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


def builtin_rec_parser() -> REC:
    """The REC task over the packaged question templates (parsing only: no suffix needed)."""
    return REC("rec", "", TemplatePool.builtin("generic_instructions"), TemplatePool.builtin("rec_questions", EXPR))


class ClipCropScorer(Scorer):
    """Scores (expression, box crop) pairs with an open_clip model.

    ``model`` is an open_clip architecture name with ``pretrained`` a tag or a weights file (None:
    random weights, for benchmarks); ``checkpoint`` is a directory from ``save_open_clip`` instead.
    The original's HF ``clip-vit-large-patch14`` is ``ViT-L-14-quickgelu`` with ``pretrained="openai"``.
    Crops with a side under ``min_side`` pixels are rejected. ``task`` parses rows that have text
    but no ``parsed`` record (default: the REC task over the packaged templates).
    """

    def __init__(self, model: str = "ViT-L-14", pretrained: str | None = None, checkpoint: str | None = None,
                 min_side: int = 50, task: Task | None = None, name: str = "clip") -> None:
        if checkpoint and pretrained:
            raise ValueError("a checkpoint directory carries its own weights: leave pretrained unset")
        if min_side < 1:
            raise ValueError(f"min_side must be at least 1 px, got {min_side}")
        self.name, self.min_side, self.pretrained = name, min_side, pretrained
        self.model_id = f"{LOCAL_DIR}{checkpoint}" if checkpoint else model
        self.task = task or builtin_rec_parser()
        # Resolved here, not in workers, so a bad model id fails the run instead of every item.
        self.transform = image_transform_v2(preprocess_config(self.model_id, pretrained), is_train=False)
        self.tokenizer = open_clip.get_tokenizer(self.model_id)

    def items(self, row: dict) -> list[dict]:
        if row.get("status") != "ok":
            return []
        record = row.get("parsed") or self._parse(row)
        if not record or "box" not in record or "expression" not in record:
            return []  # not REC-shaped: nothing to score
        return [{"id": f"{row['id']}#0", "row_id": row["id"], "image": row["image"], "width": row.get("width"),
                 "height": row.get("height"), "box": record["box"], "expression": record["expression"]}]

    def _parse(self, row: dict) -> dict | None:
        text = row.get("text")
        turns = row.get("conversations") or []
        if text is None and len(turns) == 2:
            text = format_qa(turns[0]["value"].replace("<image>", "").strip(), turns[1]["value"])
        parsed = self.task.parse(text) if text else None
        return parsed.record if parsed and parsed.ok else None

    def load(self, item: dict, image_root: Path) -> dict:
        if not item["expression"]:
            raise Rejected("no expression: the question matches no REC template")
        check_box(item["box"])  # reject before decoding
        image = load_rgb(Path(image_root) / item["image"])
        # The decoded size is the frame: a normalized box stays right if the file was resized since.
        x1, y1, x2, y2 = pixel_box(item["box"], image.width, image.height, self.min_side)
        return {"image": self.transform(image.crop((x1, y1, x2, y2))),
                "text": self.tokenizer(item["expression"])[0],  # truncated to the context length
                "crop": torch.tensor([x2 - x1, y2 - y1])}

    def collate(self, loaded: list[dict]) -> dict:
        return {key: torch.stack([x[key] for x in loaded]) for key in ("image", "text", "crop")}

    def build(self) -> nn.Module:
        return open_clip.create_model(self.model_id, pretrained=self.pretrained)

    def score(self, model: nn.Module, batch: dict, meta: list[dict]) -> list[dict]:
        image = model.encode_image(batch["image"], normalize=False).float()
        text = model.encode_text(batch["text"], normalize=False).float()
        raw = (image * text).sum(dim=-1)
        cosine = F.cosine_similarity(image, text, dim=-1)
        clipscore = 2.5 * cosine.clamp_min(0)
        columns = zip(meta, raw.tolist(), clipscore.tolist(), cosine.tolist(), batch["crop"].tolist())
        return [{**m, "raw": r, "clipscore": s, "cosine": c, "crop": crop} for m, r, s, c, crop in columns]

    def summarize(self, lines: list[dict]) -> dict:
        if not lines:
            return {}
        line = lines[0]  # one item per row
        if "status" in line:
            return {"status": line["status"], "reason": line["reason"]}
        return {key: line[key] for key in SCORES}

    def config(self) -> dict:
        return {"model": self.model_id, "pretrained": self.pretrained, "min_side": self.min_side}
