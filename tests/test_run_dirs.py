"""Run dirs are short and a function of the command: the same overrides typed another way find the same
dir, a changed value gets another, sweeps and their jobs land in the same dirs when re-submitted, and a
filter run without a valid generation run stops before anything is created."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import CONF, ROOT
from genixer.runs.naming import register_resolvers

register_resolvers()


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    """An empty runs root (GENIXER_RUNS) and a working dir holding ``data/q.jsonl`` and ``gen/samples.jsonl``."""
    monkeypatch.setenv("GENIXER_RUNS", str(tmp_path / "runs"))
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "q.jsonl").write_text("{}\n")
    (work / "gen").mkdir()
    (work / "gen" / "samples.jsonl").write_text("{}\n")
    monkeypatch.chdir(work)
    return tmp_path / "runs"


def run_dir(primary: str, overrides: list[str]) -> str:
    """``hydra.run.dir`` as Hydra resolves it for ``python <primary>.py <overrides>``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=primary, overrides=overrides, return_hydra_config=True)
    return OmegaConf.select(cfg, "hydra.run.dir")


def test_run_dir_is_stage_name_hash(runs):
    path = Path(run_dir("generate", ["task=rec"]))
    assert path.parent == runs / "generate" / "rec"
    assert len(path.name) == 10 and int(path.name, 16) >= 0
    assert Path(run_dir("train", [])).parent == runs / "train" / "generator"
    assert Path(run_dir("evaluate", ["runs=[gen]"])).parent == runs / "evaluate" / "oracle"


def test_same_overrides_same_dir(runs):
    assert run_dir("generate", ["task=rec", "seed=1", "samples_per_image=2"]) == \
        run_dir("generate", ["samples_per_image=2", "seed=1", "task=rec"])
    # A path typed relative or absolute (or through a symlink) is the same input.
    os.symlink(Path("data").resolve(), "linked")
    same = {run_dir("generate", [f"queries={q}"]) for q in
            ("data/q.jsonl", "./data/q.jsonl", str(Path("data/q.jsonl").resolve()), "linked/q.jsonl")}
    assert len(same) == 1
    # List values elementwise.
    assert run_dir("evaluate", ["runs=[./gen,data]"]) == run_dir("evaluate", [f"runs=[{Path('gen').resolve()},./data/]"])
    # Numbers by value.
    assert run_dir("train", ["module.optimizer.lr=1e-3"]) == run_dir("train", ["module.optimizer.lr=0.001"])


def test_excluded_keys_leave_the_dir_alone(runs):
    base = run_dir("generate", ["task=rec"])
    assert run_dir("generate", ["task=rec", "batch_size=8", "num_workers=4", "trainer=gpu_predict",
                                "trainer.devices=2", "+trainer.num_nodes=2"]) == base
    train = run_dir("train", [])
    assert run_dir("train", ["data.num_workers=0", "+trainer.enable_progress_bar=false", "world=mini",
                             "world.workers=8"]) != train   # world=mini is a change ...
    assert run_dir("train", ["world=mini", "world.workers=8"]) == run_dir("train", ["world=mini"])   # ... its workers not
    assert run_dir("train", ["data.num_workers=0", "+trainer.enable_progress_bar=false"]) == train


def test_changed_value_changes_the_dir(runs):
    base = run_dir("generate", ["task=rec"])
    assert len({base, run_dir("generate", ["task=rec", "seed=1"]), run_dir("generate", ["task=rec", "seed=2"]),
                run_dir("generate", ["task=rec", "queries=data/q.jsonl"])}) == 4
    # A group's option is a name, not a path, even when a folder of that name is in the working dir.
    Path("rec").mkdir()
    assert run_dir("generate", ["task=rec"]) == base


def test_filter_run_dir_is_under_the_generation_run(runs):
    assert run_dir("filter", ["run=gen"]) == "gen/filter/mini"
    assert run_dir("filter", ["run=gen", "filter=judge_mini"]) == "gen/filter/judge_mini"


@pytest.mark.parametrize("run,message", [
    (None, "filter.py needs run=<generation run dir>"),
    ("missing", "run=missing: no such folder"),
    ("data", "run=data holds no samples.jsonl"),
])
def test_filter_run_is_checked_while_resolving_the_dir(runs, run, message):
    with pytest.raises(Exception, match=message):
        run_dir("filter", [f"run={run}"] if run else [])


# ---- real Hydra processes -------------------------------------------------------------------------

APP = '''
import json, os
import hydra
from hydra.core.hydra_config import HydraConfig
from genixer.runs.naming import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path=None)
def main(cfg):
    with open(os.environ["DIRS_LOG"], "a") as f:
        f.write(json.dumps({"out": HydraConfig.get().runtime.output_dir, "overrides": list(HydraConfig.get().overrides.task)}) + "\\n")


main()
'''


def hydra_app(tmp_path: Path, primary: str, args: list[str]) -> list[dict]:
    """Run the real configs under Hydra (its launcher and sweeper) with a task that only records its dir."""
    app = tmp_path / "app.py"
    app.write_text(APP)
    log = tmp_path / f"dirs-{len(list(tmp_path.glob('dirs-*')))}.jsonl"
    env = {**os.environ, "DIRS_LOG": str(log), "GENIXER_ROOT": str(ROOT), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(app), "--config-path", str(CONF), "--config-name", primary, *args],
                          env=env, cwd=Path.cwd(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_multirun_dirs_are_stable(runs, tmp_path):
    """A sweep re-submitted (choices in another order) finds the same sweep dir and the same job dirs."""
    first = hydra_app(tmp_path, "generate", ["-m", "task=common_vqa,rec", "seed=1", "queries=./data/q.jsonl"])
    again = hydra_app(tmp_path, "generate", ["-m", f"queries={Path('data/q.jsonl').resolve()}", "seed=1",
                                             "task=rec,common_vqa", "batch_size=4"])
    by_task = lambda jobs: {Path(j["out"]).parts[-3]: j["out"] for j in jobs}  # noqa: E731
    assert by_task(first) == by_task(again) and len(by_task(first)) == 2
    dirs = sorted(Path(j["out"]) for j in first)
    # <runs>/generate/<task name>/sweep-<hash>/task=<task>-<hash>: one sweep hash, job dirs named by what varies.
    assert [d.relative_to(runs).parts[:2] for d in dirs] == [("generate", "common_vqa"), ("generate", "rec")]
    assert len({d.parent.name for d in dirs}) == 1 and dirs[0].parent.name.startswith("sweep-")
    assert [d.name.rsplit("-", 1)[0] for d in dirs] == ["task=common_vqa", "task=rec"]
    # A job's hash is the hash of the same command run alone.
    assert dirs[1].name.rsplit("-", 1)[1] == Path(run_dir("generate", ["task=rec", "seed=1", "queries=data/q.jsonl"])).name
    # Nothing but the dirs: no .hydra/, no log file before the job writes one.
    assert all(not any(d.iterdir()) for d in dirs)


def test_single_run_writes_nothing_before_the_job(runs, tmp_path):
    (job,) = hydra_app(tmp_path, "train", ["seed=3"])
    out = Path(job["out"])
    assert out.parent == runs / "train" / "generator" and not any(out.iterdir())


def test_filter_sweep_dirs(runs, tmp_path):
    jobs = hydra_app(tmp_path, "filter", ["-m", "run=gen", "filter=judge_mini", "filter.rules.judge_yes.min=0.5,0.7"])
    names = sorted(Path(j["out"]).relative_to(Path("gen").resolve()).as_posix().rsplit("-", 1)[0] for j in jobs)
    assert names == ["filter/judge_mini/min=0.5", "filter/judge_mini/min=0.7"]


def filter_py(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENIXER_ROOT": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "filter.py"), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args,message", [
    ([], "filter.py needs run=<generation run dir>"),
    (["run=missing"], "run=missing: no such folder"),
    (["run=data"], "run=data holds no samples.jsonl"),
    (["-m", "run=gen,data", "filter=judge_mini"], "run= takes one generation run dir"),
])
def test_filter_py_without_a_run_creates_nothing(runs, args, message):
    before = sorted(p.relative_to(Path.cwd()) for p in Path.cwd().rglob("*"))
    done = filter_py(*args, cwd=Path.cwd())
    assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]
    assert sorted(p.relative_to(Path.cwd()) for p in Path.cwd().rglob("*")) == before
    assert not runs.exists() and not (ROOT / "None").exists()
