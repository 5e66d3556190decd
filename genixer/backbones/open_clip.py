"""open_clip models as a backbone (the CLIP a crop scorer uses, or one trained from scratch), and their
checkpoint directories (open_clip's hub layout, loadable as ``local-dir:<dir>``)."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import open_clip
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from open_clip.transformer import ResidualAttentionBlock
from open_clip.utils import to_2tuple
from safetensors.torch import save_file
from torch import nn

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
LOCAL_DIR = "local-dir:"


REGION_VIEWS = ("crop", "spotlight")  # how a region scorer shows a box to the model (filtering/clip.py)


def save_open_clip(model: nn.Module, model_cfg: dict, directory: str | Path,
                   preprocess_cfg: dict | None = None, region_view: str = "crop") -> Path:
    """Write an open_clip checkpoint directory (open_clip's hub layout, loadable as ``local-dir:``).

    ``region_view`` (a key open_clip ignores) records how the model was trained to see a box.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": dict(preprocess_cfg or {}), "region_view": region_view}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS_FILE))
    return out


def region_view(model_id: str) -> str:
    """The region view a ``local-dir:`` checkpoint was trained with; "crop" for every other model."""
    if not model_id.startswith(LOCAL_DIR):
        return "crop"
    config = json.loads(Path(model_id.removeprefix(LOCAL_DIR), CONFIG_FILE).read_text())
    return config.get("region_view", "crop")


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
    return resolved_preprocess(model_cfg, overlay)


def resolved_preprocess(model_cfg: dict, overlay: dict) -> PreprocessCfg:
    """``overlay`` over open_clip's defaults; as ``create_model``, the vision tower's image size wins."""
    merged = merge_preprocess_dict(PreprocessCfg(), overlay)
    merged["size"] = to_2tuple(model_cfg["vision_cfg"]["image_size"])
    return PreprocessCfg(**merged)


@dataclass(frozen=True)
class ClipCodec:
    """What turns images and texts into CLIP inputs."""

    image: Callable
    tokenizer: Callable


class OpenClip:
    """An ``open_clip.CLIP`` built from ``model_cfg`` (open_clip's model config dict), trained from scratch.

    ``preprocess_cfg`` (``PreprocessCfg`` fields) and ``region_view`` are saved with the weights, so a
    region scorer shows boxes and preprocesses exactly as training did.
    """

    def __init__(self, model_cfg: dict, preprocess_cfg: dict | None = None, region_view: str = "crop") -> None:
        if region_view not in REGION_VIEWS:
            raise ValueError(f"region_view must be one of {REGION_VIEWS}, got {region_view!r}")
        self.model_cfg, self.preprocess_cfg = dict(model_cfg), dict(preprocess_cfg or {})
        self.region_view = region_view

    def image_transform(self) -> Callable:
        return image_transform_v2(resolved_preprocess(self.model_cfg, self.preprocess_cfg), is_train=False)

    def codec(self, corpus: Iterable[str] = ()) -> ClipCodec:
        """The eval transform and open_clip's tokenizer at the text tower's context length (``corpus`` unused)."""
        context = self.model_cfg["text_cfg"]["context_length"]
        return ClipCodec(self.image_transform(), open_clip.SimpleTokenizer(context_length=context))

    def build(self, codec: ClipCodec | None = None) -> open_clip.CLIP:
        return open_clip.CLIP(**self.model_cfg)

    def save(self, model: nn.Module, codec: ClipCodec, directory: str | Path) -> None:
        save_open_clip(model, self.model_cfg, directory, self.preprocess_cfg, self.region_view)

    @property
    def decoder_layers(self) -> tuple[type[nn.Module], ...]:
        return (ResidualAttentionBlock,)
