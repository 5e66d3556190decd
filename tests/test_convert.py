"""genixer.convert: tiny checkpoints saved in the original LLaVA-1.5 / Shikra layouts, converted, and checked against
an independent forward of the original architecture (Llama + CLIP features at the select layer, CLS dropped,
mm_projector, spliced into the input embeddings by hand), in fp32."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from torch import nn
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from genixer.backbones.llava import PretrainedLlava, resolve_checkpoint
from genixer.convert.__main__ import main as cli
from genixer.convert.llava import convert_llava, load_projector
from genixer.convert.shikra import apply_delta, convert_shikra
from genixer.convert.weights import ConversionError
from genixer.generation.decoding import decode_static

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
INSTRUCTION = "Look at the image and write a question with its answer."
IMAGE_SIZE, PATCH = 28, 14  # 4 patch tokens
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)
CLIP_ID = "openai/tiny-clip"  # what mm_vision_tower names; found in a fake HF cache


# -- the original layouts, built here ------------------------------------------------------------------------------
def llama_tokenizer(image_tokens: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """A small LLaMA-like BPE (no image token: LLaVA has none); Shikra appends its image tokens at the end."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=160, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator([SYSTEM, f"USER: \n{INSTRUCTION} ASSISTANT: Question: What is red? Answer: a star"] * 4,
                            trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   model_max_length=64)
    fast.add_tokens(list(image_tokens), special_tokens=True)
    return fast


def write_weights(directory: Path, state: dict, shards: int, kind: str = "safetensors") -> None:
    """Shards plus their index, as HF's sharded save writes them (``kind="bin"``: ``torch.save`` files)."""
    for old in [*directory.glob("*.safetensors"), *directory.glob("*.bin"), *directory.glob("*.index.json")]:
        old.unlink()
    prefix = "model" if kind == "safetensors" else "pytorch_model"
    names, weight_map = sorted(state), {}
    for i in range(shards):
        part = {k: state[k].contiguous() for k in names[i::shards]}
        file = f"{prefix}-{i + 1:05d}-of-{shards:05d}.{kind}"
        if kind == "safetensors":
            save_file(part, directory / file)
        else:
            torch.save(part, directory / file)
        weight_map.update(dict.fromkeys(part, file))
    (directory / f"{prefix}.{kind}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def original_config(tokenizer, vision_hidden: int, **mm) -> dict:
    """config.json as LLaVA / Shikra wrote it: Llama keys at the top level plus mm_* keys."""
    llama = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "hidden_act": "silu", "initializer_range": 0.02,
             "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_scaling": None, "tie_word_embeddings": False,
             "torch_dtype": "float32", "transformers_version": "4.31.0", "use_cache": True, "vocab_size": len(tokenizer)}
    return {**llama, **TEXT, "mm_hidden_size": vision_hidden, **mm}


def save_original(directory: Path, tokenizer, config: dict, projector: dict, shards: int, kind: str, seed: int,
                  extra: dict | None = None) -> dict:
    directory.mkdir(parents=True)
    torch.manual_seed(seed)
    llama = LlamaForCausalLM(LlamaConfig(**TEXT, vocab_size=len(tokenizer)))
    state = {**llama.state_dict(), **projector, **(extra or {})}
    write_weights(directory, state, shards, kind)
    (directory / "config.json").write_text(json.dumps(config))
    tokenizer.save_pretrained(directory)
    return state


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny CLIP (in a fake HF cache and as a plain dir), original LLaVA-1.5 and Shikra checkpoints, converted."""
    root = tmp_path_factory.mktemp("convert")
    torch.manual_seed(0)
    vision = dict(image_size=IMAGE_SIZE, patch_size=PATCH, hidden_size=24, intermediate_size=48, num_hidden_layers=3,
                  num_attention_heads=2)
    text = dict(vocab_size=99, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    snapshot = root / "hf/hub/models--openai--tiny-clip/snapshots/0123abc"
    CLIPModel(CLIPConfig(vision_config=vision, text_config=text)).save_pretrained(snapshot)
    CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
                       ).save_pretrained(snapshot)
    (root / "hf/hub/models--openai--tiny-clip/refs").mkdir()
    (root / "hf/hub/models--openai--tiny-clip/refs/main").write_text("0123abc")
    clip = root / "clip"
    shutil.copytree(snapshot, clip)

    h, v = TEXT["hidden_size"], vision["hidden_size"]
    llava_tok = llama_tokenizer()
    mlp = nn.Sequential(nn.Linear(v, h), nn.GELU(), nn.Linear(h, h))
    llava_config = original_config(llava_tok, v, architectures=["LlavaLlamaForCausalLM"], model_type="llava",
                                   mm_vision_tower=CLIP_ID, mm_projector_type="mlp2x_gelu", mm_vision_select_layer=-2,
                                   mm_vision_select_feature="patch", image_aspect_ratio="pad", mm_use_im_start_end=False,
                                   mm_use_im_patch_token=False, tune_mm_mlp_adapter=False, use_mm_proj=True)
    llava_state = save_original(root / "llava", llava_tok, llava_config,
                                {f"model.mm_projector.{k}": t for k, t in mlp.state_dict().items()}, 2, "safetensors", 1)

    shikra_tok = llama_tokenizer(("<im_patch>", "<im_start>", "<im_end>"))
    linear = nn.Linear(v, h)
    shikra_config = original_config(shikra_tok, v, architectures=["ShikraLlamaForCausalLM"], model_type="shikra",
                                    mm_vision_tower="openai/clip-vit-large-patch14", mm_vision_select_layer=-2,
                                    mm_use_im_start_end=True, use_mm_proj=True)
    shikra_state = save_original(root / "shikra", shikra_tok, shikra_config,
                                 {f"model.mm_projector.{k}": t for k, t in linear.state_dict().items()}, 2, "bin", 2,
                                 extra={"model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(8)})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HOME", str(root / "hf"))
        convert_llava(root / "llava", root / "genixer_l")
    convert_shikra(root / "shikra", root / "genixer_s", vision_tower=str(clip))
    return dict(root=root, clip=clip, llava_state=llava_state, shikra_state=shikra_state, llava_tok=llava_tok,
                shikra_tok=shikra_tok)


# -- the independent reference --------------------------------------------------------------------------------------
def original_forward(state: dict, clip: Path, layer: int, vocab: int):
    """The original forward: Llama on [embed(before), projector(CLIP hidden_states[layer][:, 1:]), embed(after)]."""
    llama = LlamaForCausalLM(LlamaConfig(**TEXT, vocab_size=vocab, rms_norm_eps=1e-5)).eval()
    llama.load_state_dict({k: t for k, t in state.items() if not k.startswith("model.mm_projector")
                           and "inv_freq" not in k})
    if "model.mm_projector.weight" in state:  # Shikra: one Linear
        projector = nn.Linear(*reversed(state["model.mm_projector.weight"].shape))
    else:  # LLaVA-1.5: mlp2x_gelu
        w0, w2 = state["model.mm_projector.0.weight"], state["model.mm_projector.2.weight"]
        projector = nn.Sequential(nn.Linear(w0.shape[1], w0.shape[0]), nn.GELU(), nn.Linear(w2.shape[1], w2.shape[0]))
    prefix = "model.mm_projector."
    projector.load_state_dict({k[len(prefix):]: t for k, t in state.items() if k.startswith(prefix)})
    tower = CLIPVisionModel.from_pretrained(clip).eval()

    @torch.no_grad()
    def logits(before: list[int], after: list[int], pixels: torch.Tensor) -> torch.Tensor:
        features = projector(tower(pixels[None], output_hidden_states=True).hidden_states[layer][:, 1:])
        embed = llama.get_input_embeddings()
        embeds = torch.cat([embed(torch.tensor([before])), features, embed(torch.tensor([after]))], dim=1)
        return llama(inputs_embeds=embeds).logits[0]

    return logits


@pytest.fixture(scope="module")
def llava_original(world):
    return original_forward(world["llava_state"], world["clip"], -2, len(world["llava_tok"]))


@pytest.fixture(scope="module")
def shikra_original(world):
    return original_forward(world["shikra_state"], world["clip"], -2, len(world["shikra_tok"]))


def stored(directory: Path, name: str) -> torch.Tensor:
    """The saved tensor whose key ends with ``name`` (transformers versions save llava keys with or without ``model.``)."""
    state = load_file(directory / "model.safetensors")
    (key,) = [k for k in state if k == name or k.endswith("." + name)]
    return state[key]


def expand2square(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """LLaVA's / Shikra's pad-to-square, written out here."""
    w, h = image.size
    square = Image.new(image.mode, (max(w, h),) * 2, colour)
    square.paste(image, ((max(w, h) - w) // 2, (max(w, h) - h) // 2))
    return square


def split_at_image(ids: torch.Tensor, image_id: int) -> tuple[list[int], list[int], int]:
    at = (ids == image_id).nonzero().flatten()
    return ids[: at[0]].tolist(), ids[at[-1] + 1:].tolist(), len(at)


IMAGE = Image.new("RGB", (40, 24), (200, 30, 60))


# -- LLaVA-1.5 -------------------------------------------------------------------------------------------------------
def test_llava_logits_match_the_original_forward(world, llava_original):
    backbone = PretrainedLlava(str(world["root"] / "genixer_l"))
    codec, model = backbone.codec(), backbone.build().eval()
    ids = codec.encode_prompt(INSTRUCTION)
    before, after, n = split_at_image(ids, codec.image_token_id)
    assert n == (IMAGE_SIZE // PATCH) ** 2 == codec.num_image_tokens
    # The original prompt ids (tokenizer_image_token: chunks around "<image>", one BOS, the image in between).
    source = world["llava_tok"]
    chunks = codec.conversation.prompt([], codec.human_message(INSTRUCTION)).split("<image>")
    assert before == source(chunks[0]).input_ids and after == source(chunks[1]).input_ids[1:]
    # The original image path: mean-colour pad to square, then the tower's CLIP processor.
    processor = CLIPImageProcessor.from_pretrained(world["clip"])
    mean = tuple(int(x * 255) for x in processor.image_mean)
    pixels = processor(images=expand2square(IMAGE, mean), return_tensors="pt")["pixel_values"][0]
    assert torch.equal(codec.image(IMAGE), pixels)
    with torch.no_grad():
        ours = model(input_ids=ids[None], pixel_values=pixels[None]).logits[0]
    reference = llava_original(before, after, pixels)
    assert ours.shape[-1] == len(source) + 1  # + <image>
    torch.testing.assert_close(ours[:, : len(source)], reference, atol=1e-5, rtol=1e-5)
    saved = json.loads((world["root"] / "genixer_l/conversion.json").read_text())
    assert saved["vision_tower"].endswith("snapshots/0123abc") and saved["vision_weights"] == "vision tower dir"


def test_llava_greedy_generation_from_the_converted_dir(world, llava_original):
    """Our static-cache decoder on the converted model picks, at every step, the original forward's argmax."""
    backbone = PretrainedLlava(str(world["root"] / "genixer_l"))
    codec, model = backbone.codec(), backbone.build().eval()
    ids, pixels = codec.encode_prompt(INSTRUCTION), codec.image(IMAGE)
    tok = codec.tokenizer
    new = decode_static(model, ids[None], torch.ones(1, len(ids), dtype=torch.long), pixels[None], 4,
                        tok.eos_token_id, tok.pad_token_id)[0].tolist()
    assert len(new) == 4 and codec.image_token_id not in new
    before, after, _ = split_at_image(ids, codec.image_token_id)
    reference = llava_original(before, after + new[:-1], pixels)  # teacher-forced: one forward checks every step
    assert reference[-4:].argmax(-1).tolist() == new


def test_converted_processor_chat_template_matches_the_codec(world):
    for name in ("genixer_l", "genixer_s"):
        directory = world["root"] / name
        codec = PretrainedLlava(str(directory)).codec()
        processor = LlavaProcessor.from_pretrained(directory)
        first = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": INSTRUCTION}]}]
        text = processor.apply_chat_template(first, add_generation_prompt=True, tokenize=False)
        assert text == codec.conversation.prompt([], codec.human_message(INSTRUCTION))
        assert text.startswith(SYSTEM + " USER: ") and text.endswith(" ASSISTANT:")
        ids = processor(text=text, images=Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE)), return_tensors="pt")["input_ids"][0]
        assert torch.equal(ids, codec.encode_prompt(INSTRUCTION))
        turns = [*first, {"role": "assistant", "content": [{"type": "text", "text": "Answer: a star"}]},
                 {"role": "user", "content": [{"type": "text", "text": "Why?"}]}]
        history = [(codec.human_message(INSTRUCTION), "Answer: a star")]
        assert processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=False) == \
            codec.conversation.prompt(history, "Why?")


def test_llava_projector_loads_into_a_converted_dir(world, tmp_path):
    directory = tmp_path / "genixer_l"
    shutil.copytree(world["root"] / "genixer_l", directory)
    state = world["llava_state"]
    pretrain = {k: torch.randn_like(t).half() for k, t in state.items() if k.startswith("model.mm_projector.")}
    torch.save(pretrain, tmp_path / "mm_projector.bin")
    cli(["llava-projector", str(tmp_path / "mm_projector.bin"), str(directory)])
    assert torch.equal(stored(directory, "multi_modal_projector.linear_2.weight"),
                       pretrain["model.mm_projector.2.weight"].float())
    assert torch.equal(stored(directory, "norm.weight"), state["model.norm.weight"])

    wrong = {**pretrain, "model.mm_projector.0.weight": torch.zeros(5, 5)}
    torch.save(wrong, tmp_path / "wrong.bin")
    with pytest.raises(ConversionError, match=r"multi_modal_projector.linear_1.weight \(5, 5\)"):
        load_projector(tmp_path / "wrong.bin", directory)
    torch.save({**pretrain, "model.embed_tokens.weight": torch.zeros(2, 2)}, tmp_path / "extra.bin")
    with pytest.raises(ConversionError, match="unexpected keys model.embed_tokens.weight"):
        load_projector(tmp_path / "extra.bin", directory)


# -- Shikra ----------------------------------------------------------------------------------------------------------
def shikra_reference_check(directory: Path, reference, world) -> None:
    backbone = PretrainedLlava(str(directory))
    codec, model = backbone.codec(), backbone.build().eval()
    ids = codec.encode_prompt(INSTRUCTION)
    before, after, n = split_at_image(ids, codec.image_token_id)
    # Shikra's prompt: <im_start> + <im_patch> * n + <im_end>, tokenized as one text by its own tokenizer.
    patches = "<im_start>" + "<im_patch>" * n + "<im_end>"
    assert ids.tolist() == world["shikra_tok"](f"{SYSTEM} USER: {patches} {INSTRUCTION} ASSISTANT:").input_ids
    assert world["shikra_tok"].convert_ids_to_tokens([before[-1], after[0]]) == ["<im_start>", "<im_end>"]
    processor = CLIPImageProcessor.from_pretrained(world["clip"])
    pixels = processor(images=expand2square(IMAGE, (255, 255, 255)), return_tensors="pt")["pixel_values"][0]
    assert torch.equal(codec.image(IMAGE), pixels)
    with torch.no_grad():
        ours = model(input_ids=ids[None], pixel_values=pixels[None]).logits[0]
    torch.testing.assert_close(ours, reference(before, after, pixels), atol=1e-5, rtol=1e-5)


def test_shikra_logits_match_the_original_forward(world, shikra_original):
    shikra_reference_check(world["root"] / "genixer_s", shikra_original, world)
    assert PretrainedLlava(str(world["root"] / "genixer_s")).config.projector_hidden_act == "linear"


def test_shikra_tower_saved_in_the_checkpoint_wins_over_the_named_one(world, tmp_path):
    """A tower inside the weights (``model.vision_tower.*``) is used; the named dir gives only its config."""
    source = tmp_path / "shikra"
    shutil.copytree(world["root"] / "shikra", source)
    torch.manual_seed(5)
    tower = CLIPVisionModel.from_pretrained(world["clip"])
    with torch.no_grad():
        for p in tower.parameters():
            p.add_(0.05 * torch.randn_like(p))
    # Saved by transformers 4.x: CLIPVisionModel's weights under vision_model.
    inside = {**world["shikra_state"], **{"model.vision_tower.vision_model." + k.removeprefix("vision_model."): t
                                          for k, t in tower.state_dict().items()}}
    write_weights(source, inside, 1, "bin")
    convert_shikra(source, tmp_path / "out", vision_tower=str(world["clip"]))
    key = "encoder.layers.0.mlp.fc1.weight"
    (ours,) = [t for k, t in tower.state_dict().items() if k.endswith(key)]
    assert torch.equal(stored(tmp_path / "out", key), ours)
    assert json.loads((tmp_path / "out/conversion.json").read_text())["vision_weights"] == "checkpoint"


def test_shikra_delta_round_trip_through_the_cli(world, shikra_original, tmp_path):
    """make_delta's inverse: base (Vicuna, fewer rows) + delta == the Shikra checkpoint, then converted."""
    target = world["shikra_state"]
    torch.manual_seed(3)
    base_tok = llama_tokenizer()
    base = LlamaForCausalLM(LlamaConfig(**TEXT, vocab_size=len(base_tok))).state_dict()
    base["model.layers.1.self_attn.rotary_emb.inv_freq"] = torch.ones(8)  # an old transformers buffer: ignored
    rows = len(base_tok)
    delta = {}
    for name, t in target.items():
        if name in base and base[name].shape == t.shape:
            delta[name] = t - base[name]
        elif name in base:  # embed_tokens / lm_head: the base fills the leading rows
            delta[name] = torch.cat([t[:rows] - base[name], t[rows:]])
        else:  # the projector and old buffers
            delta[name] = t.clone()
    (tmp_path / "vicuna").mkdir()
    write_weights(tmp_path / "vicuna", base, 1)
    shutil.copytree(world["root"] / "shikra", tmp_path / "delta")
    write_weights(tmp_path / "delta", delta, 3, "bin")

    merged = apply_delta(tmp_path / "vicuna", tmp_path / "delta")
    for name, t in target.items():
        if "inv_freq" not in name:
            torch.testing.assert_close(merged[name], t, atol=1e-6, rtol=0)
    cli(["shikra-delta", str(tmp_path / "delta"), str(tmp_path / "out"), "--base", str(tmp_path / "vicuna"),
         "--vision-tower", str(world["clip"]), "--dtype", "float32"])
    shikra_reference_check(tmp_path / "out", shikra_original, world)
    record = json.loads((tmp_path / "out/conversion.json").read_text())
    assert record["layout"] == "shikra-delta" and record["base"] == str((tmp_path / "vicuna").resolve())

    delta["model.unknown.weight"] = torch.zeros(2)
    write_weights(tmp_path / "delta", delta, 1, "bin")
    with pytest.raises(ConversionError, match=r"model.unknown.weight \(not in the base\)"):
        apply_delta(tmp_path / "vicuna", tmp_path / "delta")


# -- errors ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def broken_llava(world, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(world["root"] / "hf"))
    source = tmp_path / "llava"
    shutil.copytree(world["root"] / "llava", source)
    return source


def test_missing_shard_is_named(broken_llava, tmp_path):
    (broken_llava / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ConversionError, match="lists shards that are not in .*: model-00002-of-00002.safetensors"):
        convert_llava(broken_llava, tmp_path / "out")


def test_unknown_and_missing_keys_are_listed(broken_llava, world, tmp_path):
    state = dict(world["llava_state"])
    del state["model.layers.1.mlp.up_proj.weight"]
    state["model.vision_resampler.weight"] = torch.zeros(3)
    write_weights(broken_llava, state, 2)
    with pytest.raises(ConversionError, match=r"unexpected keys .*: model.vision_resampler.weight; "
                                              r"missing keys: model.layers.1.mlp.up_proj.weight"):
        convert_llava(broken_llava, tmp_path / "out")


def test_wrong_dtype_is_listed(broken_llava, world, tmp_path):
    state = {**world["llava_state"], "model.norm.weight": torch.ones(TEXT["hidden_size"], dtype=torch.int8)}
    write_weights(broken_llava, state, 2)
    with pytest.raises(ConversionError, match=r"float16, bfloat16 or float32, got model.norm.weight \(torch.int8\)"):
        convert_llava(broken_llava, tmp_path / "out")


def test_a_checkpoint_of_another_layout_is_refused(world, tmp_path):
    with pytest.raises(ConversionError, match="not a LLaVA-1.5 config: mm_projector_type 'linear"):
        convert_llava(world["root"] / "shikra", tmp_path / "out")
    with pytest.raises(ConversionError, match="already in the llava-hf layout"):
        convert_shikra(world["root"] / "genixer_s", tmp_path / "out")
    with pytest.raises(ConversionError, match="exists and is not empty"):
        convert_shikra(world["root"] / "shikra", world["root"] / "genixer_l")


def test_missing_vision_tower_names_the_cache_entry(broken_llava, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    with pytest.raises(ConversionError, match=r"looked for .*empty/hub/models--openai--tiny-clip/snapshots"):
        convert_llava(broken_llava, tmp_path / "out")
    with pytest.raises(SystemExit, match="--vision-tower"):
        cli(["llava", str(broken_llava), str(tmp_path / "out"), "--vision-tower", "org/absent"])


def test_pretrained_llava_takes_a_model_id_from_the_hf_cache(world, tmp_path, monkeypatch):
    entry = tmp_path / "hf/hub/models--anon--genixer-l"
    shutil.copytree(world["root"] / "genixer_l", entry / "snapshots/feed42")
    (entry / "refs").mkdir()
    (entry / "refs/main").write_text("feed42")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert PretrainedLlava("anon/genixer-l").directory == entry / "snapshots/feed42"
    with pytest.raises(FileNotFoundError, match=r"looked for .*hf/hub/models--anon--absent/snapshots"):
        resolve_checkpoint("anon/absent")
