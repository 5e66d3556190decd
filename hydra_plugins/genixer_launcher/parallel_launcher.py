"""``hydra/launcher=parallel``: run a multirun's jobs as subprocesses, ``jobs`` at a time (small runs share a GPU).

Each job is the app script re-run in run mode, ``<script> <job overrides> hydra.run.dir=<job dir>``, where the
job dir is the one the basic launcher would use (``hydra.sweep.dir/hydra.sweep.subdir``, resolved here with the
job's number), its output in ``<job dir>/launcher.log``. A failed job fails the multirun once the batch is done.
"""
# No `from __future__ import annotations`: Hydra executes plugin modules before they are in sys.modules, where
# dataclasses cannot resolve string annotations.
import copy
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from hydra._internal.utils import get_args_parser
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Quote, QuotedString
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.errors import CompactHydraException
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)

# Hydra overrides of the multirun that a job, run on its own, must not get (it gets its own hydra.run.dir / job.num).
_NOT_FORWARDED = ("hydra/launcher", "hydra.launcher", "hydra/sweeper", "hydra.sweeper", "hydra.sweep", "hydra.mode",
                  "hydra.run.dir", "hydra.job.id", "hydra.job.num")
LOG_TAIL = 20


@dataclass
class ParallelLauncherConf:
    _target_: str = "hydra_plugins.genixer_launcher.parallel_launcher.ParallelLauncher"
    jobs: int = 2                       # subprocesses at once
    gpus: Optional[List[int]] = None    # job i gets CUDA_VISIBLE_DEVICES=gpus[i % len(gpus)]
    poll_seconds: float = 1.0           # how often finished jobs are looked for


ConfigStore.instance().store(group="hydra/launcher", name="parallel", node=ParallelLauncherConf)


@dataclass
class _Job:
    ret: JobReturn
    command: List[str]
    env: dict
    log_path: Path
    label: str = ""  # the overrides that set it apart in its batch
    proc: Optional[subprocess.Popen] = None
    started: float = 0.0


class JobFailedError(CompactHydraException, RuntimeError):
    """A job's non-zero exit; compact: Hydra prints the message alone, not the launcher's stack."""


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the job's process group (its workers too), SIGKILL it if still alive after ``grace_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


class ParallelLauncher(Launcher):
    def __init__(self, jobs: int = 2, gpus: Optional[Sequence[int]] = None, poll_seconds: float = 1.0) -> None:
        if jobs < 1:
            raise ValueError(f"hydra.launcher.jobs={jobs}: at least 1")
        self.jobs = jobs
        self.gpus = None if gpus is None else [int(g) for g in gpus]
        self.poll_seconds = poll_seconds
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context

    def _command_parts(self) -> Tuple[List[str], List[str]]:
        """(python, the app script and the command line's config flags; the multirun's hydra overrides a job keeps)."""
        assert self.config is not None
        script = Path(sys.argv[0]).resolve()
        if not script.is_file():
            raise RuntimeError(f"hydra/launcher=parallel re-runs the app script, but sys.argv[0]={sys.argv[0]!r} is no file")
        args = get_args_parser().parse_args(sys.argv[1:])
        flags = [f"--{name.replace('_', '-')}={value}" for name in ("config_path", "config_name", "config_dir")
                 if (value := getattr(args, name)) is not None]
        typed = OmegaConf.to_container(self.config.hydra.overrides.hydra, resolve=False)  # as typed: ${...} unresolved
        hydra_overrides = OverridesParser.create().parse_overrides(typed)
        kept = [o.input_line for o in hydra_overrides
                if not any(o.key_or_group == k or o.key_or_group.startswith(k + ".") for k in _NOT_FORWARDED)]
        return [sys.executable, str(script), *flags], kept

    def _prepare(self, idx: int, overrides: List[str], head: List[str], tail: List[str]) -> _Job:
        """The job's config and dir, as the basic launcher (hydra.core.utils.run_job) computes them."""
        assert self.hydra_context is not None and self.config is not None
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = idx
            sweep_config.hydra.job.num = idx
        hydra_config = HydraConfig.instance()
        orig_hydra_cfg = hydra_config.cfg
        hydra_config.set_config(sweep_config)  # for ${hydra:...} in the sweep dir
        try:
            job_dir = os.path.abspath(os.path.join(str(sweep_config.hydra.sweep.dir), str(sweep_config.hydra.sweep.subdir)))
            with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
                sweep_config.hydra.runtime.output_dir = job_dir
            hydra_config.set_config(sweep_config)
            hydra_cfg = hydra_config.cfg
        finally:
            hydra_config.cfg = orig_hydra_cfg
        task_cfg = copy.deepcopy(sweep_config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        ret = JobReturn(overrides=overrides, cfg=task_cfg, hydra_cfg=hydra_cfg, working_dir=job_dir,
                        task_name=str(sweep_config.hydra.job.name))
        run_dir = QuotedString(text=job_dir, quote=Quote.single).with_quotes()
        # hydra.mode=RUN: a config that sets hydra.mode=MULTIRUN must not make the job a multirun again.
        command = [*head, *overrides, *tail, "hydra.mode=RUN", f"hydra.run.dir={run_dir}", f"hydra.job.id={idx}",
                   f"hydra.job.num={idx}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(self.gpus[idx % len(self.gpus)])
        return _Job(ret=ret, command=command, env=env, log_path=Path(job_dir) / "launcher.log")

    def _start(self, job: _Job, cwd: str) -> None:
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log_path, "wb") as out:
            # A session of its own: the job and its workers are one process group, stopped together.
            job.proc = subprocess.Popen(job.command, cwd=cwd, env=job.env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        job.started = time.monotonic()

    def _finish(self, job: _Job, done: int, total: int) -> None:
        rc = job.proc.returncode
        elapsed = time.monotonic() - job.started
        print(f"[parallel] {done}/{total} done in {elapsed:.1f} s (rc {rc}): {job.label}", flush=True)
        if rc == 0:
            job.ret.status, job.ret.return_value = JobStatus.COMPLETED, rc
            return
        tail = job.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
        print("\n".join([f"[parallel] the end of {job.log_path}:", *(f"    {line}" for line in tail)]), flush=True)
        job.ret.status = JobStatus.FAILED
        job.ret.return_value = JobFailedError(f"job failed (rc {rc}) in {job.ret.working_dir}: see {job.log_path}")

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally, {self.jobs} at a time")
        head, tail = self._command_parts()
        batch = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            batch.append(self._prepare(idx, list(overrides), head, tail))
        shared = set.intersection(*(set(job.ret.overrides) for job in batch))
        for job in batch:
            job.label = " ".join(o for o in filter_overrides(job.ret.overrides) if o not in shared or len(batch) == 1)

        cwd = str(self.config.hydra.runtime.cwd)
        waiting, running, done = deque(batch), [], 0
        previous_handler = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            while waiting or running:
                while waiting and len(running) < self.jobs:
                    job = waiting.popleft()
                    self._start(job, cwd)
                    running.append(job)
                finished = [job for job in running if job.proc.poll() is not None]
                for job in finished:
                    running.remove(job)
                    done += 1
                    self._finish(job, done, len(batch))
                if not finished:
                    time.sleep(self.poll_seconds)
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            if running:  # interrupted: no job outlives the multirun
                print(f"[parallel] stopping {len(running)} running jobs", flush=True)
            for job in running:
                _stop(job.proc)
        return [job.ret for job in batch]
