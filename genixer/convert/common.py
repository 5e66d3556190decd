"""Steps every converter shares: the original config, vision tower, tokenizer, and writing our HF-format dir."""
from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    PreTrainedTokenizerBase,
    TokenizersBackend,
)

from genixer.backbones.codec import Codec
from genixer.backbones.conversation import Conversation
from genixer.backbones.hub import cached_snapshot
from genixer.backbones.llava import save_checkpoint
from genixer.convert.weights import ConversionError, KeyMap, check_shapes, load_weights

CONF = Path(__file__).resolve().parents[2] / "conf"
PROVENANCE_FILE = "conversion.json"
# Config keys a LlamaConfig takes (plus the pre-5.0 rope keys it still reads); the mm_* and training keys are dropped.
LLAMA_KEYS = (set(inspect.signature(LlamaConfig.__init__).parameters) | {"rope_theta", "rope_scaling"}) - {
    "self", "transformers_version", "architectures", "dtype", "vocab_size", "pad_token_id"}


def read_config(source: Path) -> dict:
    path = source / "config.json"
    if not path.is_file():
        raise ConversionError(f"{source}: no config.json (is this the checkpoint dir?)")
    return json.loads(path.read_text())


def check_destination(destination: Path) -> None:
    if destination.exists() and any(destination.iterdir()):
        raise ConversionError(f"{destination} exists and is not empty: choose a new directory")


def input_embeddings(state: dict[str, torch.Tensor], source: Path) -> torch.Tensor:
    """``model.embed_tokens.weight``: its rows and dtype size the converted model."""
    if "model.embed_tokens.weight" not in state:
        raise ConversionError(f"{source}: missing keys: model.embed_tokens.weight")
    return state["model.embed_tokens.weight"]


def output_dtype(name: str | None, embeddings: torch.Tensor) -> torch.dtype:
    """``--dtype`` when given, else the source's (fp16 in the released checkpoints)."""
    return getattr(torch, name) if name else embeddings.dtype


def vision_tower_dir(override: str | None, original: dict, source: Path) -> Path:
    """A local CLIP dir or a hub id in the local HF cache: ``--vision-tower`` if given, else ``mm_vision_tower``."""
    name = override or original.get("mm_vision_tower")
    origin = "--vision-tower" if override else f"mm_vision_tower in {source}/config.json"
    if not name:
        raise ConversionError(f"{source}/config.json names no mm_vision_tower: pass --vision-tower <dir-or-id>")
    if Path(name).is_dir():
        return Path(name)
    try:
        return cached_snapshot(name)
    except FileNotFoundError as error:
        raise ConversionError(f"vision tower ({origin}): {error}. Pass --vision-tower <dir-or-id> to use "
                              "another copy") from None


def clip_prefix() -> str:
    """Where this transformers' CLIPVisionModel keeps its weights: ``vision_model.`` as in 4.x (the original
    checkpoints), or ``""`` (5.24 keeps them at the top: ``embeddings.*``). Asked of the class, not assumed."""
    with torch.device("meta"):
        tower = CLIPVisionModel(CLIPVisionConfig(num_hidden_layers=1))
    return "vision_model." if any(k.startswith("vision_model.") for k in tower.state_dict()) else ""


def load_tower(path: Path, weights_in_checkpoint: bool, dtype: torch.dtype):
    """The tower's config and image processor; its weights too unless the checkpoint carries them."""
    config = CLIPVisionConfig.from_pretrained(path)  # also reads a full CLIPModel dir (openai/clip-vit-*)
    processor = CLIPImageProcessor.from_pretrained(path)
    weights = {} if weights_in_checkpoint else {
        f"model.vision_tower.{k}": v for k, v in CLIPVisionModel.from_pretrained(path, dtype=dtype).state_dict().items()}
    return config, processor, weights


# What the slow LlamaTokenizer of the released checkpoints' era (transformers 4.3x) did where tokenizer_config.json is
# silent: BOS first, and legacy (see load_tokenizer). transformers 5 defaults to neither.
SLOW_LLAMA_DEFAULTS = {"add_bos_token": True, "add_eos_token": False, "legacy": True}


def load_tokenizer(source: Path, image_token: str, legacy: bool | None = None) -> PreTrainedTokenizerBase:
    """The source's tokenizer with ``image_token`` as its named image token (added when it is new).

    The released checkpoints ship only sentencepiece's ``tokenizer.model``, which the original code read with the slow
    LlamaTokenizer. It is built here from the sentencepiece model's own settings (``TokenizersBackend``: it encodes as
    sentencepiece does, unlike transformers 5's LlamaTokenizer) with the slow tokenizer's ``tokenizer_config.json``
    settings or else ``SLOW_LLAMA_DEFAULTS``. Legacy: each text between special tokens is encoded on its own, with
    sentencepiece's dummy "▁" prefix even before a space; non-legacy: only the start of the input gets one. ``legacy``
    given: it wins over the checkpoint's flag. A ``tokenizer.json`` is loaded as it is.
    """
    extra = {"extra_special_tokens": {"image_token": image_token}}
    try:
        if (source / "tokenizer.model").is_file() and not (source / "tokenizer.json").is_file():
            path = source / "tokenizer_config.json"
            saved = json.loads(path.read_text()) if path.is_file() else {}
            settings = {k: default if saved.get(k) is None else saved[k] for k, default in SLOW_LLAMA_DEFAULTS.items()}
            settings["legacy"] = settings["legacy"] if legacy is None else legacy
            tokenizer = TokenizersBackend.from_pretrained(source, **settings, **extra)
        else:
            # config=: the tokenizer is the Llama one; the original config.json ("llava", "shikra") would mislead Auto*.
            tokenizer = AutoTokenizer.from_pretrained(source, config=LlamaConfig(), **extra)
    except (OSError, ValueError, ImportError) as error:
        raise ConversionError(f"{source}: cannot load the tokenizer ({error})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token  # vicuna v1 / Shikra: pad = unk
    return tokenizer


def text_config(original: dict, vocab_size: int, tokenizer: PreTrainedTokenizerBase) -> LlamaConfig:
    fields = {k: v for k, v in original.items() if k in LLAMA_KEYS and v is not None}  # rope_scaling: null
    return LlamaConfig(**fields, vocab_size=vocab_size, pad_token_id=tokenizer.pad_token_id)


def max_length(tokenizer: PreTrainedTokenizerBase, text: LlamaConfig) -> int:
    return min(tokenizer.model_max_length, text.max_position_embeddings)


def check_tower(original: dict, tower: CLIPVisionConfig, tower_dir: Path, layer: int, source: Path) -> None:
    """The tower must be the one the projector was trained on: its width, and the select layer inside it."""
    if original.get("mm_hidden_size", tower.hidden_size) != tower.hidden_size:
        raise ConversionError(f"{source}: mm_hidden_size {original['mm_hidden_size']} but the tower at {tower_dir} "
                              f"has hidden_size {tower.hidden_size}")
    if not -tower.num_hidden_layers - 1 <= layer <= tower.num_hidden_layers:
        raise ConversionError(f"{source}: vision select layer {layer} is outside the {tower.num_hidden_layers} layers "
                              f"of the tower at {tower_dir}")


@dataclass
class Original:
    """An original-layout checkpoint read for conversion: its config, weights, embeddings, output dtype and CLIP tower."""

    config: dict
    state: dict[str, torch.Tensor]
    embeddings: torch.Tensor
    dtype: torch.dtype
    tower_dir: Path
    tower: CLIPVisionConfig
    processor: object
    tower_weights: dict[str, torch.Tensor]


def read_original(source: Path, destination: Path, check_config: Callable[[dict, Path], None], tower_prefix: str,
                  vision_tower: str | None, dtype: str | None, default_layer: int | None = None,
                  state: dict[str, torch.Tensor] | None = None) -> Original:
    """The steps every layout shares, in order: destination free, config checked, weights (``state`` if given),
    output dtype, vision tower (saved under ``tower_prefix`` or named by the config) checked against the config."""
    check_destination(destination)
    original = read_config(source)
    check_config(original, source)
    state = load_weights(source) if state is None else state
    embeddings = input_embeddings(state, source)
    dtype = output_dtype(dtype, embeddings)
    tower_dir = vision_tower_dir(vision_tower, original, source)
    tower, processor, tower_weights = load_tower(tower_dir, any(k.startswith(tower_prefix) for k in state), dtype)
    layer = original["mm_vision_select_layer"] if default_layer is None else original.get("mm_vision_select_layer", default_layer)
    check_tower(original, tower, tower_dir, layer, source)
    return Original(original, state, embeddings, dtype, tower_dir, tower, processor, tower_weights)


def load_conversation(name: str) -> Conversation:
    """``conf/conversation/<name>.yaml``, instantiated (the template is config, not code)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    if GlobalHydra.instance().is_initialized():
        node = compose(config_name=f"conversation/{name}")
    else:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            node = compose(config_name=f"conversation/{name}")
    return instantiate(node.conversation)


def grow_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """Rows added for new tokens (LLaVA's ``<image>``) are the mean row: in ``lm_head`` that gives the mean logit,
    which greedy decoding never picks; in the embeddings the row is never read (image features replace it)."""
    extra = rows - weight.shape[0]
    if extra <= 0:
        return weight
    return torch.cat([weight, weight.float().mean(0, keepdim=True).to(weight.dtype).expand(extra, -1)])


def empty_model(config: LlavaConfig) -> LlavaForConditionalGeneration:
    """The model with no storage (meta device): its keys and shapes, and a shell that takes the converted tensors."""
    with torch.device("meta"):
        return LlavaForConditionalGeneration(config)


def model_shapes(config: LlavaConfig) -> dict[str, torch.Size]:
    return {k: t.shape for k, t in empty_model(config).state_dict().items()}


def provenance(layout: str, source: Path, tower_dir: Path, tower_weights: dict, dtype: torch.dtype, **extra) -> dict:
    """What ``conversion.json`` records: where the weights and the tower came from."""
    return {"layout": layout, "source": str(source.resolve()), "vision_tower": str(tower_dir),
            "vision_weights": "vision tower dir" if tower_weights else "checkpoint",
            "dtype": str(dtype).removeprefix("torch."), **extra}


def write_checkpoint(destination: Path, config: LlavaConfig, weights: dict[str, torch.Tensor], codec: Codec,
                     keys: KeyMap, source: Path, record: dict) -> None:
    """Give the empty model ``weights`` as its tensors (shapes checked) and save our HF-format dir."""
    model = empty_model(config)
    check_shapes(weights, {k: t.shape for k, t in model.state_dict().items()}, source, keys)
    model.load_state_dict(weights, strict=True, assign=True)
    model.generation_config.pad_token_id = codec.tokenizer.pad_token_id
    save_checkpoint(model, codec, destination)
    Path(destination, PROVENANCE_FILE).write_text(json.dumps(record, indent=2))
