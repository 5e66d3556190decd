"""The Genixer paper's released files read into our records: hand-made rows of every format, malformed rows
counted per reason (never fatal unless nothing is readable), image roots checked, and the original's
generation / Fuyu outputs turned into run dirs our filter stage takes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from conftest import CONF, compose_config, task
from genixer.data.sources.files import AnnotationError
from genixer.data.sources.genixer_outputs import GenixerOutputs, fuyu_verdict
from genixer.data.sources.llava_instruct import LLaVAInstruct
from genixer.data.sources.llava_jsonl import LLaVAJsonl
from genixer.data.sources.released_runs import main as import_released, write_generation_run
from genixer.data.sources.syn_rec import SyntheticREC
from genixer.runs.layout import RunDir, RunError


def image(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 60, 30)).save(path)
    return path


def jsonl(path: Path, rows: list) -> Path:
    """Rows as lines; a str row is written as it stands (a broken line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def chat(*pairs: str, first: str = "human") -> list[dict]:
    roles = ["human", "gpt"] if first == "human" else ["gpt", "human"]
    return [{"from": roles[k % 2], "value": v} for k, v in enumerate(pairs)]


# ---- LLaVA conversation jsonl (TrainDataforGenixerLLaVA, Genixer_915K/610K/300K, 665K + 8K) ------------------
LLAVA_ROWS = [
    {"id": "g1", "image": "sbu/0001.jpg", "conversations": chat("What is this?\n<image>", "Question: Is it red? Answer: yes")},
    {"id": 7, "image": "sbu/0002.jpg", "conversations": chat("Hi", "<image>\nWhy?", "Because.", first="gpt")},
    {"id": "g3", "image": "sbu/0001.jpg", "conversations": chat("<image>\nA?", "a", "B?")},   # unanswered last question
    "{\"id\": \"torn\", \"image\": ",
    "[1, 2]",
    {"image": "sbu/0001.jpg", "conversations": chat("<image>\nA?", "a")},                       # no id
    {"id": "r1", "image": "sbu/0001.jpg", "conversations": [{"from": "human", "value": "A?"}, {"from": "human", "value": "B?"}]},
    {"id": "r2", "image": "sbu/0001.jpg", "conversations": "A? a"},
    {"id": "r3", "image": "sbu/0001.jpg", "conversations": [{"from": "human", "value": "A?"}, {"from": "gpt", "value": 3}]},
    {"id": "r4", "image": 5, "conversations": chat("<image>\nA?", "a")},
    {"id": "t1", "conversations": chat("Write a poem.", "Roses ...")},                           # text-only
]


def test_llava_jsonl_records_and_exact_skip_counts(tmp_path):
    for name in ("0001.jpg", "0002.jpg"):
        image(tmp_path / "data/sbu" / name)
    root = tmp_path / "data"
    source = LLaVAJsonl(jsonl(tmp_path / "Genixer_300K.jsonl", LLAVA_ROWS), root)
    assert source.load() == [
        {"id": "g1", "image": str(root / "sbu/0001.jpg"),
         "turns": [{"question": "What is this?", "answer": "Question: Is it red? Answer: yes"}]},
        {"id": "7", "image": str(root / "sbu/0002.jpg"), "turns": [{"question": "Why?", "answer": "Because."}]},
        {"id": "g3", "image": str(root / "sbu/0001.jpg"), "turns": [{"question": "A?", "answer": "a"}]},
    ]
    assert source.skipped == {"bad JSON line": 1, "not a JSON object": 1, "missing field 'id'": 1,
                              "roles not alternating human, gpt": 1, "field 'conversations' not a non-empty list": 1,
                              "message without a string 'value'": 1, "field 'image' not a non-empty string": 1,
                              "text-only (no image)": 1}
    assert source.trimmed == {"leading gpt message dropped": 1, "unanswered last human message dropped": 1}


def test_llava_jsonl_min_turns_and_everything_malformed(tmp_path):
    image(tmp_path / "img/a.jpg")
    rows = [{"id": "1", "image": "a.jpg", "conversations": chat("<image>\nA?", "a", "B?", "b")},
            {"id": "2", "image": "a.jpg", "conversations": chat("<image>\nA?", "a")}]
    source = LLaVAJsonl(jsonl(tmp_path / "f.jsonl", rows), tmp_path / "img", min_turns=2)
    assert [r["id"] for r in source.load()] == ["1"] and source.skipped == {"fewer than min_turns": 1}
    with pytest.raises(AnnotationError, match=r"bad.jsonl: no usable row \(1 x bad JSON line, 1 x not a JSON object\)"):
        LLaVAJsonl(jsonl(tmp_path / "bad.jsonl", ["{", "3"]), tmp_path).load()
    with pytest.raises(AnnotationError, match=r"empty.jsonl: no usable row \(empty file\)"):
        LLaVAJsonl(jsonl(tmp_path / "empty.jsonl", []), tmp_path).load()
    with pytest.raises(AnnotationError, match="nope.jsonl: file not found"):
        LLaVAJsonl(tmp_path / "nope.jsonl", tmp_path).load()


MIX_665K = {  # LLaVA-1.5's mix: one data root, several image folders, text-only ShareGPT rows
    "000000033471": "coco/train2017/000000033471.jpg",
    "2354786": "gqa/images/2354786.jpg",
    "140031996": "ocr_vqa/images/140031996.jpg",
    "0054c91397f2fe05": "textvqa/train_images/0054c91397f2fe05.jpg",
    "vg_1": "vg/VG_100K/1.jpg",
    "vg_2": "vg/VG_100K_2/2.jpg",
}


def mix_665k(tmp: Path) -> Path:
    rows = [{"id": i, "image": path, "conversations": chat("<image>\nWhat is it?", f"It is {i}.")}
            for i, path in MIX_665K.items()]
    rows.insert(2, {"id": "i6IyJda_0", "conversations": chat("Write a haiku.", "Autumn ...", "Another?", "Snow ...")})
    for path in MIX_665K.values():
        image(tmp / "data" / path)
    return jsonl(tmp / "data/genixer/llava_mix665k_synthetic_8k.jsonl", rows)


def test_665k_mixed_roots_and_text_only_rows(tmp_path):
    path, root = mix_665k(tmp_path), tmp_path / "data"
    source = LLaVAJsonl(path, root)
    records = source.load()
    assert [(r["id"], r["image"]) for r in records] == [(i, str(root / p)) for i, p in MIX_665K.items()]
    assert all(Path(r["image"]).is_file() for r in records) and source.skipped == {"text-only (no image)": 1}
    kept = LLaVAJsonl(path, root, keep_text_only=True).load()
    assert kept[2] == {"id": "i6IyJda_0", "image": None, "turns": [{"question": "Write a haiku.", "answer": "Autumn ..."},
                                                                   {"question": "Another?", "answer": "Snow ..."}]}
    assert len(kept) == 7


def test_image_root_check_names_the_root_tried(tmp_path):
    path = mix_665k(tmp_path)
    wrong = tmp_path / "data/coco"
    with pytest.raises(AnnotationError, match=(
            rf"llava_mix665k_synthetic_8k.jsonl: image 'coco/train2017/000000033471.jpg' not found under image_root "
            rf"{wrong} \(tried {wrong}/coco/train2017/000000033471.jpg\): set image_root to the folder")):
        LLaVAJsonl(path, wrong).load()
    # LLaVA-Instruct names COCO train2017 files (000000xxxxxx.jpg): a train2014 root fails before any image is read.
    image(tmp_path / "coco/train2017/000000033471.jpg")
    instruct = tmp_path / "conversation_58k.json"
    instruct.write_text(json.dumps([{"id": "1", "image": "000000033471.jpg", "conversations": chat("<image>\nA?", "a")}]))
    with pytest.raises(AnnotationError, match=r"image '000000033471.jpg' not found under image_root .*coco/train2014"):
        LLaVAInstruct(instruct, tmp_path / "coco/train2014").load()
    assert LLaVAInstruct(instruct, tmp_path / "coco/train2017", min_turns=1).load()[0]["width"] == 8
    for name in ("llava_conversation_58k", "llava_detail_23k"):
        assert OmegaConf.to_container(OmegaConf.load(CONF / f"data/source/{name}.yaml"))["image_root"] == (
            "${paths.datasets}/coco/train2017")


def test_released_sources_in_a_mixture(tmp_path):
    """The shipped configs, composed as a training run would, read the files under paths.datasets."""
    mix_665k(tmp_path)
    cfg = compose_config("train", [f"paths.datasets={tmp_path / 'data'}", "data=mini_world",
                                   "data/mixture=released_conversations",
                                   "data/source@data.mixture.components.conversations.source=llava_mix665k_synthetic_8k"])
    mixture = instantiate(cfg.data.mixture)
    items = mixture.items()
    assert sorted(r["id"] for _, r in items) == sorted(MIX_665K) and mixture.components["conversations"].source.skipped == {
        "text-only (no image)": 1}
    name, record = items[0]
    assert mixture.tasks[name].turns(record) == [("What is it?", f"It is {record['id']}.")]


# ---- Shikra synthetic REC (syn_lcs_filtered60 / syn_sbu_filtered60) ----------------------------------------
RELEASED_REC = {"img_path": "00202/002023245.jpg", "bbox": [20, 204, 197, 333],
                "expression": "a black and yellow vintage record label", "height": 336, "width": 502, "clip_score": 62.36908}


def test_synthetic_rec_records_and_exact_skip_counts(tmp_path):
    image(tmp_path / "images/00202/002023245.jpg", (502, 336))
    rows = [RELEASED_REC,
            {**RELEASED_REC, "bbox": [-5, 300, 600, 400], "expression": "The sunflower is yellow. "},  # clamped into the image
            {**RELEASED_REC, "bbox": [50, 50, 50, 90]},                   # zero width
            {**RELEASED_REC, "bbox": [600, 10, 700, 20]},                 # outside the image
            {**RELEASED_REC, "clip_score": "62.3"},
            {**RELEASED_REC, "clip_score": None},
            {k: v for k, v in RELEASED_REC.items() if k != "expression"},
            {**RELEASED_REC, "bbox": [1, 2, 3]},
            {**RELEASED_REC, "width": 0},
            "{\"img_path\": \"00202/0020"]
    source = SyntheticREC(jsonl(tmp_path / "syn_lcs_filtered60.jsonl", rows), tmp_path / "images")
    path = str(tmp_path / "images/00202/002023245.jpg")
    records = source.load()
    assert records == [
        {"image": path, "expression": "a black and yellow vintage record label", "bbox": [20.0, 204.0, 197.0, 333.0],
         "width": 502, "height": 336, "clip_score": 62.36908},
        {"image": path, "expression": "The sunflower is yellow.", "bbox": [0.0, 300.0, 502.0, 336.0],
         "width": 502, "height": 336, "clip_score": 62.36908},
    ]
    assert source.skipped == {"degenerate bbox": 2, "field 'clip_score' not a finite number": 2,
                              "missing field 'expression'": 1, "field 'bbox' not 4 finite numbers": 1,
                              "field 'width' not a positive integer": 1, "bad JSON line": 1}
    # Our REC task trains on them as on RefCOCO rows: boxes normalized by the original size.
    assert task("rec").target(records[0], "k").endswith("Answer: [0.040,0.607,0.392,0.991]")
    with pytest.raises(AnnotationError, match=r"image '00202/002023245.jpg' not found under image_root .*sbu"):
        SyntheticREC(source.path, tmp_path / "sbu").load()


# ---- the original's generation outputs -> a generation run our filter takes ---------------------------------
def generation_row(qid, name, text, **extra) -> dict:
    return {"question_id": qid, "image": name, "text": text, "prompt": "Ask something.\nThis is the Common VQA task.",
            "answer_id": "abc", "model_id": "Genixer-llava-v1.5-7b", "metadata": {}, **extra}


def test_released_generation_outputs_refiltered_by_our_filter_stage(tmp_path):
    from genixer.pipelines import filter as filter_stage

    image(tmp_path / "flickr/1.jpg", (40, 30))
    image(tmp_path / "flickr/2.jpg", (30, 40))
    rows = [generation_row(1, "1.jpg", "Question: What colour is the wall? Answer: brown"),
            generation_row(2, "2.jpg", "The wall is brown."),                            # no Question:/Answer:
            generation_row(1, "2.jpg", "Question: Again? Answer: yes"),                   # repeated question_id
            {k: v for k, v in generation_row(3, "2.jpg", "x").items() if k != "text"},
            generation_row(4, "2.jpg", "Question: A? Answer: b", prompt=["not", "text"]),
            "not json"]
    reader = GenixerOutputs(jsonl(tmp_path / "merge.jsonl", rows), tmp_path / "flickr", task("common_vqa"))
    run = tmp_path / "run"
    manifest = write_generation_run(reader, run)
    assert manifest["stage"] == "generate" and manifest["rows"] == 2
    assert manifest["inputs"]["generator"] == "Genixer-llava-v1.5-7b" and manifest["inputs"]["task"] == "common_vqa"
    assert manifest["inputs"]["image_root"] == str((tmp_path / "flickr").resolve())
    assert manifest["counts"] == {"samples": 2, "status": {"ok": 1, "rejected": 1}, "reasons": {"rejected: missing question": 1},
                                  "left_out": {"duplicate question_id": 1, "missing field 'text'": 1,
                                               "field 'prompt' not a string": 1, "bad JSON line": 1}}
    ok, rejected = RunDir(run).rows("generate")
    assert (ok["id"], ok["image"], ok["status"], ok["family"]) == ("1/common_vqa/0", "1.jpg", "ok", "common_vqa")
    assert ok["qa_pairs"] == [{"question": "What colour is the wall?", "answer": "brown"}]
    assert ok["instruction"] == "Ask something.\nThis is the Common VQA task."
    assert ok["provenance"]["generator"] == "Genixer-llava-v1.5-7b" and ok["provenance"]["released"] == "merge.jsonl"
    assert (rejected["id"], rejected["status"], rejected["reason"]) == ("2/common_vqa/0", "rejected", "missing question")
    assert json.loads((run / "llava.json").read_text()) == [{"id": "1/common_vqa/0", "image": "1.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is the wall?"}, {"from": "gpt", "value": "brown"}]}]
    with pytest.raises(RunError, match="already holds a finished run"):
        write_generation_run(reader, run)

    # Our filter stage takes the imported run like one of ours (the tiny mini-world judge, on the CPU).
    out = run / "filter/judge_mini"
    counts = filter_stage.run(compose_config("filter", [f"paths.output_dir={out}", f"run={run}", "filter=judge_mini"]))
    assert counts["rows"] == 2 and counts["candidates"] == 1 and counts["not_ok_upstream"] == {"rejected": 1}
    [selected] = RunDir(out).rows("filter")
    assert selected["id"] == "1/common_vqa/0" and 0.0 <= selected["scores"]["judge"]["p_yes"][0] <= 1.0


# ---- the original's Fuyu filter outputs -> our judge's annotation, re-selected and re-exported -------------------
def fuyu_row(qid, answer, probability, **extra) -> dict:
    return {"question_id": qid, "image_path": "1.jpg", "question": f"Is there a cat {qid}?", "answer": "yes",
            "fuyu8b_results": answer, "probability": probability, "feedback": "", **extra}


def test_fuyu_verdicts():
    assert [fuyu_verdict(a) for a in ("Yes", " yes.", "No\n", "NO, it is not", "Maybe", "")] == [
        "Yes", "Yes", "No", "No", None, None]


def test_fuyu_outputs_mapped_to_judge_scores_and_reselected(tmp_path, capsys):
    image(tmp_path / "sbu/1.jpg")
    rows = [fuyu_row(1, "Yes", 0.62), fuyu_row(2, " No", 0.9), fuyu_row(3, "Yes", 0.95), fuyu_row(4, "Maybe", 0.8),
            fuyu_row(5, "Yes", "0.6"), fuyu_row(6, "Yes", 1.3), fuyu_row(7, None, 0.5), fuyu_row(1, "Yes", 0.5),
            {k: v for k, v in fuyu_row(8, "Yes", 0.5).items() if k != "image_path"}]
    path, out = jsonl(tmp_path / "fuyu_merge.jsonl", rows), tmp_path / "run"
    assert import_released(["fuyu", str(path), "--image-root", str(tmp_path / "sbu"), "--out", str(out), "--max", "0.7"]) == 0

    imported = {r["id"]: r for r in RunDir(out).rows("generate")}
    assert sorted(imported) == ["1/common_vqa/0", "2/common_vqa/0", "3/common_vqa/0", "4/common_vqa/0"]
    assert imported["1/common_vqa/0"]["qa_pairs"] == [{"question": "Is there a cat 1?", "answer": "yes"}]
    scores = {i: r["released_scores"]["fuyu8b"] for i, r in imported.items()}
    assert scores["1/common_vqa/0"] == {"fuyu8b_results": ["Yes"], "probability": [0.62], "feedback": [""],
                                        "p_yes": [0.62], "verdict": ["Yes"], "p_yes_min": 0.62, "pairs": 1}
    assert scores["2/common_vqa/0"]["verdict"] == ["No"] and scores["2/common_vqa/0"]["p_yes"] == [pytest.approx(0.1)]
    assert scores["4/common_vqa/0"]["status"] == "rejected"
    assert json.loads((out / "manifest.json").read_text())["counts"]["left_out"] == {
        "field 'probability' not a finite number": 1, "field 'probability' outside [0, 1]": 1,
        "field 'fuyu8b_results' not a string": 1, "duplicate question_id": 1, "missing field 'image_path'": 1}

    # The released verdicts re-selected by the paper's band (Fuyu said Yes, 0.5 <= p_yes <= 0.7), as a filter run of ours.
    selection = RunDir(out / "filter/fuyu8b")
    selected = {r["id"]: r for r in selection.rows("filter")}
    assert [i for i, r in selected.items() if r["kept"]] == ["1/common_vqa/0"]
    assert {i: r["drops"][0]["reason"] for i, r in selected.items() if not r["kept"]} == {
        "2/common_vqa/0": "fuyu8b: verdict not Yes", "3/common_vqa/0": "fuyu8b: p_yes > 0.7", "4/common_vqa/0": "fuyu8b rejected"}
    manifest = selection.read_manifest("filter")
    assert manifest["inputs"]["rules"]["fuyu_p_yes"]["max"] == 0.7 and manifest["counts"]["kept"] == 1
    assert [r["id"] for r in json.loads((selection.path / "llava.json").read_text())] == ["1/common_vqa/0"]
    assert import_released(["fuyu", str(path), "--image-root", str(tmp_path / "sbu"), "--out", str(out)]) == 2
    assert "already holds a finished run" in capsys.readouterr().err


def test_every_mixture_component_checks_its_first_images(tmp_path):
    """Any source (here the older RECJsonl, which never opens an image) fails at load under a wrong image root."""
    from genixer.data.mixture import Component, Mixture
    from genixer.data.sources.rec_jsonl import RECJsonl
    from genixer.tasks import REC, TemplatePool
    from genixer.tasks.templates import TEMPLATES_DIR

    Image.new("RGB", (20, 10)).save(tmp_path / "a.png")
    rows = tmp_path / "rec.jsonl"
    rows.write_text(json.dumps({"img_path": "a.png", "expression": "the dot", "bbox": [1, 1, 9, 9], "height": 10,
                                "width": 20}) + "\n")
    pool = TemplatePool(TEMPLATES_DIR / "generic_instructions.json")
    task = REC("rec", "", pool, TemplatePool(TEMPLATES_DIR / "rec_questions.json", placeholder="<expr>"))
    assert len(Mixture({"rec": Component(RECJsonl(rows, tmp_path), task)}, seed=0).items()) == 1
    wrong = Mixture({"rec": Component(RECJsonl(rows, tmp_path / "train2014"), task)}, seed=0)
    with pytest.raises(AnnotationError, match=r"component 'rec' \(RECJsonl\).*image_root tried: .*train2014"):
        wrong.items()
