"""evaluate.py benchmark=... model=...: a model answers a benchmark through the sharded, resumable predict
loop, writes a LLaVA-layout answers file and scores it; suites; answers-file mode; bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from conftest import ROOT, compose_config, kill_and_tear
from genixer.evaluation.benchmarks import read_answers
from genixer.pipelines import evaluate
from genixer.runs.files import read_jsonl

MODEL = ROOT / "checkpoints/genixer_l_mini"
FAST = ["generation.max_new_tokens=12", "batch_size=8"]


def config(tmp: Path, world: Path, *overrides: str):
    return compose_config("evaluate", [f"paths.mini_world={world}", f"paths.output_dir={tmp}", f"paths.runs={tmp.parent}",
                                       *FAST, *overrides])


@pytest.fixture(scope="module")
def answered(tmp_path_factory, small_world) -> tuple[Path, dict]:
    """The shipped Common VQA generator over the mini-world suite (held-out VQA + REC), in-process."""
    out = tmp_path_factory.mktemp("bench") / "run"
    results = evaluate.run(config(out, small_world, "benchmark=mini_world", f"model={MODEL}"))
    return out, results


def test_model_answers_every_question_in_the_llava_layout(answered, small_world):
    out, results = answered
    for name in ("mini_world_vqa", "mini_world_rec"):
        benchmark = instantiate(compose_config("evaluate", [f"paths.mini_world={small_world}", f"benchmark={name}"]).benchmark)
        questions = benchmark.questions()
        rows = read_jsonl(out / name / "answers.jsonl")
        assert [r["question_id"] for r in rows] == [q["question_id"] for q in questions]
        assert all(r["prompt"] == q["text"] and r["model_id"] == "genixer_l_mini" for r, q in zip(rows, questions))
        result = results["benchmarks"][name]
        assert result["answered"] == len(questions) and result["errors"] == 0 and result["missing"] == 0
        # The reported score is the benchmark's own score of the written file, recomputed independently here.
        assert result["score"] == benchmark.score(read_answers(out / name / "answers.jsonl"))["score"]
    table = (out / "table.txt").read_text()
    assert table.splitlines()[0].split() == ["model", "VQA", "REC"]
    assert json.loads((out / "results.json").read_text()) == results
    assert json.loads((out / "manifest.json").read_text())["status"] == "ok"


def test_the_generator_is_a_poor_vqa_model(answered):
    """Genixer_L writes questions, not short answers: it must not look like a good VQA model."""
    _, results = answered
    assert results["benchmarks"]["mini_world_vqa"]["score"] < 50


def test_answers_file_mode_reads_a_suite_folder(answered, small_world, tmp_path):
    out, results = answered
    folder = tmp_path / "answers"
    folder.mkdir()
    (folder / "mini_world_vqa.jsonl").write_bytes((out / "mini_world_vqa/answers.jsonl").read_bytes())
    scored = evaluate.run(config(tmp_path / "e", small_world, "benchmark=mini_world", f"answers={folder}"))["benchmarks"]
    assert scored["mini_world_vqa"]["score"] == results["benchmarks"]["mini_world_vqa"]["score"]
    assert scored["mini_world_rec"]["score"] is None and "no answers file" in scored["mini_world_rec"]["note"]


def test_a_missing_image_is_an_error_row_and_a_missing_answer(small_world, tmp_path):
    questions = json.loads((small_world / "annotations/v2_OpenEnded_mini_heldout_questions.json").read_text())
    questions["questions"][0]["image_id"] = 999_999_999  # no such image file
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(questions))
    result = evaluate.run(config(tmp_path / "e", small_world, "benchmark=mini_world_vqa", f"model={MODEL}",
                                 f"benchmark.questions={path}"))["benchmarks"]["mini_world_vqa"]
    assert result["errors"] == 1 and result["missing"] == 1 and result["answered"] == result["n"] - 1
    assert "image" in next(iter(result["error_reasons"]))


def test_model_and_answers_are_exclusive(small_world, tmp_path):
    with pytest.raises(ValueError, match="needs model=<run or checkpoint dir>"):
        evaluate.run(config(tmp_path / "a", small_world, "benchmark=mini_world_vqa"))
    with pytest.raises(ValueError, match="needs model=<run or checkpoint dir>"):
        evaluate.run(config(tmp_path / "b", small_world, "benchmark=mini_world_vqa", f"model={MODEL}",
                            f"answers={tmp_path}"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        evaluate.run(config(tmp_path / "c", small_world, "benchmark=mini_world_vqa", f"answers={tmp_path / 'none.jsonl'}"))


def test_answering_resumes_after_kill(answered, small_world, tmp_path):
    """kill -9 mid-answering plus a torn line: the same command finishes and matches the uninterrupted run."""
    out, _ = answered
    run = tmp_path / "run"
    command = [sys.executable, str(ROOT / "evaluate.py"), "benchmark=mini_world_vqa", f"model={MODEL}", "batch_size=1",
               "generation.max_new_tokens=12", f"paths.mini_world={small_world}", f"hydra.run.dir={run}"]
    env = {"GENIXER_RUNS": str(tmp_path), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}
    shard = run / "mini_world_vqa/shards/rank0.jsonl"
    done = kill_and_tear(command, env, shard, b'{"id": "12", "text": "ye')
    assert not (run / "manifest.json").exists()
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_jsonl(run / "mini_world_vqa/answers.jsonl") == read_jsonl(out / "mini_world_vqa/answers.jsonl")
    result = json.loads((run / "results.json").read_text())["benchmarks"]["mini_world_vqa"]
    assert result["answered"] == result["n"] and 3 <= done < result["n"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from benchmark_fixtures import write_datasets

    root = tmp_path_factory.mktemp("datasets")
    return root, write_datasets(root)


def suite_config(tmp: Path, root: Path, *overrides: str):
    return compose_config("evaluate", [f"paths.datasets={root}", f"paths.data={tmp / 'data'}", f"paths.output_dir={tmp / 'out'}",
                                       f"paths.runs={tmp}", "benchmark=all", *FAST, *overrides])


def test_all_from_answers_files_gives_the_paper_table(datasets, tmp_path, monkeypatch):
    from benchmark_fixtures import JUDGED, SERVER_SCORED, write_answers_folder

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    root, answers = datasets
    folder = write_answers_folder(tmp_path / "answers", answers)
    (folder / "gqa.jsonl").unlink()  # one benchmark without answers: reported, the rest go on
    results = evaluate.run(suite_config(tmp_path, root, f"answers={folder}"))["benchmarks"]
    assert set(results) <= set(answers) and len(results) == 20   # the paper's 12 columns + 8 REC splits
    assert results["gqa"]["score"] is None and "no answers file" in results["gqa"]["note"]
    for name in SERVER_SCORED & set(results):
        assert results[name]["score"] is None and Path(results[name]["upload"]).is_file()
    for name in JUDGED:
        assert results[name]["score"] is None and "OPENAI_API_KEY" in results[name]["note"]
    local = set(results) - SERVER_SCORED - JUDGED - {"gqa", "mme"}
    assert local and all(results[name]["score"] == 100.0 for name in local)
    header, row = (tmp_path / "out/table.txt").read_text().splitlines()[:2]
    assert header.split()[:4] == ["model", "VQAv2", "GQA", "VizWiz"] and row.split()[:4] == ["fixture", "-", "-", "-"]   # the answers files' model_id


def test_all_with_a_model_answers_every_benchmark(datasets, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    root, answers = datasets
    results = evaluate.run(suite_config(tmp_path, root, f"model={MODEL}"))["benchmarks"]
    assert len(results) == 20
    for name in results:
        by_id = answers[name]
        rows = read_jsonl(tmp_path / "out" / name / "answers.jsonl")
        assert sorted(str(r["question_id"]) for r in rows) == sorted(by_id), name
        assert results[name]["answered"] == len(by_id) and results[name]["errors"] == 0
    assert json.loads((tmp_path / "out/manifest.json").read_text())["status"] == "ok"


def test_a_suite_reports_a_benchmark_without_files_and_goes_on(tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    results = evaluate.run(suite_config(tmp_path, empty, f"model={MODEL}"))["benchmarks"]
    assert all(r["score"] is None and r["note"].startswith("unavailable") for r in results.values())


def test_two_ddp_processes_answer_a_suite_like_one(answered, small_world, tmp_path):
    """trainer=ddp_cpu: both benchmarks of the suite split over 2 processes (each rank its own shard), answers
    identical to the single-process run's."""
    out, _ = answered
    run = tmp_path / "run"
    command = [sys.executable, str(ROOT / "evaluate.py"), "benchmark=mini_world", f"model={MODEL}", "trainer=ddp_cpu",
               *FAST, f"paths.mini_world={small_world}", f"hydra.run.dir={run}"]
    env = {"GENIXER_RUNS": str(tmp_path), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("mini_world_vqa", "mini_world_rec"):
        shards = [read_jsonl(run / name / f"shards/rank{r}.jsonl") for r in (0, 1)]
        assert shards[0] and shards[1] and not {s["id"] for s in shards[0]} & {s["id"] for s in shards[1]}
        assert read_jsonl(run / name / "answers.jsonl") == read_jsonl(out / name / "answers.jsonl")
