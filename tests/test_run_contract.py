"""What a hostile test run found, each with a test: wrong boxes, silent loss, runs that lie about their
inputs, non-atomic outputs, late or misleading errors, error rows that cannot be retried."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, accepted, compose_config, task, write_generation_run
from genixer.backbones.llava import PretrainedLlava
from genixer.data.exports import export
from genixer.generation.queries import PromptDataset, load_queries
from genixer.generation.settings import Decoding
from genixer.pipelines import filter as filter_stage
from genixer.pipelines import generate
from genixer.pipelines.common import RunFailed
from genixer.runs.files import atomic_write
from genixer.runs.layout import RunError

GENERATOR = ROOT / "checkpoints/genixer_l_mini"
FAST = ["generation.max_new_tokens=4", "batch_size=4"]


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    for k, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        Image.new("RGB", (48, 32), colour).save(root / f"img{k}.png")
    return root


def run_generate(out: Path, *overrides: str) -> dict:
    return generate.run(compose_config("generate", [f"paths.output_dir={out}", f"generator={GENERATOR}", *FAST, *overrides]))


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


# ---- wrong boxes ---------------------------------------------------------------------------------

def test_oversized_jpeg_keeps_its_original_size(tmp_path):
    Image.new("RGB", (3000, 4080), (10, 200, 10)).save(tmp_path / "big.jpg")
    (tmp_path / "q.jsonl").write_text('{"id": "big", "image": "big.jpg"}\n')
    codec = PretrainedLlava(str(GENERATOR)).codec()
    item = PromptDataset(load_queries(tmp_path / "q.jsonl"), tmp_path, task("rec"), codec, 1, 0, max_pixels=1_000_000)[0]
    assert (item["meta"]["width"], item["meta"]["height"]) == (3000, 4080)  # decoded at 1/4 scale, recorded as is
    record = {"question": "Where is the green square?", "expression": "the green square", "box": (0.1, 0.25, 0.5, 0.75)}
    row = accepted("rec", record, "big/rec/0", "big.jpg", width=3000, height=4080)
    export([row], tmp_path)
    [rec] = [json.loads(line) for line in (tmp_path / "rec_shikra.jsonl").read_text().splitlines()]
    assert (rec["width"], rec["height"], rec["bbox"]) == (3000, 4080, [300, 1020, 1500, 3060])


# ---- silent loss ---------------------------------------------------------------------------------

def test_query_files_lose_nothing(tmp_path):
    lines = [b'{"question_id": "a", "image": "img0.png"}', b'{"question_id": "a", "image": "img1.png"}',
             b'{"question_id": "b", "image": "img\xff.png"}', b'{"question_id": null, "image": "img1.png"}',
             b'{"question_id": {"x": 1}, "image": "img1.png"}', b'{"question_id": true, "image": "img1.png"}',
             b'{"question_id": 7, "image": "img2.png"}', b'[1, 2]', b'{"id": "c"}', b"", b'{"image": "dir/img2.png"}']
    (tmp_path / "q.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    queries = load_queries(tmp_path / "q.jsonl")
    errors = {q.image_id: q.error for q in queries if q.error}
    assert [(q.image_id, q.image) for q in queries if not q.error] == [("a", "img0.png"), ("7", "img2.png"), ("img2", "dir/img2.png")]
    assert errors == {
        "q.jsonl:2": "query line 2: duplicate id 'a' (first on line 1)",
        "q.jsonl:3": "query line 3: not UTF-8 (invalid start byte at byte 34)",
        "q.jsonl:4": "query line 4: question_id must be a non-empty string or an integer, got null",
        "q.jsonl:5": 'query line 5: question_id must be a non-empty string or an integer, got {"x": 1}',
        "q.jsonl:6": "query line 6: question_id must be a non-empty string or an integer, got true",
        "q.jsonl:8": "query line 8: expected a JSON object, got list",
        "q.jsonl:9": "query line 9: expected a non-empty image path in one of ('image', 'image_path', 'img_path', 'file_path')",
    }


def test_image_folders_with_the_same_stem_keep_every_file(tmp_path, images):
    Image.new("RGB", (20, 20)).save(images / "img0.jpg")
    queries = load_queries(images)
    assert [q.image_id for q in queries] == ["img0.jpg", "img0.png", "img1.png", "img2.png"]
    counts = run_generate(tmp_path / "run", f"queries={images}")  # image_root: the folder itself
    assert counts["samples"] == 4 and counts["status"].get("error", 0) == 0


def test_duplicate_queries_are_counted_error_rows(tmp_path, images):
    (tmp_path / "q.jsonl").write_text('{"id": "a", "image": "img0.png"}\n{"id": "a", "image": "img1.png"}\n')
    counts = run_generate(tmp_path / "run", f"queries={tmp_path / 'q.jsonl'}", f"image_root={images}")
    assert counts["samples"] == 2 and counts["status"]["error"] == 1
    errors = {reason: n for reason, n in counts["reasons"].items() if reason.startswith("error")}
    assert errors == {"error: query line 2: duplicate id 'a' (first on line 1)": 1}


# ---- runs that lie about their inputs ------------------------------------------------------------

def test_resume_refuses_other_inputs_and_keeps_the_config(tmp_path, images):
    out = tmp_path / "run"
    run_generate(out, f"queries={images}")
    config = (out / "config.yaml").read_text()
    other = tmp_path / "other"
    shutil.copytree(images, other)
    for change in (f"image_root={other}", "max_pixels=1000"):
        with pytest.raises(RunError, match="holds results made with other settings"):
            run_generate(out, f"queries={images}", change)
        assert (out / "config.yaml").read_text() == config  # a refused run writes nothing


def test_a_run_that_wrote_nothing_does_not_block_the_corrected_command(tmp_path, images):
    out = tmp_path / "run"
    out.mkdir()  # as Hydra makes it before the run starts
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        run_generate(out, f"queries={images}", f"image_root={tmp_path / 'typo'}")
    assert not out.exists()  # failed before any write: no run dir left behind
    (out / "shards").mkdir(parents=True)
    (out / "shards/settings.json").write_text(json.dumps({"left": "by a run that failed before its first sample"}))
    assert run_generate(out, f"queries={images}")["samples"] == 3


def test_rerunning_a_finished_run_keeps_its_manifest(tmp_path, images):
    out = tmp_path / "run"
    first = run_generate(out, f"queries={images}")
    manifest = (out / "manifest.json").read_text()
    assert run_generate(out, f"queries={images}") == first
    assert (out / "manifest.json").read_text() == manifest and json.loads(manifest)["throughput"]["seconds"] > 0


def test_judge_batch_size_is_part_of_the_scores_settings(tmp_path, small_world):
    rec = json.loads((small_world / "annotations/rec_train.jsonl").read_text().splitlines()[0])
    row = accepted("common_vqa", {"question": "What is shown?", "answer": rec["expression"]}, "0/common_vqa/0",
                   rec["img_path"], width=rec["width"], height=rec["height"])
    run = write_generation_run(tmp_path / "gen", [row], small_world / "images")
    base = [f"run={run}", "filter=judge_mini", f"filter.scorers.judge.scorer.path={GENERATOR}"]
    filter_stage.run(compose_config("filter", [f"paths.output_dir={tmp_path / 'a'}", *base]))
    with pytest.raises(RunError, match="batch_size"):
        filter_stage.run(compose_config("filter", [f"paths.output_dir={tmp_path / 'b'}", *base,
                                                   "filter.scorers.judge.batch_size=7"]))


# ---- non-atomic outputs --------------------------------------------------------------------------

def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = atomic_write(tmp_path / "samples.jsonl", "old\n")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, "new\n" * 1000)
    assert path.read_text() == "old\n"


def test_readers_check_the_manifest_row_count(tmp_path, images):
    out = tmp_path / "run"
    run_generate(out, f"queries={images}")
    samples = (out / "samples.jsonl").read_text().splitlines()
    (out / "samples.jsonl").write_text(samples[0] + "\n")  # a half-written export
    with pytest.raises(RunError, match="holds 1 rows but its manifest promises 3"):
        filter_stage.run(compose_config("filter", [f"paths.output_dir={tmp_path / 'f'}", f"run={out}", "filter=judge_mini"]))
    (out / "manifest.json").unlink()
    with pytest.raises(RunError, match="never finished"):
        filter_stage.run(compose_config("filter", [f"paths.output_dir={tmp_path / 'f'}", f"run={out}", "filter=judge_mini"]))
    assert not (tmp_path / "f").exists()


# ---- late or misleading errors -------------------------------------------------------------------

def test_bad_settings_fail_before_the_model_or_the_world(tmp_path, images):
    with pytest.raises(ValueError, match=r"generation.temprature is not a generation setting \(did you mean temperature"):
        Decoding.from_config({"max_new_tokens": 4, "temprature": 0.5})
    world = tmp_path / "world"
    for overrides, error in ((["+generation.temprature=0.5"], "not a generation setting"),
                             ([f"generator={tmp_path / 'nowhere'}"], "neither a HF checkpoint dir")):
        out = tmp_path / "run"
        with pytest.raises(Exception, match=error):  # Hydra reports the target's error inside its own
            generate.run(compose_config("generate", [f"paths.output_dir={out}", f"generator={GENERATOR}", *FAST,
                                                     "world=mini", f"paths.mini_world={world}", *overrides]))
        assert not out.exists() and not world.exists()  # nothing written, the mini world not built


def test_incomplete_checkpoint_dirs_say_what_is_missing(tmp_path):
    broken = tmp_path / "ckpt"
    shutil.copytree(GENERATOR, broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="missing tokenizer.json or tokenizer.model"):
        PretrainedLlava(str(broken))


# ---- failures -------------------------------------------------------------------------------------

def test_error_rows_are_retried_and_an_all_failed_run_fails(tmp_path, images):
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"id": f"i{k}", "image": f"img{k}.png"}) + "\n" for k in range(4)))
    common = [f"queries={tmp_path / 'q.jsonl'}", f"image_root={images}"]
    out = tmp_path / "run"
    counts = run_generate(out, *common)
    assert counts["status"]["error"] == 1 and any("FileNotFoundError" in reason for reason in counts["reasons"])
    Image.new("RGB", (48, 32)).save(images / "img3.png")
    assert run_generate(out, *common)["status"]["error"] == 1  # finished: a re-run changes nothing
    counts = run_generate(out, *common, "retry_errors=true")
    assert counts["generated"] == 1 and counts["resumed"] == 3 and "error" not in counts["status"]
    assert all(r["status"] != "error" for r in rows(out))

    (tmp_path / "none.jsonl").write_text('{"id": "x", "image": "gone.png"}\n{"id": "y", "image": "gone2.png"}\n')
    failed = tmp_path / "failed"
    with pytest.raises(RunFailed, match=r"2 of 2 samples failed \(100%, error_ceiling=1.0\): 1 x image: FileNotFoundError"):
        run_generate(failed, f"queries={tmp_path / 'none.jsonl'}", f"image_root={images}")
    assert json.loads((failed / "manifest.json").read_text())["status"] == "failed"
    with pytest.raises(RunError, match="failed"):
        filter_stage.run(compose_config("filter", [f"paths.output_dir={tmp_path / 'f'}", f"run={failed}", "filter=judge_mini"]))
    (tmp_path / "half.jsonl").write_text('{"id": "a", "image": "img0.png"}\n{"id": "b", "image": "gone.png"}\n')
    half = [f"queries={tmp_path / 'half.jsonl'}", f"image_root={images}"]
    assert run_generate(tmp_path / "half", *half)["status"]["error"] == 1  # under the default ceiling
    with pytest.raises(RunFailed, match="1 of 2 samples failed"):
        run_generate(tmp_path / "half2", *half, "error_ceiling=0.5")


def test_generation_runs_log_their_counts_and_throughput(tmp_path, images):
    out = tmp_path / "run"
    run_generate(out, f"queries={images}", "logger=csv")
    [metrics] = list(out.glob("csv/**/metrics.csv"))
    header, values = (line.split(",") for line in metrics.read_text().splitlines()[:2])
    logged = dict(zip(header, values))
    assert float(logged["counts/samples"]) == 3 and float(logged["throughput/samples_per_s"]) > 0


def test_evaluate_refuses_two_runs_of_one_name(tmp_path, images):
    """Results are keyed by <generator>:<task>: two such runs must not overwrite each other silently."""
    from genixer.pipelines.evaluate import unique_names
    from genixer.runs.layout import RunDir

    for k in (1, 2):
        run_generate(tmp_path / f"sweep{k}/run", f"queries={images}")
    runs = [RunDir(tmp_path / f"sweep{k}/run") for k in (1, 2)]
    unique_names(runs[:1])
    with pytest.raises(ValueError, match=r"(?s)share a name.*genixer_l_mini:common_vqa: .*sweep1/run, .*sweep2/run"):
        unique_names(runs)
