"""The study (study.py): training files, results, and the whole command on CPU in small (experiment=study_ci)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genixer.backbones.codec import IGNORE_INDEX
from genixer.data.instructions import InstructionDataset
from genixer.study import datasets, results
from genixer.tasks import Conversation
from test_report import Page, browser

ROOT = Path(__file__).resolve().parents[1]


def test_conversation_trains_each_answer_and_nothing_else(small_world):
    from test_backbone import CONV, TINY

    from genixer.backbones.llava import TinyLlava

    record = {"image": str(next((small_world / "images" / "train").glob("*.png"))),
              "turns": [{"question": "What colour is it?", "answer": "red"}, {"question": "How many?", "answer": "two"}]}
    task = Conversation()
    assert task.turns(record) == [("What colour is it?", "red"), ("How many?", "two")]
    with pytest.raises(ValueError, match="turns"):
        task.turns({"image": "x.png", "turns": []})
    codec = TinyLlava(CONV, **TINY).codec(["What colour is it? red How many? two"] * 20)
    item = InstructionDataset([("c", record)], {"c": task}, codec, seed=0)[0]
    supervised = codec.tokenizer.decode(item["input_ids"][item["labels"] != IGNORE_INDEX])
    assert supervised.replace(" ", "") == "red</s>two</s>"   # both answers and their EOS, no question
    prompt = codec.tokenizer.decode(item["input_ids"][item["labels"] == IGNORE_INDEX])
    assert "What colour is it?" in prompt and "How many?" in prompt


def test_pool_order_nests_sizes_and_one_per_image_is_seeded():
    order = datasets.pool_order([f"pool/{i}.png" for i in range(50)] * 2, seed=3)
    assert len(order) == 50 and order == datasets.pool_order(reversed(order), seed=3) != datasets.pool_order(order, seed=4)
    samples = [{"image": f"pool/{i % 5}.png", "id": i} for i in range(20)]
    picked = datasets.one_per_image(samples, seed=0)
    assert sorted(picked) == [f"pool/{i}.png" for i in range(5)]
    assert picked == datasets.one_per_image(list(reversed(samples)), seed=0)   # by image, not by order
    assert any(datasets.one_per_image(samples, seed=s) != picked for s in range(1, 6))


def test_synthetic_rows_become_benchmark_prompts(tmp_path):
    images = tmp_path / "images"
    vqa = {"id": "q1", "image": str(images / "pool/a.png"), "parsed": {"question": "What shape is it?", "answer": "circle"}}
    rec = {"id": "r1", "image": "pool/b.png", "conversations": [{"from": "human", "value": "<image>\nWhere is the red circle?"},
                                                                 {"from": "gpt", "value": "[0.100,0.200,0.300,0.400]"}]}
    (out_vqa,), (out_rec,) = datasets.synthetic([vqa], "vqa", images), datasets.synthetic([rec], "rec", images)
    assert out_vqa == {"id": "syn_q1", "image": "pool/a.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat shape is it?" + datasets.SHORT_ANSWER}, {"from": "gpt", "value": "circle"}]}
    assert out_rec["image"] == "pool/b.png" and out_rec["conversations"] == rec["conversations"]


def result_with(scores: dict[str, list[float]]) -> dict:
    rows = {name: {"scores": s, "mean": results.spread(s)[0], "sd": results.spread(s)[1], "by_question_type": {},
                   "data": {"samples": 10, "synthetic": 0 if name == "annotated" else 5, "oracle_accuracy": 0.9}}
            for name, s in scores.items()}
    return {"name": "t", "sizes": {"small": 0.5, "large": 1.0}, "conditions": ["filtered"], "seeds": [0, 1],
            "pool_images": 10, "annotated_images": 20, "models": {"llava": {"benchmark": "b", "family": "vqa", "datasets": rows}}}


def test_table_marks_only_differences_beyond_the_seeds_spread():
    result = result_with({"annotated": [50.0, 52.0], "filtered_small": [51.0, 53.0], "filtered_large": [60.0, 62.0]})
    rows = {r[0]: r for r in results.model_rows(result, "llava")}
    assert rows["filtered_small"][4:] == ["52.0 ± 1.4", "+1.0", "no"]
    assert rows["filtered_large"][4:] == ["61.0 ± 1.4", "+10.0", "yes"]
    svg = results.plot(result, "llava")
    assert svg.count("<circle") == 3 and "filtered" in svg   # size 0 (annotated) + two sizes


def run_study(runs: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENIXER_RUNS": str(runs), "GENIXER_DATA": str(runs / "data")}
    return subprocess.run([sys.executable, str(ROOT / "study.py"), "experiment=study_ci", *overrides], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    runs = tmp_path_factory.mktemp("study")
    done = run_study(runs)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (out,) = [p.parent for p in (runs / "study" / "study_ci").glob("*/results.json")]
    return out, done


def test_study_end_to_end_on_cpu(study):
    out, _ = study
    result = json.loads((out / "results.json").read_text())
    names = ["annotated"] + [f"{c}_{s}" for c in ("unfiltered", "filtered", "ceiling") for s in ("small", "large")]
    assert set(result["models"]) == {"llava", "shikra"}
    for model in result["models"].values():
        assert list(model["datasets"]) == names
        for r in model["datasets"].values():
            assert len(r["scores"]) == 1 and 0.0 <= r["scores"][0] <= 100.0
    world = json.loads((out / "world" / "world.json").read_text())["counts"]
    summary = json.loads((out / "data" / "datasets.json").read_text())
    assert summary["vqa"]["annotated"]["samples"] == world["vqa_questions"]
    assert summary["rec"]["annotated"]["samples"] == world["rec_expressions"]
    for family in ("vqa", "rec"):
        s = summary[family]
        accepted = sum(r["status"] == "ok" for r in map(json.loads, (out / "synthetic" / family / "samples.jsonl").open()))
        assert s["unfiltered_large"]["synthetic"] == accepted > 0
        assert s["filtered_large"]["synthetic"] <= accepted and s["ceiling_large"]["synthetic"] == world["pool_images"]
        for condition in ("unfiltered", "filtered", "ceiling"):
            small = json.loads((out / "data" / family / f"{condition}_small.json").read_text())
            large = json.loads((out / "data" / family / f"{condition}_large.json").read_text())
            assert {r["id"] for r in small} <= {r["id"] for r in large}   # a larger size holds every smaller one
            assert len(small) == s[f"{condition}_small"]["samples"]
    assert "| annotated |" in (out / "results.md").read_text()


def test_study_resumes_without_redoing_anything(study):
    out, _ = study
    before = json.loads((out / "results.json").read_text())["models"]
    logs = {p: p.stat().st_mtime for p in (out / "logs").glob("*.log")}
    again = run_study(out.parents[2])
    assert again.returncode == 0, again.stderr[-3000:]
    said = again.stdout + again.stderr
    assert said.count("every model scored before") == 2 and said.count("done before") == 6   # vision, generate, filter
    assert {p: p.stat().st_mtime for p in (out / "logs").glob("*.log")} == logs   # no stage ran again
    assert json.loads((out / "results.json").read_text())["models"] == before


def test_matched_budget_trains_every_run_the_steps_of_the_largest_file(study):
    out, _ = study
    before = (out / "results.json").read_text()
    done = run_study(out.parents[2], f"hydra.run.dir={out}", "downstream.budget=matched", "sizes=[large]",
                     "downstream.overrides=[]", "~downstream.models.shikra")   # one model: the budget is the runner's
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "data" / "datasets.json").read_text())
    assert "unfiltered_small" in summary["vqa"]   # the epochs grid's entries stay
    result = json.loads((out / "downstream-matched" / "results.json").read_text())
    assert "equal compute" in result["budget"] and (out / "downstream-matched" / "results.md").exists()
    names = ["annotated", "unfiltered_large", "filtered_large", "ceiling_large"]
    assert list(result["models"]) == ["llava"] and list(result["models"]["llava"]["datasets"]) == names
    steps = max(summary["vqa"][n]["samples"] for n in names) // 8   # batch 8, 1 epoch
    for name in names:
        manifest = json.loads((out / "downstream-matched" / "llava" / name / "seed0" / "manifest.json").read_text())
        assert manifest["metrics"]["steps"] == steps > summary["vqa"]["annotated"]["samples"] // 8
    assert (out / "results.json").read_text() == before   # the epochs budget's results untouched


@pytest.mark.skipif(browser() is None, reason="no headless browser on PATH: `make browser` installs Chromium")
def test_study_page_renders(study, tmp_path):
    out, _ = study
    command = [browser(), "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p'}",
               "--virtual-time-budget=5000", "--dump-dom", (out / "study.html").as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False).stdout
    body = next((a for t, a in Page(dom).tags if t == "body"), {})
    assert body.get("data-render") == "ok" and int(body["data-plots"]) == 2


def test_image_table_gives_each_item_the_tensor_of_its_own_image(small_world):
    from test_backbone import CONV, TINY

    from genixer.backbones.llava import TinyLlava
    from genixer.data.image_table import ImageTable

    paths = sorted(str(p) for p in (small_world / "images" / "train").glob("*.png"))[:5]
    record = lambda p: {"image": p, "turns": [{"question": "What colour is it?", "answer": "red"}]}  # noqa: E731
    items = [("c", record(p)) for p in [*paths, *paths[::-1], paths[2]]]   # repeated images, any order
    codec = TinyLlava(CONV, **TINY).codec(["What colour is it? red"] * 20)
    table = ImageTable.build([ann["image"] for _, ann in items], codec.image, num_workers=0, batch_size=2)
    assert len(table.pixels) == 5 and paths[0] in table and "other.png" not in table
    plain = InstructionDataset(items, {"c": Conversation()}, codec, seed=0)
    cached = InstructionDataset(items, {"c": Conversation()}, codec, seed=0, images=table)
    for i in range(len(items)):
        assert all(plain[i][k].equal(cached[i][k]) for k in ("input_ids", "labels", "pixel_values"))
    assert not plain[0]["pixel_values"].equal(plain[1]["pixel_values"])   # distinct images stay distinct
    with pytest.raises(KeyError, match="not in the image table"):
        table["other.png"]
