"""Original-layout LLaVA-1.5 (``LlavaLlamaForCausalLM``: Genixer_L, llava-v1.5-7b) -> our Genixer_L dir.

Weights: Llama keys at the top level, ``model.mm_projector.{0,2}`` (mlp2x_gelu); the CLIP tower is named by
``mm_vision_tower`` (or saved under ``model.vision_tower.vision_tower.``). LLaVA has no image token (it splices at a
-200 sentinel), so ``<image>`` is added to the tokenizer and one row to the embeddings and ``lm_head``.

Prompt ids: LLaVA's ``tokenizer_image_token`` tokenizes the text before and after ``<image>`` apart (one BOS, the image
between), so the text after it starts with sentencepiece's "▁" (a newline: ``▁ <0x0A> ...``); our codec tokenizes
the prompt whole. The two agree when the tokenizer prefixes every text between special tokens (legacy), whatever the
checkpoint's own ``legacy`` flag (Vicuna v1.5: false): ``check_prompt_ids`` refuses a tokenizer that does not.
"""
from __future__ import annotations

from pathlib import Path

from transformers import CLIPVisionConfig, LlavaConfig

from genixer.backbones.codec import Codec, ImageTransform
from genixer.backbones.llava import num_image_tokens, resolve_checkpoint
from genixer.convert.common import (
    clip_prefix,
    grow_rows,
    load_conversation,
    load_tokenizer,
    max_length,
    model_shapes,
    provenance,
    read_original,
    text_config,
    write_checkpoint,
)
from genixer.convert.weights import ConversionError, KeyMap, listing, load_file, replace_tensors

IMAGE_TOKEN = "<image>"
TOWER = "model.vision_tower.vision_tower."  # LLaVA's CLIPVisionTower around CLIPVisionModel, when saved at all
EMBEDDINGS = ("model.language_model.embed_tokens.weight", "lm_head.weight")  # grown by <image>
STRATEGIES = {"patch": "default", "cls_patch": "full"}  # mm_vision_select_feature -> vision_feature_select_strategy


def key_map() -> KeyMap:
    return KeyMap((
        (TOWER + "vision_model.", "model.vision_tower." + clip_prefix()),
        ("model.mm_projector.0.", "model.multi_modal_projector.linear_1."),
        ("model.mm_projector.2.", "model.multi_modal_projector.linear_2."),
        ("model.", "model.language_model."),
        ("lm_head.", "lm_head."),
    ))


def check_llava_config(original: dict, source: Path) -> None:
    """Only what LLaVA-1.5 does: mlp2x_gelu, patch or cls_patch features, pad-to-square, no start/end tokens."""
    if "text_config" in original:
        raise ConversionError(f"{source} is already in the llava-hf layout: use it directly as backbone.path")
    problems = []
    if original.get("mm_projector_type", "linear") != "mlp2x_gelu":
        problems.append(f"mm_projector_type {original.get('mm_projector_type', 'linear (the default)')!r} (need mlp2x_gelu)")
    if original.get("mm_vision_select_feature", "patch") not in STRATEGIES:
        problems.append(f"mm_vision_select_feature {original['mm_vision_select_feature']!r} (need patch or cls_patch)")
    if original.get("image_aspect_ratio") != "pad":
        problems.append(f"image_aspect_ratio {original.get('image_aspect_ratio')!r} (need pad)")
    if original.get("mm_use_im_start_end") or original.get("mm_use_im_patch_token"):
        problems.append("mm_use_im_start_end / mm_use_im_patch_token (LLaVA-1.5 uses neither)")
    if original.get("mm_patch_merge_type", "flat") != "flat":
        problems.append(f"mm_patch_merge_type {original['mm_patch_merge_type']!r} (LLaVA-1.6 anyres is not LLaVA-1.5)")
    if "mm_vision_select_layer" not in original:
        problems.append("no mm_vision_select_layer")
    if problems:
        raise ConversionError(f"{source}/config.json is not a LLaVA-1.5 config: {'; '.join(problems)}")


def original_prompt_ids(tokenizer, prompt: str) -> list[int]:
    """``tokenizer_image_token``: the text around each ``<image>`` tokenized apart, BOS kept once, the image between."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(IMAGE_TOKEN)]
    skip = int(bool(chunks[0]) and chunks[0][0] == tokenizer.bos_token_id)
    ids = chunks[0][:skip]
    for k, chunk in enumerate(chunks):
        ids += ([tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)] if k else []) + chunk[skip:]
    return ids


def check_prompt_ids(codec: Codec, source: Path) -> None:
    """The codec (the prompt tokenized whole) must give the ids LLaVA gave (``original_prompt_ids``)."""
    prompt = codec.conversation.prompt([], codec.human_message("Describe the image."))
    ours, original = codec.tokenizer(prompt).input_ids, original_prompt_ids(codec.tokenizer, prompt)
    if ours != original:
        raise ConversionError(f"{source}: the tokenizer gives the text after {IMAGE_TOKEN} other ids than LLaVA's "
                              f"tokenizer_image_token ({codec.tokenizer.convert_ids_to_tokens(ours)} vs "
                              f"{codec.tokenizer.convert_ids_to_tokens(original)}): every text between special tokens "
                              "must get its own '▁' prefix (a legacy sentencepiece tokenizer.model does)")


def hf_config(original: dict, tower: CLIPVisionConfig, tokenizer, rows: int) -> LlavaConfig:
    text = text_config(original, rows, tokenizer)
    config = LlavaConfig(
        vision_config=tower,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        projector_hidden_act="gelu",  # nn.GELU() between the two linears of mlp2x_gelu
        vision_feature_layer=original["mm_vision_select_layer"],
        vision_feature_select_strategy=STRATEGIES[original.get("mm_vision_select_feature", "patch")],
        tie_word_embeddings=text.tie_word_embeddings,
    )
    config.image_seq_length = num_image_tokens(config)
    return config


def convert_llava(source: str | Path, destination: str | Path, vision_tower: str | None = None,
                  dtype: str | None = None, conversation: str = "vicuna_v1") -> None:
    """Write our Genixer_L dir for an original-layout LLaVA-1.5 checkpoint."""
    source, destination = Path(source), Path(destination)
    o = read_original(source, destination, check_llava_config, TOWER, vision_tower, dtype)
    tokenizer = load_tokenizer(source, IMAGE_TOKEN, legacy=True)  # see check_prompt_ids
    if len(tokenizer) > len(o.embeddings) + 1:  # only the added <image> may lack a row
        raise ConversionError(f"{source}: the tokenizer has {len(tokenizer) - 1} tokens besides {IMAGE_TOKEN} but the "
                              f"embeddings only {len(o.embeddings)} rows")
    rows = max(len(o.embeddings), len(tokenizer))
    config = hf_config(o.config, o.tower, tokenizer, rows)
    keys = key_map()
    expected = {k: s for k, s in model_shapes(config).items() if k not in o.tower_weights}
    weights = keys.apply(o.state, expected, source)
    weights = {k: (grow_rows(t, rows) if k in EMBEDDINGS else t).to(o.dtype) for k, t in weights.items()}
    codec = Codec(tokenizer, ImageTransform(o.processor), load_conversation(conversation), config.image_seq_length,
                  image_token=IMAGE_TOKEN, max_length=max_length(tokenizer, config.text_config))
    check_prompt_ids(codec, source)
    write_checkpoint(destination, config, {**weights, **o.tower_weights}, codec, keys, source,
                     provenance("llava", source, o.tower_dir, o.tower_weights, o.dtype))


PROJECTOR = {  # mm_projector.bin of the pretrain stage (only the projector is saved)
    "model.mm_projector.0.weight": "multi_modal_projector.linear_1.weight",
    "model.mm_projector.0.bias": "multi_modal_projector.linear_1.bias",
    "model.mm_projector.2.weight": "multi_modal_projector.linear_2.weight",
    "model.mm_projector.2.bias": "multi_modal_projector.linear_2.bias",
}


def load_projector(source: str | Path, destination: str | Path) -> None:
    """Put a pretrain-stage ``mm_projector.bin`` into an existing Genixer_L dir as its projector (in place)."""
    source, directory = Path(source), resolve_checkpoint(destination)
    if not source.is_file():
        raise ConversionError(f"{source}: no such projector file")
    config = LlavaConfig.from_pretrained(directory)
    if config.projector_hidden_act != "gelu":
        raise ConversionError(f"{directory}: projector_hidden_act {config.projector_hidden_act!r}, not a Genixer_L "
                              "(mlp2x_gelu) checkpoint")
    state = load_file(source)
    unknown, missing = set(state) - set(PROJECTOR), set(PROJECTOR) - set(state)
    if unknown or missing:
        raise ConversionError(f"{source}: unexpected keys {listing(unknown) or 'none'}; "
                              f"missing keys {listing(missing) or 'none'}")
    replace_tensors(directory, {PROJECTOR[k]: t for k, t in state.items()}, source)

