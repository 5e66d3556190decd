"""Generation at scale on the CPU: shard-count independence (1 vs 2 DDP processes), resume after a
``kill -9`` with a torn last line, and the merge of duplicate / partial shard rows. The DDP and resumed
runs decode with the engine, the reference with HF generate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, compose_config, kill_after_lines, world_overrides
from genixer.generation.records import merge
from genixer.runs.shards import read_shards, repair_shards, written_ids

N = 24  # 12 held-out images x samples_per_image 2
COMMON = ["generation.max_new_tokens=20", "samples_per_image=2", "+trainer.enable_progress_bar=false"]


def env_for(tmp: Path, world: Path) -> dict:
    """Paths via the environment (so the overrides name the run dir), one thread per process."""
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    if not (data / "mini_world").exists():
        (data / "mini_world").symlink_to(world)
    return {**os.environ, "GENIXER_ROOT": str(ROOT), "GENIXER_DATA": str(data), "GENIXER_RUNS": str(tmp / "runs"),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def generate_cmd(*overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "generate.py"), *COMMON, *overrides]


def run_generate(env: dict, *overrides: str) -> None:
    proc = subprocess.run(generate_cmd(*overrides), env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def samples(run_dir: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    return [(r["id"], r["status"], r.get("text"), r.get("parsed"), r.get("new_tokens")) for r in rows]


def shard_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_world) -> list[tuple]:
    """An uninterrupted single-process run."""
    tmp = tmp_path_factory.mktemp("reference")
    run_generate(env_for(tmp, small_world), "batch_size=4", f"hydra.run.dir={tmp / 'run'}")
    rows = samples(tmp / "run")
    assert len(rows) == N == len({r[0] for r in rows})
    assert sum(r[1] == "ok" and r[3] is not None for r in rows) >= N // 2  # texts parse: the comparison is meaningful
    return rows


def test_two_ddp_processes_match_one_process(tmp_path, small_world, reference):
    # No hydra.run.dir: the run dir derives from the overrides, which leave the process count out.
    # The decode engine (3 slots, refilled across batches) on each rank; the reference decodes with HF generate.
    run_generate(env_for(tmp_path, small_world), "batch_size=4", "trainer=ddp_cpu", "generation.cache=engine",
                 "generation.slots=3")
    [run] = [p.parent for p in (tmp_path / "runs/generate/common_vqa").glob("*/manifest.json")]
    rank0, rank1 = shard_ids(run / "shards/rank0.jsonl"), shard_ids(run / "shards/rank1.jsonl")
    assert rank0 and rank1 and not set(rank0) & set(rank1)
    assert len(rank0) + len(rank1) == N and set(rank0) | set(rank1) == {r[0] for r in reference}
    assert samples(run) == reference
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["counts"]["generated"] == N and manifest["counts"]["resumed"] == 0


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, small_world, reference):
    env, run = env_for(tmp_path, small_world), tmp_path / "run"
    command = generate_cmd("batch_size=1", "generation.cache=engine", f"hydra.run.dir={run}")  # rows leave as they finish
    shard = run / "shards/rank0.jsonl"
    kill_after_lines(command, env, shard)
    assert not (run / "manifest.json").exists()
    before = shard.read_bytes()
    complete = before.count(b"\n")
    assert 3 <= complete < N
    with shard.open("ab") as f:  # a write torn by the crash
        f.write(b'{"id": "1000012/common_vqa/1", "text": "Question: wh')

    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = shard.read_text().splitlines()
    ids = [json.loads(line)["id"] for line in lines]  # every line parses: the torn one was cut away
    assert shard.read_bytes().startswith(before) and len(ids) == len(set(ids)) == N
    assert samples(run) == reference
    counts = json.loads((run / "manifest.json").read_text())["counts"]
    assert counts["resumed"] == complete and counts["generated"] == N - complete and counts["samples"] == N


def test_resume_refuses_shards_of_other_settings(tmp_path, small_world):
    """In process (the CLI path is the tests above): a run dir's shards are not resumed with other settings."""
    from genixer.pipelines import generate

    common = [f"paths.output_dir={tmp_path / 'run'}", "batch_size=12", *world_overrides(small_world),
              "generation.max_new_tokens=4", *COMMON[1:2]]
    generate.run(compose_config("generate", common))
    with pytest.raises(Exception, match="holds results made with other settings"):
        generate.run(compose_config("generate", [*common, "generation.max_new_tokens=5"]))


def test_merge_handles_duplicates_and_partial_lines(tmp_path):
    from hydra.utils import instantiate

    task = instantiate(compose_config("generate", ["task=common_vqa"]).task)

    def row(i: str, text: str) -> str:
        return json.dumps({"id": i, "task": "common_vqa", "template_id": 0, "seed": 1, "text": text}) + "\n"

    shards = tmp_path / "shards"
    shards.mkdir()
    qa = "Question: What color is the square? Answer: green"
    (shards / "rank0.jsonl").write_text(row("a/common_vqa/0", qa) + row("b/common_vqa/0", qa) + '{"id": "c/comm')
    (shards / "rank1.jsonl").write_text(row("b/common_vqa/0", qa) + row("c/common_vqa/0", "no answer here"))
    (shards / "rank2.jsonl").write_text("")
    assert set(read_shards(shards)) == written_ids(shards) == {"a/common_vqa/0", "b/common_vqa/0", "c/common_vqa/0"}

    rows, counts = merge(shards, task, {"generator": "g"})
    assert [r["id"] for r in rows] == ["a/common_vqa/0", "b/common_vqa/0", "c/common_vqa/0"]
    assert counts["samples"] == 3 and counts["status"]["rejected"] == 1
    assert all(r["provenance"]["generator"] == "g" for r in rows)

    assert repair_shards(shards) == len('{"id": "c/comm')
    assert (shards / "rank0.jsonl").read_text().endswith("\n") and repair_shards(shards) == 0
    assert [json.loads(line)["id"] for line in (shards / "rank0.jsonl").read_text().splitlines()] == ["a/common_vqa/0", "b/common_vqa/0"]
