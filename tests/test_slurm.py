"""Slurm presets: a training job that is preempted is requeued by submitit and resumes from its last checkpoint
(hydra/launcher=slurm_local: submitit's local executor, the same signal -> checkpoint -> requeue path as Slurm)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
from hydra import compose, initialize_config_dir

from conftest import ROOT, world_overrides


pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


class Pace(L.Callback):
    """Sleeps after every batch: a tiny model's steps as long as a real one's, so a signal lands mid-run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args) -> None:
        time.sleep(self.seconds)


def test_slurm_preset_composes_one_task_per_gpu():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher.tasks_per_node == 4 and launcher.max_num_timeout > 0 and "Slurm" in launcher._target_


def test_a_preempted_training_job_is_requeued_and_resumes(tmp_path, small_world, tiny_vision):
    world = world_overrides(small_world)
    vision = tiny_vision
    sweep = tmp_path / "sweep"
    command = [sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=slurm_local", f"hydra.sweep.dir={sweep}",
               "experiment=mini_world_cpu_generator", f"backbone.vision_init={vision}", "debug=fast", *world,
               "trainer.max_steps=10", "callbacks=default", "~callbacks.lr", "callbacks.checkpoint.every_n_train_steps=2",
               "+callbacks.pace={_target_: test_slurm.Pace, seconds: 0.5}"]   # the signal lands mid-training
    env = {**os.environ, "GENIXER_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT / "tests")}
    launcher = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (saved := list(sweep.glob("*/lightning/last.ckpt"))) and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.2)
    assert saved, launcher.communicate()[0][-3000:]
    job = saved[0].parents[1]
    task = subprocess.run(["pgrep", "-f", f"submitit.core._submit {sweep}"], capture_output=True, text=True).stdout.split()
    assert len(task) == 1, task
    os.kill(int(task[0]), signal.SIGUSR2)   # what Slurm sends the job signal_delay_s before preemption / the time limit
    output = launcher.communicate(timeout=300)[0]
    assert launcher.returncode == 0, output[-3000:]
    logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    assert "Requeued" in logs and "Restoring states from the checkpoint" in logs, logs[-3000:]
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["metrics"]["steps"] == 10
