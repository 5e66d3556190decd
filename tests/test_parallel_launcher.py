"""hydra/launcher=parallel (hydra_plugins/genixer_launcher): a multirun's jobs as subprocesses, K at a time."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
PARALLEL = ("hydra/launcher=parallel", "hydra.launcher.poll_seconds=0.05")

# Records x, its pid, start/end times, CUDA_VISIBLE_DEVICES and its job number; x == 'bad' fails at once.
APP = """
import json, os, sys, time
import hydra
from hydra.core.hydra_config import HydraConfig

@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg):
    record = {"x": str(cfg.x), "tag": cfg.tag, "pid": os.getpid(), "start": time.time(),
              "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "num": HydraConfig.get().job.num}
    dump("started.json", record)
    if cfg.x == "bad":
        print("x is bad: giving up")
        sys.exit(1)
    time.sleep(float(os.environ.get("APP_SLEEP", "1")))
    dump("record.json", {**record, "end": time.time()})

def dump(name, record):
    path = os.path.join(HydraConfig.get().runtime.output_dir, name)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)

if __name__ == "__main__":
    main()
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "config.yaml").write_text("x: 0\ntag: default\n")
    (tmp_path / "other.yaml").write_text("defaults:\n  - config\n  - _self_\ntag: other\n")
    return tmp_path / "app.py"


def _env(sleep: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "HYDRA_FULL_ERROR")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env["APP_SLEEP"] = str(sleep)
    return env


def _command(app: Path, sweep: Path, *args: str) -> list[str]:
    return [sys.executable, str(app), "-m", *args, f"hydra.sweep.dir='{sweep}'"]


def multirun(app: Path, sweep: Path, *args: str, sleep: float = 1.0) -> subprocess.CompletedProcess:
    return subprocess.run(_command(app, sweep, *args), cwd=app.parent, env=_env(sleep), capture_output=True, text=True,
                          timeout=120)


def records(sweep: Path, name: str = "record.json") -> dict[str, dict]:
    """x -> the job's record, with the job dir's name."""
    return {r["x"]: {**r, "dir": p.parent.name} for p in sweep.glob(f"*/{name}") for r in [json.loads(p.read_text())]}


def test_runs_jobs_k_at_a_time_in_the_basic_launchers_dirs(app: Path, tmp_path: Path):
    subdir = "hydra.sweep.subdir=${hydra:job.num}_${hydra:job.override_dirname}"  # '=' in a dir name: quoted
    proc = multirun(app, tmp_path / "parallel", *PARALLEL, "hydra.launcher.jobs=2", "tag=t", "x=1,2,3,4", subdir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = records(tmp_path / "parallel")
    assert sorted(jobs) == ["1", "2", "3", "4"]
    # one line per job, naming what sets it apart (x, not the shared tag)
    assert len(re.findall(r"^\[parallel\] \d/4 done in [\d.]+ s \(rc 0\): x=\d$", proc.stdout, re.M)) == 4, proc.stdout

    basic = multirun(app, tmp_path / "basic", "tag=t", "x=1,2,3,4", subdir, sleep=0)  # Hydra's own launcher, in-process
    assert basic.returncode == 0, basic.stdout + basic.stderr
    expected = {x: (r["dir"], r["num"]) for x, r in records(tmp_path / "basic").items()}
    assert {x: (r["dir"], r["num"]) for x, r in jobs.items()} == expected == {
        "1": ("0_tag=t,x=1", 0), "2": ("1_tag=t,x=2", 1), "3": ("2_tag=t,x=3", 2), "4": ("3_tag=t,x=4", 3)}
    for x, r in jobs.items():
        job_dir = tmp_path / "parallel" / r["dir"]
        assert OmegaConf.load(job_dir / ".hydra" / "overrides.yaml") == ["tag=t", f"x={x}"]
        assert (job_dir / "launcher.log").is_file()
        assert r["cuda"] is None and r["tag"] == "t"
    assert len({r["pid"] for r in jobs.values()}) == 4

    # at most 2 at once, and 2 at some point
    at_once = [sum(s["start"] <= r["start"] < s["end"] for s in jobs.values()) for r in jobs.values()]
    assert max(at_once) == 2, at_once


def test_a_failed_job_fails_the_multirun_after_the_others(app: Path, tmp_path: Path):
    sweep = tmp_path / "sweep"
    proc = multirun(app, sweep, *PARALLEL, "hydra.launcher.jobs=2", "x=bad,1,2", sleep=0)
    assert proc.returncode != 0
    assert sorted(records(sweep)) == ["1", "2"]  # the good ones finished
    log = sweep / records(sweep, "started.json")["bad"]["dir"] / "launcher.log"
    assert "x is bad: giving up" in log.read_text()
    assert f"see {log}" in proc.stderr, proc.stderr
    assert re.search(r"^\[parallel\] \d/3 done in [\d.]+ s \(rc 1\): x=bad$", proc.stdout, re.M), proc.stdout
    assert "    x is bad: giving up" in proc.stdout  # the end of its log


def test_gpus_alternate_and_command_line_flags_carry_over(app: Path, tmp_path: Path):
    proc = multirun(app, tmp_path / "sweep", "--config-name=other", *PARALLEL, "hydra.launcher.jobs=3",
                    "hydra.launcher.gpus=[0,1]", "x=1,2,3", sleep=0)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {r["num"]: (r["cuda"], r["tag"]) for r in records(tmp_path / "sweep").values()} == {
        0: ("0", "other"), 1: ("1", "other"), 2: ("0", "other")}


def test_interrupted_multirun_stops_its_jobs(app: Path, tmp_path: Path):
    sweep = tmp_path / "sweep"
    parent = subprocess.Popen(_command(app, sweep, *PARALLEL, "hydra.launcher.jobs=2", "x=1,2,3"), cwd=tmp_path,
                              env=_env(60), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids: list[int] = []
    try:
        deadline = time.time() + 30
        while len(pids) < 2 and time.time() < deadline and parent.poll() is None:
            pids = [r["pid"] for r in records(sweep, "started.json").values()]
            time.sleep(0.05)
        assert len(pids) == 2, "the jobs did not start"
        parent.send_signal(signal.SIGTERM)
        output = parent.communicate(timeout=30)[0]
        assert parent.returncode == 128 + signal.SIGTERM, output
        assert "[parallel] stopping 2 running jobs" in output
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert not list(sweep.glob("*/record.json"))
    finally:
        parent.kill()
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
