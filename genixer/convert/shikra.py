"""Original Shikra layout (``ShikraLlamaForCausalLM``: Shikra-7B, Genixer_S) -> our Genixer_S dir, and Shikra's delta.

Shikra is Llama + one ``Linear`` (``model.mm_projector``) on the CLIP patch features of ``mm_vision_select_layer``,
written over the ``<im_patch>`` run between ``<im_start>`` and ``<im_end>`` (tokens its tokenizer and embeddings
already hold). The tower is named by ``mm_vision_tower`` (Shikra keeps it out of its weights) or saved under
``model.vision_tower.``. Ours: ``projector_hidden_act="linear"`` with ``linear_2`` = identity (backbones/llava.py).
Shikra tokenizes the prompt whole with the slow LlamaTokenizer: its sentencepiece tokenizer is read with the
checkpoint's own ``legacy`` flag, legacy where it has none (``load_tokenizer``), so the " instruction" after
``<im_end>`` is encoded on its own, dummy "▁" prefix and all, as there.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import CLIPVisionConfig, LlavaConfig

from genixer.backbones.codec import Codec, ImageTransform
from genixer.backbones.llava import LINEAR, num_image_tokens
from genixer.convert.common import (
    check_destination,
    clip_prefix,
    input_embeddings,
    load_conversation,
    load_tokenizer,
    max_length,
    model_shapes,
    provenance,
    read_original,
    text_config,
    write_checkpoint,
)
from genixer.convert.weights import DERIVED, ConversionError, KeyMap, listing, load_weights

# Shikra's image tokens and prompt (ShikraConvProcess: "<im_start><im_patch>*256<im_end> instruction").
IMAGE_LAYOUT = dict(image_token="<im_patch>", image_prefix="<im_start>", image_suffix="<im_end>", image_separator=" ")
WHITE = (255, 255, 255)  # Shikra's Expand2square background
TOWER = "model.vision_tower."
PROJECTOR = ("model.mm_projector.weight", "model.mm_projector.bias")  # in the delta only (the base has none)
EMBEDDINGS = ("model.embed_tokens.weight", "lm_head.weight")  # grown by the three image tokens


def key_map() -> KeyMap:
    return KeyMap((
        (TOWER + "vision_model.", TOWER + clip_prefix()),
        ("model.mm_projector.", "model.multi_modal_projector.linear_1."),
        ("model.", "model.language_model."),
        ("lm_head.", "lm_head."),
    ))


def check_shikra_config(original: dict, source: Path) -> None:
    if "text_config" in original:
        raise ConversionError(f"{source} is already in the llava-hf layout: use it directly as backbone.path")
    problems = []
    if "mm_hidden_size" not in original:
        problems.append("no mm_hidden_size (no projector: a plain Llama/Vicuna checkpoint?)")
    if original.get("mm_use_im_start_end") is False:
        problems.append("mm_use_im_start_end is false (Shikra-7B and Genixer_S use <im_start>/<im_end>)")
    if problems:
        raise ConversionError(f"{source}/config.json is not a Shikra config: {'; '.join(problems)}")


def image_token_ids(tokenizer, rows: int, source: Path) -> dict[str, int]:
    """The ids of Shikra's image tokens, which must already be in its tokenizer and embeddings."""
    names = (IMAGE_LAYOUT["image_prefix"], IMAGE_LAYOUT["image_token"], IMAGE_LAYOUT["image_suffix"])
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in names}
    absent = [n for n, i in ids.items() if i is None or i == tokenizer.unk_token_id or i >= rows]
    if absent or len(tokenizer) > rows:
        raise ConversionError(f"{source}: the tokenizer ({len(tokenizer)} tokens) and the {rows} embedding rows must "
                              f"hold Shikra's image tokens; missing: {listing(absent) or 'none'}")
    return ids


def hf_config(original: dict, tower: CLIPVisionConfig, tokenizer, rows: int, image_token_id: int) -> LlavaConfig:
    text = text_config(original, rows, tokenizer)
    config = LlavaConfig(
        vision_config=tower,
        text_config=text,
        image_token_index=image_token_id,
        projector_hidden_act=LINEAR,
        vision_feature_layer=original.get("mm_vision_select_layer", -1),  # Shikra: getattr(config, ..., -1)
        vision_feature_select_strategy="default",  # Shikra drops CLS: hidden_states[layer][:, 1:]
        tie_word_embeddings=text.tie_word_embeddings,
    )
    config.image_seq_length = num_image_tokens(config)
    return config


def convert_shikra(source: str | Path, destination: str | Path, vision_tower: str | None = None,
                   dtype: str | None = None, conversation: str = "vicuna_v1_1",
                   state: dict[str, torch.Tensor] | None = None, record: dict | None = None) -> None:
    """Write our Genixer_S dir for an original-layout Shikra checkpoint (``state``: its weights, if already loaded)."""
    source, destination = Path(source), Path(destination)
    o = read_original(source, destination, check_shikra_config, TOWER, vision_tower, dtype, default_layer=-1, state=state)
    tokenizer = load_tokenizer(source, IMAGE_LAYOUT["image_token"])
    ids = image_token_ids(tokenizer, len(o.embeddings), source)
    config = hf_config(o.config, o.tower, tokenizer, len(o.embeddings), ids[IMAGE_LAYOUT["image_token"]])
    hidden = config.text_config.hidden_size
    filled = {  # linear_2 of our single-linear projector is the identity
        **o.tower_weights,
        "model.multi_modal_projector.linear_2.weight": torch.eye(hidden, dtype=o.dtype),
        "model.multi_modal_projector.linear_2.bias": torch.zeros(hidden, dtype=o.dtype),
    }
    keys = key_map()
    expected = {k: s for k, s in model_shapes(config).items() if k not in filled}
    weights = {k: t.to(o.dtype) for k, t in keys.apply(o.state, expected, source).items()}
    codec = Codec(tokenizer, ImageTransform(o.processor, WHITE), load_conversation(conversation), config.image_seq_length,
                  max_length=max_length(tokenizer, config.text_config), **IMAGE_LAYOUT)
    write_checkpoint(destination, config, {**weights, **filled}, codec, keys, source,
                     {**provenance("shikra", source, o.tower_dir, o.tower_weights, o.dtype), **(record or {})})


def apply_delta(base: Path, delta: Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Shikra's ``apply_delta``: each delta tensor plus the base tensor of the same name, in ``dtype`` (fp16 there).

    The delta's larger ``embed_tokens`` / ``lm_head`` get the base added into their leading rows (the image tokens'
    rows stay as they are); the projector, absent from the base, is taken as it is; base-only keys are not used.
    """
    base_state, delta_state = load_weights(base), load_weights(delta)
    dtype = dtype or input_embeddings(delta_state, delta).dtype
    target, problems = {}, []
    for name, d in delta_state.items():
        if name.endswith(DERIVED):
            continue
        d, b = d.to(dtype), base_state.get(name)
        if b is None:
            target[name] = d
            if name not in PROJECTOR:
                problems.append(f"{name} (not in the base)")
        elif b.shape == d.shape:
            target[name] = d + b.to(dtype)
        elif name in EMBEDDINGS and b.dim() == 2 and b.shape[0] <= d.shape[0] and b.shape[1] == d.shape[1]:
            target[name] = d.clone()
            target[name][: b.shape[0]] += b.to(dtype)
        else:
            problems.append(f"{name} {tuple(d.shape)} (the base has {tuple(b.shape)})")
    if problems:
        raise ConversionError(f"cannot apply the delta {delta} to the base {base}: {listing(problems)}")
    return target


def convert_shikra_delta(source: str | Path, destination: str | Path, base: str | Path, vision_tower: str | None = None,
                         dtype: str | None = None, conversation: str = "vicuna_v1_1") -> None:
    """``source`` (shikra-7b-delta-v1) + ``base`` (Vicuna-7B v1.1) -> Shikra-7B with the delta's config and tokenizer,
    converted as ``convert_shikra``."""
    check_destination(Path(destination))
    state = apply_delta(Path(base), Path(source), getattr(torch, dtype) if dtype else None)
    convert_shikra(source, destination, vision_tower, dtype, conversation, state=state,
                   record={"layout": "shikra-delta", "base": str(Path(base).resolve())})
