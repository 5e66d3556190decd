"""The MLLM judge: items per task family, P(Yes) from one forward pass (Fuyu and LLaVA), batching, failures."""
from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from transformers import FuyuForCausalLM, FuyuImageProcessor, FuyuProcessor, LlavaProcessor

from conftest import generated
from genixer.backbones.conversation import Conversation
from genixer.backbones.llava import TinyLlava
from genixer.filtering.fuyu_inputs import FuyuInputs
from genixer.filtering.judge import FUYU_PATCHES, FUYU_PROMPT, FuyuJudge, LlavaJudge, judge_text
from genixer.filtering.scorer import ItemCollator, ItemDataset
from genixer.miniworld.models.tiny_fuyu import fuyu_config, fuyu_processor
from genixer.runs.shards import ShardWriter
from genixer.filtering.module import FilterModule

SYSTEM = "A chat between a curious user and an artificial intelligence assistant."
QA = [("What color is the star?", "red"), ("How many circles are there?", "There are three circles."),
      ("What is the shape of the green object?\nA. star\nB. circle\nC. square", "C. square")]
ANSWERS = "\nYes\nyes\nYES\nNo\nno\nNO Yes yes YES No no NO"
CORPUS = [FUYU_PROMPT.format(f"Question: {q} Answer: {a}") + ANSWERS for q, a in QA] * 20
SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "max_position_embeddings": 256, "initializer_range": 0.5}  # a large init: peaked, varied P(Yes)
YES_FORMS = [p + w for w in ("Yes", "yes", "YES") for p in ("", "▁")]
NO_FORMS = [p + w for w in ("No", "no", "NO") for p in ("", "▁")]


MC = "Question: What is the shape of the green object?\nA. star\nB. circle\nC. square\nAnswer: C"
ROWS = [
    generated("common_vqa", "Question: What color is the star? Answer: red", "1/common_vqa/0", "a.png"),
    generated("md", "\n".join(f"Question: {q}\nAnswer: {a}" for q, a in QA[:2]), "1/md/0", "b.png"),
    generated("mc_vqa", MC, "1/mc_vqa/0", "c.png"),
    generated("agnostic", "Question: Is there a star? Answer: yes", "1/agnostic/0", "a.png"),
    generated("agnostic", "Question: Where is the star? Answer: [0.100,0.200,0.300,0.400]", "1/agnostic/1", "a.png"),
    {"id": "1/long_qa/0", "image": "a.png", "task": "long_qa", "status": "rejected", "reason": "answer too short"},
]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for name, size, colour in [("a.png", (90, 60), (200, 20, 20)), ("b.png", (60, 60), (20, 200, 20)),
                               ("c.png", (150, 90), (20, 20, 200))]:
        Image.new("RGB", size, colour).save(root / name)
    return root


@pytest.fixture(scope="module")
def fuyu(tmp_path_factory):
    directory = tmp_path_factory.mktemp("fuyu")
    processor = fuyu_processor(CORPUS, vocab_size=300, max_size=(90, 120))
    torch.manual_seed(0)
    FuyuForCausalLM(fuyu_config(processor, **SIZES)).save_pretrained(directory)
    processor.save_pretrained(directory)
    return FuyuJudge(str(directory))


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    directory = tmp_path_factory.mktemp("llava")
    backbone = TinyLlava(
        Conversation("vicuna_v1", SYSTEM), image_size=32, vocab_size=300, max_length=256,
        vision={"patch_size": 8, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 2},
        text={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "initializer_range": 0.5})
    codec = backbone.codec(CORPUS)
    torch.manual_seed(0)
    backbone.save(backbone.build(codec), codec, directory)
    return LlavaJudge(str(directory))


def all_items(judge):
    return [item for r in ROWS for item in judge.items(r)]


def scored(judge, items, root, batch_size):
    model = judge.build().eval()
    collate = ItemCollator(judge)
    lines = []
    for batch in DataLoader(ItemDataset(judge, items, root), batch_size=batch_size, collate_fn=collate):
        lines += judge.score(model, batch["inputs"], batch["meta"])
    return {line["id"]: line for line in lines}


def test_items_one_per_qa_pair_of_judged_families():
    judge = FuyuJudge("unused")  # items never touch the model
    items = all_items(judge)
    assert [i["id"] for i in items] == ["1/common_vqa/0#0", "1/md/0#0", "1/md/0#1", "1/mc_vqa/0#0", "1/agnostic/0#0"]
    md = [i for i in items if i["row_id"] == "1/md/0"]
    assert [(i["question"], i["answer"], i["pair"], i["image"]) for i in md] == [(*QA[0], 0, "b.png"), (*QA[1], 1, "b.png")]
    mc = next(i for i in items if i["row_id"] == "1/mc_vqa/0")
    assert (mc["question"], mc["answer"]) == QA[2]
    assert ROWS[3]["family"] == "common_vqa" and ROWS[4]["family"] == "rec"
    assert judge.items(ROWS[4]) == []  # REC-shaped agnostic output: a box, no text answer
    assert FuyuJudge("unused", families=["md"]).items(ROWS[0]) == []
    assert judge.text(mc) == ("Here is a question and answer pair. Is 'Question: What is the shape of the green object?"
                              "\nA. star\nB. circle\nC. square Answer: C. square' true for this image?"
                              "\nPlease answer this question with Yes or No.\n")
    with pytest.raises(ValueError, match="placeholder"):
        FuyuJudge("unused", prompt="Is it true?")


def hand_p_yes(logits: torch.Tensor, vocab: dict) -> tuple[float, float]:
    probs = logits.float().softmax(-1)
    yes = sum(probs[vocab[f]] for f in YES_FORMS if f in vocab)
    no = sum(probs[vocab[f]] for f in NO_FORMS if f in vocab)
    return float(yes / (yes + no)), float(yes + no)


def test_fuyu_p_yes_equals_hand_computation(fuyu, images):
    vocab = fuyu.tokenizer.get_vocab()
    assert sum(f in vocab for f in YES_FORMS) >= 3 and sum(f in vocab for f in NO_FORMS) >= 3
    assert [fuyu.tokenizer.convert_ids_to_tokens(i) for i in fuyu.answer_ids[0]] == sorted(
        (f for f in YES_FORMS if f in vocab), key=vocab.get)
    model = fuyu.build().eval()
    item = all_items(fuyu)[3]
    prompt = f"Here is a question and answer pair. Is 'Question: {item['question']} Answer: {item['answer']}' " \
             "true for this image?\nPlease answer this question with Yes or No.\n"
    inputs = fuyu.processor(images=Image.open(images / item["image"]), text=prompt, return_tensors="pt")
    assert fuyu.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0, -1].item()) == "<0x04>"
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                       **{FUYU_PATCHES: inputs[FUYU_PATCHES]}).logits[0, -1]
    p_yes, mass = hand_p_yes(logits, vocab)
    batch = fuyu.collate([fuyu.load(item, images)])
    line = fuyu.score(model, batch, [{"id": item["id"], "row_id": item["row_id"]}])[0]
    assert line["p_yes"] == pytest.approx(p_yes, abs=1e-5) and line["yes_no_mass"] == pytest.approx(mass, abs=1e-5)
    assert line["verdict"] == ("Yes" if p_yes >= 0.5 else "No") and 0 < mass < 1


def processor_inputs(processor, image, text):
    out = processor(images=image, text=text, return_tensors="pt")
    return out["input_ids"][0], out[FUYU_PATCHES].reshape(-1, out[FUYU_PATCHES].shape[-1])


def noise(width, height, seed=0):
    pixels = torch.randint(0, 256, (height, width, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


# (width, height): landscape, portrait, tiny, odd (not whole 30-pixel patches), exact canvas, larger (downscaled)
CANVAS_SIZES = [(640, 480), (480, 640), (1, 1), (7, 5), (61, 31), (1920, 1080), (1921, 1081), (2500, 1100),
                (1000, 2600), (2000, 1125)]


@pytest.fixture(scope="module")
def canvas_inputs(fuyu):
    """Fuyu-8B's image processor (1080x1920 canvas, 30x30 patches) with the tiny tokenizer."""
    return FuyuInputs(FuyuProcessor(FuyuImageProcessor(), fuyu.processor.tokenizer))


@pytest.mark.parametrize("size", CANVAS_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fast_inputs_equal_the_processor_on_fuyus_canvas(canvas_inputs, size):
    image, text = noise(*size), judge_text(FUYU_PROMPT, *QA[2])
    want_ids, want_patches = processor_inputs(canvas_inputs.processor, image, text)
    ids, patches = canvas_inputs(image, text)
    assert torch.equal(ids, want_ids) and torch.equal(patches, want_patches)


def test_fast_inputs_equal_the_processor_in_the_judge(fuyu, images):
    """The tiny judge's 90x120 canvas: its items load alike either way (grid shapes cached), and small ones."""
    reference = FuyuJudge(fuyu.path, fast_inputs=False)
    for item in all_items(fuyu) * 2:
        fast, slow = fuyu.load(item, images), reference.load(item, images)
        assert torch.equal(fast["input_ids"], slow["input_ids"]) and torch.equal(fast["image"], slow["image"])
    for size in [(200, 50), (31, 400), (119, 89), (45, 45)]:
        image, text = noise(*size, seed=1), judge_text(FUYU_PROMPT, *QA[1])
        ids, patches = fuyu.inputs(image, text)
        want_ids, want_patches = processor_inputs(fuyu.processor, image, text)
        assert torch.equal(ids, want_ids) and torch.equal(patches, want_patches)


def test_fast_inputs_that_drift_from_the_processor_stop_the_run(fuyu, images, monkeypatch):
    """The first item each process loads is checked against the processor: a transformers upgrade cannot go unseen."""
    judge = FuyuJudge(fuyu.path)
    fast = FuyuInputs.__call__
    monkeypatch.setattr(FuyuInputs, "__call__", lambda self, image, text: (lambda ids, p: (ids, p + 1e-3))(
        *fast(self, image, text)))
    with pytest.raises(RuntimeError, match="fast_inputs=false"):
        judge.load(all_items(fuyu)[0], images)


def test_llava_p_yes_equals_hand_computation(llava, images):
    """Our checkpoint, read by plain HF: the human turn with the image, then ``ASSISTANT:``."""
    model = llava.build().eval()
    item = all_items(llava)[1]  # a square image: HF's centre crop and our LLaVA-1.5 padding agree
    processor = LlavaProcessor.from_pretrained(llava.path)
    conversation = Conversation.load(llava.path)
    prompt = conversation.prompt([], "<image>\n" + FUYU_PROMPT.format(f"Question: {item['question']} Answer: {item['answer']}"))
    assert prompt.endswith("Yes or No.\n ASSISTANT:")
    inputs = processor(text=prompt, images=Image.open(images / item["image"]).convert("RGB"), return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
    p_yes, mass = hand_p_yes(logits, processor.tokenizer.get_vocab())
    line = llava.score(model, llava.collate([llava.load(item, images)]), [{"id": item["id"], "row_id": item["row_id"]}])[0]
    assert line["p_yes"] == pytest.approx(p_yes, abs=1e-5) and line["yes_no_mass"] == pytest.approx(mass, abs=1e-5)


@pytest.mark.parametrize("arch", ["fuyu", "llava"])
def test_batched_left_padded_equals_one_at_a_time(arch, request, images):
    judge = request.getfixturevalue(arch)
    items = all_items(judge)
    lengths = {len(judge.load(i, images)["input_ids"]) for i in items}
    assert len(lengths) > 1  # the batch really is padded
    together, alone = scored(judge, items, images, len(items)), scored(judge, items, images, 1)
    assert together.keys() == alone.keys() == {i["id"] for i in items}
    for key, line in together.items():
        assert line["p_yes"] == pytest.approx(alone[key]["p_yes"], abs=1e-5)
        assert line["yes_no_mass"] == pytest.approx(alone[key]["yes_no_mass"], abs=1e-5)
    p = [line["p_yes"] for line in together.values()]
    assert max(p) - min(p) > 0.01  # items score differently, so a mix-up would show


def test_missing_yes_no_is_a_build_error(tmp_path):
    processor = fuyu_processor(["the cat sat on a mat; a dog barked at it"] * 10, vocab_size=200)
    processor.save_pretrained(tmp_path)  # no weights: the error comes first
    with pytest.raises(ValueError, match="no single-token Yes"):
        FuyuJudge(str(tmp_path)).build()


def test_missing_image_is_an_error_line_and_summaries(fuyu, images):
    items = fuyu.items(ROWS[1])
    items[1] = {**items[1], "image": "missing.png"}
    batch = ItemCollator(fuyu)([ItemDataset(fuyu, items, images)[k] for k in range(2)])
    assert batch["failed"] == [{"id": "1/md/0#1", "row_id": "1/md/0", "status": "error",
                                "reason": batch["failed"][0]["reason"]}]
    assert batch["failed"][0]["reason"].startswith("image: FileNotFoundError")
    lines = fuyu.score(fuyu.build().eval(), batch["inputs"], batch["meta"]) + batch["failed"]
    summary = fuyu.summarize(lines)
    assert summary == {"p_yes": [lines[0]["p_yes"], None], "verdict": [lines[0]["verdict"], None],
                       "p_yes_min": lines[0]["p_yes"], "pairs": 2, "status": "error", "reason": lines[1]["reason"]}
    ok = fuyu.summarize([{"p_yes": 0.8, "verdict": "Yes"}, {"p_yes": 0.3, "verdict": "No"}])
    assert ok == {"p_yes": [0.8, 0.3], "verdict": ["Yes", "No"], "p_yes_min": 0.3, "pairs": 2}
    assert fuyu.config() == {"architecture": "FuyuJudge", "model": fuyu.path, "prompt": FUYU_PROMPT,
                             "max_pixels": None, "families": None}


def test_filter_module_predicts_both_judges_end_to_end(fuyu, llava, images, tmp_path):
    """The stage's contract: an ItemDataset loader per scorer, FilterModule, Lightning predict, shard writer."""
    loaders, want = [], []
    broken = {"id": "9/common_vqa/0#0", "row_id": "9/common_vqa/0", "image": "nope.png", "question": "Q?", "answer": "A"}
    for judge in (fuyu, llava):
        items = all_items(judge)
        want.append({key: line["p_yes"] for key, line in scored(judge, items, images, 1).items()})
        dataset = ItemDataset(judge, [*items, broken], images)
        loaders.append(DataLoader(dataset, batch_size=3, collate_fn=ItemCollator(judge)))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[ShardWriter(tmp_path)],
                        enable_progress_bar=False, enable_model_summary=False)
    module = FilterModule([fuyu, llava])
    trainer.predict(module, loaders, return_predictions=False)
    lines = [json.loads(x) for x in (tmp_path / "rank0.jsonl").read_text().splitlines()]
    # FLOPs for the run's hardware limit: 2 x parameters x every real input token of the items scored
    tokens = [sum(len(judge.load(item, images)["input_ids"]) for item in all_items(judge)) for judge in (fuyu, llava)]
    params = [sum(p.numel() for p in judge.build().parameters()) for judge in (fuyu, llava)]
    assert module.total_flops == pytest.approx(2 * (params[0] * tokens[0] + params[1] * tokens[1]))
    assert len(lines) == 12  # predict runs loader 0 (Fuyu), then loader 1 (LLaVA)
    for got, expected in zip((lines[:6], lines[6:]), want):
        errors = [line for line in got if "status" in line]
        assert len(errors) == 1 and errors[0]["id"] == broken["id"] and errors[0]["status"] == "error"
        p_yes = {line["id"]: line["p_yes"] for line in got if "status" not in line}
        assert p_yes == pytest.approx(expected, abs=1e-5)


def test_compile_layers_compiles_every_decoder_layer_and_refuses_a_model_without(fuyu, llava):
    from genixer.filtering.judge import FuyuJudge, LlavaJudge

    for judge in (FuyuJudge(fuyu.path, compile_layers=True), LlavaJudge(llava.path, compile_layers=True)):
        layers = [m for m in judge.build().modules() if type(m).__name__.endswith("DecoderLayer")]
        assert len(layers) == 2 and all(layer._compiled_call_impl is not None for layer in layers)
    assert all(m._compiled_call_impl is None for m in fuyu.build().modules())   # off by default
    with pytest.raises(ValueError, match="no \\*DecoderLayer"):
        FuyuJudge(fuyu.path, compile_layers=True).compiled(torch.nn.Linear(2, 2))
