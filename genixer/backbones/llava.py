"""Generator backbones on HF ``LlavaForConditionalGeneration``: tiny from config or a dir by path.

Genixer_L is LLaVA-1.5 (``mlp2x_gelu`` projector, ``<image>\n`` prompt, mean-colour padding).
Genixer_S is Shikra expressed with the same classes: a single linear projector (``linear``
activation with an identity, frozen second layer: exact, and loadable without custom code),
``<im_start><im_patch>*N<im_end>`` image tokens, white padding.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from transformers.models.auto.configuration_auto import model_type_to_module_name

from genixer.backbones.chat_template import chat_template
from genixer.backbones.codec import Codec, ImageTransform
from genixer.backbones.conversation import FILE_NAME as CONVERSATION_FILE
from genixer.backbones.conversation import Conversation
from genixer.backbones.hub import cached_snapshot
from genixer.backbones.tokenizer import train_tokenizer

CHECKPOINT_DIR = "checkpoint"  # inside a training run dir
VISION_DIR = "vision_tower"  # inside a vision-pretraining checkpoint

# Parameter-name prefixes of LlavaForConditionalGeneration, by part (used to freeze/train).
PARTS = {
    "vision": ("model.vision_tower.",),
    "projector": ("model.multi_modal_projector.",),
    "language": ("model.language_model.", "lm_head."),
}
LINEAR = "linear"  # Shikra's single-linear projector, as a projector_hidden_act


def parts(config: LlavaConfig) -> dict[str, tuple[str, ...]]:
    """Trainable parts; a single-linear (Shikra) projector trains only its first layer."""
    if config.projector_hidden_act == LINEAR:
        return {**PARTS, "projector": ("model.multi_modal_projector.linear_1.",)}
    return PARTS


def make_single_linear(model: LlavaForConditionalGeneration) -> None:
    """linear_2 := identity (frozen), so the projector is exactly linear_1 (Shikra)."""
    second = model.model.multi_modal_projector.linear_2
    with torch.no_grad():
        second.weight.copy_(torch.eye(second.out_features, second.in_features))
        second.bias.zero_()
    second.requires_grad_(False)


def num_image_tokens(config: LlavaConfig) -> int:
    """Patch tokens per image: (size/patch)^2, plus CLS when the strategy keeps it."""
    vision = config.vision_config
    n = (vision.image_size // vision.patch_size) ** 2
    return n + (config.vision_feature_select_strategy == "full")


def resolve_checkpoint(path: str | Path) -> Path:
    """Accept a training run dir (holding ``checkpoint/``), a checkpoint dir itself, or a hub model id in the HF cache."""
    if not Path(path).exists() and str(path).count("/") == 1 and not str(path).startswith((".", "/", "~")):
        path = cached_snapshot(str(path))
    path = Path(path)
    if (path / CHECKPOINT_DIR).is_dir():
        return path / CHECKPOINT_DIR
    if (path / "config.json").exists() or (path / VISION_DIR).is_dir():
        return path
    raise FileNotFoundError(f"{path}: neither a HF checkpoint dir (config.json) nor a run dir with {CHECKPOINT_DIR}/")


def block_class(model_type: str, suffix: str) -> type[nn.Module]:
    """The one ``*<suffix>`` class of a transformers model type (llama -> LlamaDecoderLayer, clip -> CLIPEncoderLayer)."""
    name = model_type_to_module_name(model_type)
    module = importlib.import_module(f"transformers.models.{name}.modeling_{name}")
    found = [cls for key, cls in vars(module).items() if key.endswith(suffix) and isinstance(cls, type)]
    if len(found) != 1:
        raise ValueError(f"{model_type}: expected one *{suffix} class in {module.__name__}, found {found}")
    return found[0]


def llava_blocks(config: LlavaConfig) -> tuple[type[nn.Module], ...]:
    """The language model's decoder layer and the vision tower's encoder layer."""
    return block_class(config.text_config.model_type, "DecoderLayer"), block_class(config.vision_config.model_type, "EncoderLayer")


def check_checkpoint(directory: Path) -> None:
    """The files a LLaVA checkpoint dir needs before anything loads (a clear error, not a tokenizer traceback)."""
    names = {p.name for p in directory.iterdir()}
    needed = {"config.json": "the model config", "preprocessor_config.json": "the image processor"}
    missing = [f"{n} ({why})" for n, why in needed.items() if n not in names]
    if not names & {"tokenizer.json", "tokenizer.model"}:
        missing.append("tokenizer.json or tokenizer.model (the tokenizer)")
    if not any(n.endswith((".safetensors", ".bin")) for n in names):
        missing.append("*.safetensors (the weights)")
    if missing:
        raise FileNotFoundError(f"{directory} is not a complete LLaVA checkpoint dir: missing {', '.join(missing)}")


def save_checkpoint(model: LlavaForConditionalGeneration, codec: Codec, directory: str | Path) -> None:
    """A plain llava-hf dir: weights, tokenizer, image processor, ``LlavaProcessor`` with its chat template, template."""
    model.save_pretrained(directory)
    codec.save(directory)
    LlavaProcessor(
        image_processor=codec.image.processor,
        tokenizer=codec.tokenizer,
        patch_size=model.config.vision_config.patch_size,
        vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        num_additional_image_tokens=1,  # CLIP's CLS, dropped by the "default" strategy
        image_token=codec.image_token,
        chat_template=chat_template(codec),
    ).save_pretrained(directory)


class TinyLlava:
    """A small LLaVA-1.5-shaped model built from config: CLIP ViT + mlp2x_gelu + Llama.

    The tokenizer is trained on the training corpus (``codec``); the vision tower can start
    from a vision-pretraining checkpoint (``vision_init``).
    """

    def __init__(
        self,
        conversation: Conversation,
        image_size: int,
        vision: dict,
        text: dict,
        vocab_size: int,
        vision_init: str | None = None,
        max_length: int = 512,
        projector: str = "mlp2x_gelu",
        image_layout: dict | None = None,
        pad_color: tuple[int, int, int] | None = None,
        split_punctuation: bool = False,
    ) -> None:
        if projector not in ("mlp2x_gelu", LINEAR):
            raise ValueError(f"projector must be 'mlp2x_gelu' (LLaVA-1.5) or 'linear' (Shikra), got {projector!r}")
        self.conversation = conversation
        self.image_size = image_size
        self.vision = dict(vision)
        self.text = dict(text)
        self.vocab_size = vocab_size
        self.vision_init = vision_init
        self.max_length = max_length
        self.projector = projector
        self.image_layout = dict(image_layout or {})  # Codec image_token / image_prefix / ...
        self.pad_color = tuple(pad_color) if pad_color else None
        self.split_punctuation = split_punctuation

    def vision_config(self) -> CLIPVisionConfig:
        return CLIPVisionConfig(image_size=self.image_size, **self.vision)

    def image_transform(self) -> ImageTransform:
        size = self.image_size
        processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        return ImageTransform(processor, self.pad_color)

    def codec(self, corpus: Iterable[str]) -> Codec:
        """Train the tokenizer on ``corpus`` (plus the template's own words)."""
        texts = [self.conversation.system, " ".join(self.conversation.roles), *corpus]
        layout = self.image_layout
        frame = [t for t in (layout.get("image_prefix"), layout.get("image_suffix")) if t]
        tokenizer = train_tokenizer(texts, self.vocab_size, layout.get("image_token", "<image>"), frame,
                                    split_punctuation=self.split_punctuation)
        n = (self.image_size // self.vision["patch_size"]) ** 2
        return Codec(tokenizer, self.image_transform(), self.conversation, n, max_length=self.max_length, **layout)

    save = staticmethod(save_checkpoint)

    @property
    def decoder_layers(self) -> tuple[type[nn.Module], ...]:
        return llava_blocks(LlavaConfig(vision_config=self.vision_config(), text_config=LlamaConfig()))

    def build_vision(self) -> CLIPVisionModel:
        if self.vision_init:
            return CLIPVisionModel.from_pretrained(Path(resolve_checkpoint(self.vision_init), VISION_DIR))
        return CLIPVisionModel(self.vision_config())

    def build(self, codec: Codec) -> LlavaForConditionalGeneration:
        tok = codec.tokenizer
        text = LlamaConfig(
            vocab_size=len(tok),
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            max_position_embeddings=self.max_length,
            **self.text,
        )
        config = LlavaConfig(
            vision_config=self.vision_config(),
            text_config=text,
            image_token_index=codec.image_token_id,
            image_seq_length=codec.num_image_tokens,
            projector_hidden_act="gelu" if self.projector == "mlp2x_gelu" else LINEAR,
            vision_feature_layer=-2,  # penultimate layer
            vision_feature_select_strategy="default",  # patch features, CLS dropped
            tie_word_embeddings=self.text.get("tie_word_embeddings", False),
        )
        model = LlavaForConditionalGeneration(config)
        if self.projector == LINEAR:
            make_single_linear(model)
        if self.vision_init:
            model.model.vision_tower.load_state_dict(self.build_vision().state_dict())
        model.generation_config.pad_token_id = tok.pad_token_id
        return model


class PretrainedLlava:
    """Any HF-format LLaVA checkpoint dir (llava-hf layout, or one of our run dirs) by path.

    The directory is checked when the backbone is built from config (no weights are read then), so
    a wrong path or an incomplete checkpoint fails before any other work.
    """

    def __init__(self, path: str | None, conversation: Conversation | None = None, dtype: str | None = None) -> None:
        if not path:
            raise ValueError("a pretrained LLaVA backbone needs a path (backbone.path=... or generator=...)")
        self.path, self.conversation, self.dtype = path, conversation, dtype
        self.directory = resolve_checkpoint(path)
        check_checkpoint(self.directory)
        if dtype is not None and not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"backbone.dtype must name a torch dtype (float32, bfloat16, ...), got {dtype!r}")
        if conversation is None and not (self.directory / CONVERSATION_FILE).is_file():
            raise FileNotFoundError(f"{self.directory} has no {CONVERSATION_FILE} and no conversation template was configured")
        self.config = LlavaConfig.from_pretrained(self.directory)

    def codec(self, corpus: Iterable[str] = ()) -> Codec:
        return Codec.load(self.directory, num_image_tokens(self.config), self.conversation)

    def image_transform(self) -> ImageTransform:
        return self.codec().image

    save = staticmethod(save_checkpoint)

    @property
    def decoder_layers(self) -> tuple[type[nn.Module], ...]:
        return llava_blocks(self.config)

    def build(self, codec: Codec | None = None) -> LlavaForConditionalGeneration:
        dtype = getattr(torch, self.dtype) if self.dtype else None
        return LlavaForConditionalGeneration.from_pretrained(self.directory, dtype=dtype)
