"""Conversation rendering, label masking, image padding and the tiny LLaVA backbone."""
from __future__ import annotations

import warnings

import pytest
import torch
from PIL import Image
from transformers import LlavaProcessor

from genixer.backbones.codec import IGNORE_INDEX
from genixer.backbones.conversation import Conversation
from genixer.backbones.llava import PretrainedLlava, TinyLlava, num_image_tokens
from genixer.data.images import pad_to_square

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
CONV = Conversation("vicuna_v1", SYSTEM)
TARGETS = [
    "Question: What color is the small star? Answer: red",
    "Question: Where is the blue circle in the image? Answer: [0.031,0.250,0.500,0.994]",
]
TINY = dict(
    image_size=32, vocab_size=400, max_length=128,
    vision=dict(patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2),
    text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, tie_word_embeddings=True),
)


def tiny_codec():
    backbone = TinyLlava(CONV, **TINY)
    corpus = [*TARGETS, "Look at the image and write a question with its answer.\nThis is the Common VQA task."] * 20
    return backbone, backbone.codec(corpus)


def test_vicuna_v1_rendering_matches_spec():
    text, spans = CONV.render([("<image>\nInstr.", "Question: Q? Answer: A"), ("More?", "Yes")])
    assert text == (SYSTEM + " USER: <image>\nInstr. ASSISTANT: Question: Q? Answer: A</s>USER: More? ASSISTANT: Yes</s>")
    assert [text[a:b] for a, b in spans] == [" Question: Q? Answer: A</s>", " Yes</s>"]
    assert CONV.prompt([], "<image>\nInstr.") == SYSTEM + " USER: <image>\nInstr. ASSISTANT:"


def test_label_masking_decodes_to_target_plus_eos():
    _, codec = tiny_codec()
    for target in TARGETS:
        ids, labels = codec.encode_train([(codec.human_message("Look at the image and write a question."), target)])
        supervised = labels[labels != IGNORE_INDEX]
        assert codec.tokenizer.decode(supervised) == target + "</s>"
        assert (ids == codec.image_token_id).sum() == codec.num_image_tokens == 16
        assert (labels[ids == codec.image_token_id] == IGNORE_INDEX).all()
        assert ids[0] == codec.tokenizer.bos_token_id and labels[0] == IGNORE_INDEX


def test_multi_turn_masking_supervises_every_reply():
    _, codec = tiny_codec()
    turns = [(codec.human_message("Look."), TARGETS[0]), ("And this?", TARGETS[1])]
    _, labels = codec.encode_train(turns)
    runs, current = [], []
    for token in labels.tolist() + [IGNORE_INDEX]:
        if token != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs.append(codec.tokenizer.decode(current))
            current = []
    assert runs == [TARGETS[0] + "</s>", TARGETS[1] + "</s>"]


def test_prompt_ends_with_assistant_and_decode_stops_at_eos():
    _, codec = tiny_codec()
    ids = codec.encode_prompt("Look.")
    assert codec.tokenizer.decode(ids[-3:]).endswith("ASSISTANT:")
    answer = codec.tokenizer(TARGETS[0], add_special_tokens=False)["input_ids"]
    eos = codec.tokenizer.eos_token_id
    assert codec.decode(answer + [eos] + answer) == TARGETS[0]


def test_pad_to_square_centres_with_colour():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    square = pad_to_square(image, (1, 2, 3))
    assert square.size == (40, 40)
    assert square.getpixel((0, 0)) == (1, 2, 3) and square.getpixel((20, 20)) == (255, 0, 0)
    assert square.getpixel((20, 9)) == (1, 2, 3) and square.getpixel((20, 10)) == (255, 0, 0)


def test_tiny_llava_trains_saves_and_reloads(tmp_path):
    backbone, codec = tiny_codec()
    model = backbone.build(codec)
    assert num_image_tokens(model.config) == codec.num_image_tokens
    ids, labels = codec.encode_train([(codec.human_message("Look."), TARGETS[1])])
    pixels = codec.image(Image.new("RGB", (48, 30), (0, 0, 255)))[None]
    out = model(input_ids=ids[None], labels=labels[None], pixel_values=pixels)
    assert torch.isfinite(out.loss)
    backbone.save(model, codec, tmp_path)
    hf = LlavaProcessor.from_pretrained(tmp_path)  # plain HF loading, no genixer code
    prompt = codec.conversation.prompt([], codec.human_message("Look."))
    assert torch.equal(hf(text=prompt, images=Image.new("RGB", (32, 32)), return_tensors="pt")["input_ids"][0],
                       codec.encode_prompt("Look."))
    loaded = PretrainedLlava(str(tmp_path))
    codec2 = loaded.codec()
    model2 = loaded.build().eval()
    assert codec2.conversation == CONV and codec2.num_image_tokens == codec.num_image_tokens
    assert torch.equal(codec2.encode_prompt("Look."), codec.encode_prompt("Look."))
    with torch.no_grad():
        logits = model.eval()(input_ids=ids[None], pixel_values=pixels).logits
        assert torch.allclose(logits, model2(input_ids=ids[None], pixel_values=pixels).logits, atol=1e-5)


SHIKRA_LAYOUT = dict(image_token="<im_patch>", image_prefix="<im_start>", image_suffix="<im_end>", image_separator=" ")


def tiny_shikra():
    backbone = TinyLlava(Conversation("vicuna_v1.1", SYSTEM), projector="linear", pad_color=(255, 255, 255),
                         image_layout=SHIKRA_LAYOUT, **TINY)
    return backbone, backbone.codec([*TARGETS, "Examine the image. This is a PointQA task."] * 20)


def test_shikra_prompt_masking_and_white_padding():
    _, codec = tiny_shikra()
    ids, labels = codec.encode_train([(codec.human_message("Examine the image."), TARGETS[1])])
    assert codec.tokenizer.decode(labels[labels != IGNORE_INDEX]) == TARGETS[1] + "</s>"
    tokens = codec.tokenizer.convert_ids_to_tokens(ids.tolist())
    k = tokens.index("<im_start>")
    assert tokens[k + 1 : k + 17] == ["<im_patch>"] * 16 and tokens[k + 17] == "<im_end>"
    assert codec.human_message("Go.") == "<im_start><im_patch><im_end> Go."
    pixels = codec.image(Image.new("RGB", (32, 8), (0, 0, 0)))
    assert pixels[:, 0, 0].tolist() == codec.image(Image.new("RGB", (8, 8), (255, 255, 255)))[:, 0, 0].tolist()


def test_shikra_single_linear_projector_loads_without_custom_code(tmp_path):
    from transformers import LlavaForConditionalGeneration

    from genixer.training.generator import GeneratorModule

    backbone, codec = tiny_shikra()
    model = backbone.build(codec)
    projector = model.model.multi_modal_projector
    x = torch.randn(3, 32)
    assert torch.allclose(projector(x), projector.linear_1(x), atol=1e-6)
    backbone.save(model, codec, tmp_path)
    reloaded = LlavaForConditionalGeneration.from_pretrained(tmp_path)
    assert torch.allclose(reloaded.model.multi_modal_projector(x), projector.linear_1(x), atol=1e-6)
    codec2 = PretrainedLlava(str(tmp_path)).codec()
    assert (codec2.image_prefix, codec2.image_token, codec2.image.pad_color) == ("<im_start>", "<im_patch>", (255, 255, 255))
    module = GeneratorModule(PretrainedLlava(str(tmp_path)), codec2, torch.optim.AdamW, trainable=("projector",))
    module.configure_model()
    trained = {n for n, p in module.model.named_parameters() if p.requires_grad}
    assert trained == {"model.multi_modal_projector.linear_1.weight", "model.multi_modal_projector.linear_1.bias"}


def test_backbones_declare_their_sharding_blocks(tmp_path):
    """The decoder-layer classes a sharded strategy wraps come from the backbone, without building a model."""
    from transformers.models.clip.modeling_clip import CLIPEncoderLayer
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from genixer.backbones.protocol import Backbone

    backbone, codec = tiny_codec()
    assert isinstance(backbone, Backbone) and backbone.decoder_layers == (LlamaDecoderLayer, CLIPEncoderLayer)
    backbone.save(backbone.build(codec), codec, tmp_path)
    pretrained = PretrainedLlava(str(tmp_path))
    assert isinstance(pretrained, Backbone) and pretrained.decoder_layers == (LlamaDecoderLayer, CLIPEncoderLayer)


def test_digit_initial_reply_supervises_the_space_the_model_writes_first():
    """The prompt ends at "ASSISTANT:"; a reply "1" tokenizes as "▁" + "1" (digits split): the "▁" is generated
    first, so it must be a label (it was not: models never learnt to answer count questions)."""
    backbone = TinyLlava(CONV, **TINY)
    codec = backbone.codec([f"{SYSTEM} USER: How many circles are there? ASSISTANT: 1 2 red"] * 20)
    for reply in ("1", "red"):
        ids, labels = codec.encode_train([(codec.human_message("How many circles are there?"), reply)])
        prompt = codec.encode_prompt("How many circles are there?")
        assert torch.equal(ids[: len(prompt)], prompt)   # the prompt is the training text's prefix
        assert (labels[: len(prompt)] == IGNORE_INDEX).all() and (labels[len(prompt):] != IGNORE_INDEX).all()
        assert codec.tokenizer.decode(ids[len(prompt):]).strip() == f"{reply}</s>"


def test_split_punctuation_gives_a_word_one_token_whatever_follows_it(tmp_path):
    """"squares?" (question) and "squares." (chain of thought) must share "▁squares" for a tiny model to copy it;
    the prompt stays the training text's prefix and the targets still decode exactly, after a save and reload."""
    corpus = [*TARGETS, "Are there any red squares? I can see a red square[0.1,0.2,0.3,0.4], but no blue squares.",
              "How many squares are there? Two squares.", "Examine the image. This is a PointQA task."] * 20
    words = {}
    for split in (False, True):
        backbone = TinyLlava(Conversation("vicuna_v1.1", SYSTEM), projector="linear", image_layout=SHIKRA_LAYOUT,
                             split_punctuation=split, **TINY)
        codec = backbone.codec(corpus)
        words[split] = [codec.tokenizer.tokenize(f"Any {w}")[-2:] for w in ("squares?", "squares.", "square[")]
        for target in (*TARGETS, corpus[2]):
            ids, labels = codec.encode_train([(codec.human_message("Examine the image."), target)])
            assert codec.tokenizer.decode(labels[labels != IGNORE_INDEX]) == target + "</s>"
            prompt = codec.encode_prompt("Examine the image.")
            assert torch.equal(ids[: len(prompt)], prompt)
    assert words[True] == [["▁squares", "?"], ["▁squares", "."], ["▁square", "["]]
    assert len({w[-1] for w in words[False]}) == 3 and "▁squares" not in {w[-1] for w in words[False]}
    model = backbone.build(codec)
    backbone.save(model, codec, tmp_path)
    reloaded = PretrainedLlava(str(tmp_path)).codec()
    assert reloaded.tokenizer.tokenize(corpus[2]) == codec.tokenizer.tokenize(corpus[2])


def test_a_training_sample_cut_at_max_length_warns():
    backbone, codec = tiny_codec()
    turns = [(codec.human_message("Look."), TARGETS[1])]
    full, _ = codec.encode_train(turns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec.encode_train(turns)   # fits: no warning
    codec.max_length = len(full) - 1
    with pytest.warns(UserWarning, match="max_length"):
        ids, labels = codec.encode_train(turns)
    assert len(ids) == len(labels) == len(full) - 1
