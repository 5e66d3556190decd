"""Running the study's stages: each an entry-point command in a subprocess, skipped once its output exists.

A stage is (name, command, marker): it runs unless ``marker`` exists, logs to ``<study>/logs/<name>.log``,
and fails loudly with the log's tail. Independent stages run side by side (``run_all``).
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]   # the repository: where train.py & co. live


class StageFailed(RuntimeError):
    """A stage command exited non-zero (its log names why)."""


@dataclass(frozen=True)
class Stage:
    name: str
    script: str            # train.py, generate.py, filter.py, evaluate.py
    overrides: Sequence[str]
    marker: Path | None    # its finished output; None: always run (the command resumes or skips by itself)

    @property
    def done(self) -> bool:
        return self.marker is not None and self.marker.exists()

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / self.script), *self.overrides]


def run(stage: Stage, logs: Path, gpu: int | None = None) -> float:
    """Run one stage unless done (on GPU ``gpu`` alone when given); seconds taken (0 when skipped)."""
    if stage.done:
        log.info("[study] %s: done before (%s)", stage.name, stage.marker)
        return 0.0
    logs.mkdir(parents=True, exist_ok=True)
    path, started = logs / f"{stage.name}.log", time.time()
    log.info("[study] %s: %s", stage.name, " ".join(stage.command()[1:]))
    with open(path, "a") as out:
        out.write(f"$ {' '.join(stage.command())}\n")
        out.flush()
        env = os.environ | ({"CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else {})
        code = subprocess.call(stage.command(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    seconds = time.time() - started
    if code != 0 or (stage.marker is not None and not stage.marker.exists()):
        tail = "".join(path.read_text().splitlines(keepends=True)[-25:])
        raise StageFailed(f"stage {stage.name} failed (exit {code}); log {path}:\n{tail}")
    log.info("[study] %s: done in %.1f s", stage.name, seconds)
    return seconds


def run_all(stages: Sequence[Stage], logs: Path, side_by_side: bool, gpus: Sequence[int] | None = None) -> dict[str, float]:
    """Every stage (at once when ``side_by_side``, stage i on ``gpus[i % len(gpus)]`` when given); seconds per
    stage; the first failure raises after all ended."""
    if not side_by_side:
        return {s.name: run(s, logs) for s in stages}
    with ThreadPoolExecutor(len(stages) or 1) as pool:
        futures = {s.name: pool.submit(run, s, logs, gpus[i % len(gpus)] if gpus else None) for i, s in enumerate(stages)}
    return {name: f.result() for name, f in futures.items()}
