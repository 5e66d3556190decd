"""Per-sample seeded sampling: exact draws from the filtered softmax, independent of batching."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import compose_config
from genixer.generation.sampling import PerSampleSampler, sample_seed
from genixer.pipelines import generate


def draw(logits: torch.Tensor, seed: int, **kw) -> int:
    sampler = PerSampleSampler([seed], prompt_length=3, **kw)
    return int(sampler(torch.zeros(1, 5, dtype=torch.long), logits[None]).argmax())


def test_gumbel_max_matches_softmax_and_filters():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    counts = torch.bincount(torch.tensor([draw(logits, s) for s in range(3000)]), minlength=4).float() / 3000
    assert torch.allclose(counts, logits.softmax(-1), atol=0.03)
    cold = torch.bincount(torch.tensor([draw(logits, s, temperature=0.25) for s in range(500)]), minlength=4)
    assert cold[0] > 450  # low temperature concentrates on the argmax
    assert {draw(logits, s, top_k=2) for s in range(300)} == {0, 1}
    assert {draw(logits, s, top_p=0.5) for s in range(300)} == {0}  # p(0) = 0.64 already covers 0.5
    # min-p 0.3 keeps p >= 0.3 * 0.64: tokens 0 and 1 (0.24), not 2 (0.09); at temperature 2 token 2 comes back
    assert {draw(logits, s, min_p=0.3) for s in range(300)} == {0, 1}
    assert {draw(logits, s, min_p=0.3, temperature=2.0) for s in range(300)} == {0, 1, 2}
    assert draw(logits, 7) == draw(logits, 7) and sample_seed(0, "a/b/0") != sample_seed(0, "a/b/1")


def test_sampled_text_does_not_depend_on_batching(tmp_path, small_world):
    world = [f"paths.mini_world={small_world}", "world=mini", "world.num_train=60", "world.num_heldout=12", "world.num_val=4"]
    texts = {}
    for batch_size in (1, 5):
        out = tmp_path / f"b{batch_size}"
        generate.run(compose_config("generate", [
            f"paths.output_dir={out}", f"batch_size={batch_size}", "samples_per_image=2", *world,
            "generation.do_sample=true", "generation.temperature=1.0", "generation.max_new_tokens=24"]))
        texts[batch_size] = {r["id"]: r["text"] for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    assert texts[1] == texts[5] and len(texts[1]) == 24
    pairs = [(texts[1][f"{i}/common_vqa/0"], texts[1][f"{i}/common_vqa/1"]) for i in range(1_000_001, 1_000_013)]
    assert sum(a != b for a, b in pairs) >= 3  # the two samples of an image really are different draws


def test_static_cache_loop_matches_hf_generate():
    """``cache: static`` (our loop) gives HF generate's tokens, greedy and per-sample sampled, with left padding."""
    from PIL import Image

    from conftest import ROOT
    from genixer.backbones.llava import PretrainedLlava
    from genixer.generation.queries import PromptCollator
    from genixer.generation.module import GenerationModule
    from genixer.generation.settings import Decoding

    backbone = PretrainedLlava(str(ROOT / "checkpoints/genixer_l_mini"), dtype="float32")
    codec = backbone.codec()
    prompts = ["Ask a question about the image and answer it.\nThis is the Common VQA task.",
               "Where is it?\nThis is a Referring Expression Comprehension (REC) task.", "Describe"]
    items = [{"meta": {"seed": 11 * k}, "input_ids": codec.encode_prompt(p),
              "pixel_values": codec.image(Image.effect_noise((90 + 20 * k, 80), 60).convert("RGB"))}
             for k, p in enumerate(prompts)]
    batch = PromptCollator(codec.tokenizer.pad_token_id)(items)
    assert len(set(batch["attention_mask"].sum(-1).tolist())) > 1  # rows are padded differently
    for sampling in ({"do_sample": False}, {"do_sample": True, "temperature": 1.5, "top_k": 20}):
        outputs = []
        for cache in ("dynamic", "static"):
            module = GenerationModule(backbone, codec, Decoding.from_config({"cache": cache, "max_new_tokens": 24, **sampling}))
            module.model = backbone.build(codec).eval()
            with torch.no_grad():
                outputs.append([codec.decode(ids) for ids in module.generate(batch)[0]])
        assert outputs[0] == outputs[1], sampling
    with pytest.raises(ValueError, match="unsupported"):  # refused before any model exists
        Decoding.from_config({"cache": "static", "max_new_tokens": 4, "num_beams": 2})
    assert Decoding.from_config({"cache": "static", "max_new_tokens": 4, "num_beams": 1}).kwargs == {"max_new_tokens": 4}
    assert Decoding.from_config({"max_new_tokens": 4, "num_beams": 3}).settings()["num_beams"] == 3
    with pytest.raises(ValueError, match="global RNG"):  # beams would sample from HF's one generator
        Decoding.from_config({"max_new_tokens": 4, "num_beams": 3, "do_sample": True, "temperature": 0.7})


def test_sample_tokens_samples_the_opening_only():
    from genixer.generation.settings import Decoding

    scores = torch.randn(2, 50)
    sampler = PerSampleSampler([1, 2], prompt_length=3, temperature=1.0, sample_tokens=2)
    for step in range(4):
        out = sampler(torch.zeros(2, 3 + step, dtype=torch.long), scores)
        assert torch.equal(out, scores) == (step >= 2)   # noise on the first 2 new tokens, greedy after
    decoding = Decoding.from_config({"max_new_tokens": 8, "do_sample": True, "temperature": 1.0, "sample_tokens": 3})
    assert decoding.sampling == {"temperature": 1.0, "sample_tokens": 3}
    assert Decoding.from_config({"max_new_tokens": 8, "sample_tokens": 3}).sampling == {}   # greedy: ignored
    with pytest.raises(ValueError, match="sample_tokens"):
        PerSampleSampler([1], 3, temperature=1.0, sample_tokens=0)


class WordVocab:
    vocab = {"▁the": 0, "▁red": 1, "▁blue": 2, "▁small": 3, "▁large": 4, "red": 5, "▁circle": 6, "▁b": 7, "i": 8, "g": 9}

    def get_vocab(self):
        return self.vocab

    def __len__(self):
        return len(self.vocab)

    def tokenize(self, text):
        return ["▁b", "i", "g"]


def test_word_groups_sample_the_group_and_write_its_best_word():
    """A group is drawn with its words' summed probability (an exact draw, like a token's), and the word written is
    always the group's most likely one; ungrouped tokens are drawn as before."""
    from genixer.generation.sampling import word_groups

    groups = word_groups(WordVocab(), [["red", "blue"], ["small", "large"]], vocab_size=12)
    assert [g.tolist() for g in groups] == [[1, 2, 5], [3, 4]]   # "red" with and without the word-start mark
    probs = torch.tensor([0.26, 0.2, 0.15, 0.1, 0.05, 0.05, 0.19, 0.0, 0.0, 0.0])
    logits = probs.clamp(min=1e-9).log()
    drawn = torch.tensor([draw(logits, s, word_groups=groups) for s in range(4000)])
    counts = torch.bincount(drawn, minlength=10).float() / 4000
    assert set(drawn.tolist()) == {0, 1, 3, 6}   # never blue, "red" without its mark, nor large: not their group's best
    assert torch.allclose(counts[[0, 1, 3, 6]], torch.tensor([0.26, 0.4, 0.15, 0.19]), atol=0.03)
    plain = torch.tensor([draw(logits, s) for s in range(4000)])
    assert {2, 4, 5} <= set(plain.tolist())   # without groups every word is drawn
    # the temperature warps each word first; a group then weighs what its words weigh at that temperature
    warm = (logits / 0.5).softmax(-1)
    cold = torch.bincount(torch.tensor([draw(logits, s, temperature=0.5, word_groups=groups) for s in range(4000)]),
                          minlength=10).float() / 4000
    expected = torch.stack([warm[0], warm[[1, 2, 5]].sum(), warm[[3, 4]].sum(), warm[6]])
    assert torch.allclose(cold[[0, 1, 3, 6]], expected, atol=0.03)
    assert {draw(logits, s, top_k=2, word_groups=groups) for s in range(300)} == {0, 1}   # filtered words have no mass
    with pytest.raises(ValueError, match="'big' is not one token"):
        word_groups(WordVocab(), [["big"]])
    with pytest.raises(ValueError, match="in two groups"):
        word_groups(WordVocab(), [["red"], ["red", "blue"]])


def test_word_groups_setting_is_checked():
    from genixer.generation.settings import Decoding

    base = {"max_new_tokens": 8, "do_sample": True, "temperature": 1.0}
    assert Decoding.from_config({**base, "word_groups": [["a", "b"], ["c"]]}).sampling == {
        "temperature": 1.0, "word_groups": [["a", "b"], ["c"]]}
    assert Decoding.from_config({**base, "word_groups": None}).sampling == {"temperature": 1.0}   # provenance as before
    for bad in ("red", ["red", "blue"], [[]], [["red", 3]]):
        with pytest.raises(ValueError, match="word_groups"):
            Decoding.from_config({**base, "word_groups": bad})


def test_greedy_boxes_decodes_inside_boxes_greedily():
    from genixer.generation.sampling import box_marks, inside_box, next_box_state
    from genixer.generation.settings import Decoding

    class Vocab:   # learnt vocabularies merge brackets into words
        vocab = {"▁a": 0, "▁circle[": 1, "0": 2, ".": 3, "],": 4, "▁[": 5, "]": 6, "▁x][": 7}

        def get_vocab(self):
            return self.vocab

        def __len__(self):
            return len(self.vocab)

    marks = box_marks(Vocab())
    assert marks.tolist() == [0, 1, 0, 0, 2, 1, 2, 1]
    assert box_marks(Vocab(), vocab_size=10).tolist() == marks.tolist() + [0, 0]   # a head padded past the tokenizer
    rows = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 4], [5, 3, 6, 0], [0, 7, 2, 2], [0, 0, 0, 0]])
    assert inside_box(marks, rows).tolist() == [True, False, False, True, False]
    torch.manual_seed(0)
    for length in range(7):   # the whole-history check (HF generate) equals the engine's step-by-step state
        tokens, state = torch.randint(0, len(marks), (64, length)), torch.zeros(64, dtype=torch.bool)
        for column in tokens.T:
            state = next_box_state(marks, state, column)
        assert torch.equal(inside_box(marks, tokens), state) and (length < 3 or 0 < int(state.sum()) < 64)
    scores = torch.randn(len(rows), 8)
    prompt = torch.zeros(len(rows), 3, dtype=torch.long)
    out = PerSampleSampler(list(range(len(rows))), 3, temperature=1.0, box_marks=marks)(torch.cat([prompt, rows], 1), scores)
    plain = PerSampleSampler(list(range(len(rows))), 3, temperature=1.0)(torch.cat([prompt, rows], 1), scores)
    for row, boxed in enumerate([True, False, False, True, False]):
        assert torch.equal(out[row], scores[row] if boxed else plain[row]) and not torch.equal(plain[row], scores[row])
    assert Decoding.from_config({"max_new_tokens": 8, "do_sample": True, "temperature": 1.0,
                                 "greedy_boxes": True}).sampling == {"temperature": 1.0, "greedy_boxes": True}
    with pytest.raises(ValueError, match="greedy_boxes"):
        Decoding.from_config({"max_new_tokens": 8, "do_sample": True, "temperature": 1.0, "greedy_boxes": "yes"})
    assert Decoding.from_config({"max_new_tokens": 8, "do_sample": True, "temperature": 1.0,
                                 "greedy_boxes": False}).sampling == {"temperature": 1.0}   # provenance as before
