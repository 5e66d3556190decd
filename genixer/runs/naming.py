"""Run-dir names from command-line overrides: short, stable hashes (OmegaConf resolvers for ``conf/hydra``).

A run dir is ``<stage>/<name>/<hash>``, the hash of the job's *normalized* overrides: keys in
``hydra.job.config.override_dirname.exclude_keys`` left out, values naming an existing file or folder
replaced by their resolved absolute path, overrides sorted. The same command, typed another way, finds
the same dir (and resumes it); a changed value gets a new one. A sweep is ``sweep-<hash of its
overrides>``, each job in it ``<what the job varies>-<hash of its overrides>``.

Resolvers read the config being resolved (``_root_``), not ``HydraConfig``: the sweeper resolves
``hydra.sweep.dir`` before ``HydraConfig`` is set. Light on purpose (no torch): the entry scripts
register these before Hydra composes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, Override, RangeSweep
from hydra.errors import CompactHydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError


class RunDirError(InterpolationResolutionError, CompactHydraException):
    """A run dir that cannot be named. Raised while Hydra resolves the dir, before it creates anything;
    as a compact Hydra error it is printed as its message alone (not a traceback through OmegaConf)."""


HASH_CHARS = 10
PREFIX_CHARS = 48   # the readable part of a sweep job's dir; the hash keeps it unique


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value


def _canonical(value: Any, group: bool) -> Any:
    """A JSON-able form of an override value; strings naming an existing path become absolute."""
    if isinstance(value, str):
        return str(Path(value).expanduser().resolve()) if not group and value and os.path.exists(value) else value
    if isinstance(value, ChoiceSweep):   # the same set of jobs, in whatever order typed
        return {"choice": sorted((_canonical(v, group) for v in value.list), key=json.dumps)}
    if isinstance(value, RangeSweep):
        return {"range": [value.start, value.stop, value.step]}
    if isinstance(value, IntervalSweep):
        return {"interval": [value.start, value.end]}
    if isinstance(value, Glob):
        return {"glob": [list(value.include), list(value.exclude)]}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, group) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v, group) for k, v in sorted(value.items())}
    return value


def _parse(overrides: Sequence[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides([str(o) for o in overrides])


def _settings(root: DictConfig) -> tuple[set[str], set[str]]:
    """(excluded keys, config group names) of the config being resolved."""
    hydra = root.hydra
    excluded = set(OmegaConf.select(hydra, "job.config.override_dirname.exclude_keys", default=None) or [])
    groups = {str(k).split("@")[0] for k in (OmegaConf.select(hydra, "runtime.choices", default=None) or {})}
    return excluded, groups


def _entry(override: Override, groups: set[str]) -> list:
    """``[key, canonical value]``: a group's option is a name, never a path."""
    return [override.get_key_element(), _canonical(override.value(), override.key_or_group in groups)]


def normalized(overrides: Sequence[str], exclude_keys: set[str], groups: set[str]) -> list[list]:
    """``[key, canonical value]`` per kept override, sorted by key (stable: repeated keys keep their order)."""
    entries = [_entry(o, groups) for o in _parse(overrides) if o.key_or_group not in exclude_keys]
    return sorted(entries, key=lambda e: e[0])


def overrides_hash(overrides: Sequence[str], exclude_keys: set[str], groups: set[str]) -> str:
    """A short hex hash of the normalized overrides."""
    text = json.dumps(normalized(overrides, exclude_keys, groups), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def _short(value: Any) -> str:
    """A few readable characters for a value: a path's last part, list items joined by ``+``."""
    value = _plain(value)
    if isinstance(value, (list, tuple)):
        return "+".join(_short(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}:{_short(v)}" for k, v in value.items())
    text = str(value)
    return Path(text).name if "/" in text.rstrip("/") else text


def job_dirname(job_overrides: Sequence[str], sweep_overrides: Sequence[str], exclude_keys: set[str],
                groups: set[str]) -> str:
    """``<what this job varies>-<hash of its overrides>``, e.g. ``task=rec-3f09c1a2be``.

    What varies: the job's overrides that are not among the sweep's own (swept values, sweeper
    params), shown as ``<last key part>=<short value>``. Independent of the job's number, so a
    re-submitted sweep finds the same dirs.
    """
    given = {json.dumps(e) for e in normalized(sweep_overrides, exclude_keys, groups)}
    varied = [o for o in _parse(job_overrides)
              if o.key_or_group not in exclude_keys and json.dumps(_entry(o, groups)) not in given]
    parts = [f"{re.split(r'[./]', o.key_or_group)[-1]}={_short(o.value())}"
             for o in sorted(varied, key=lambda o: o.key_or_group)]
    prefix = re.sub(r"[^A-Za-z0-9._=,+-]", "_", ",".join(parts))[:PREFIX_CHARS]
    digest = overrides_hash(job_overrides, exclude_keys, groups)
    return f"{prefix}-{digest}" if prefix else digest


# ---- resolvers ------------------------------------------------------------------------------------


def _overrides_hash_resolver(overrides: Sequence[str] | None = None, *, _root_: DictConfig) -> str:
    """``${genixer.overrides_hash:}``: the hash of this job's overrides (or of the list given)."""
    excluded, groups = _settings(_root_)
    given = _root_.hydra.overrides.task if overrides is None else overrides
    return overrides_hash(list(_plain(given)), excluded, groups)


def _sweep_overrides_resolver(overrides: Sequence[str]) -> list[str]:
    """``${genixer.sweep_overrides:${hydra.overrides.task}}``: the sweep's overrides, as the sweeper saw them.

    Cached (like Hydra's ``${now:}``): Hydra copies the sweep config's resolver cache into every job's
    config, so a job sees the sweep's overrides (``task=a,b``), not its own (``task=a``).
    """
    return [str(o) for o in _plain(overrides)]


def _job_dirname_resolver(sweep_overrides: Sequence[str], *, _root_: DictConfig) -> str:
    """``${genixer.job_dirname:${genixer.sweep_overrides:...}}``: a sweep job's subdir."""
    excluded, groups = _settings(_root_)
    return job_dirname(list(_plain(_root_.hydra.overrides.task)), list(_plain(sweep_overrides)), excluded, groups)


def _generation_run_resolver(run: Any, sweep_overrides: Sequence[str] = ()) -> str:
    """``${genixer.generation_run:${run}[,<sweep overrides>]}``: ``run`` if it is a finished generation run dir.

    Used in the filter's run / sweep dir, so a wrong ``run`` stops Hydra before it creates anything.
    """
    if any(o.key_or_group == "run" and o.is_sweep_override() for o in _parse(list(_plain(sweep_overrides)))):
        raise RunDirError("filter.py -m: run= takes one generation run dir (the sweep's dir is under it): "
                          "run one command per generation run")
    if run is None or str(run) == "":
        raise RunDirError("filter.py needs run=<generation run dir> (a folder holding samples.jsonl)")
    folder = Path(str(run))
    if not folder.is_dir():
        raise RunDirError(f"run={run}: no such folder (filter.py run=<generation run dir>)")
    if not (folder / "samples.jsonl").is_file():
        raise RunDirError(f"run={run} holds no samples.jsonl: not a finished generation run dir")
    return str(run)


def register_resolvers() -> None:
    """Register the ``genixer.*`` resolvers the ``conf/hydra`` run dirs use (idempotent)."""
    OmegaConf.register_new_resolver("genixer.overrides_hash", _overrides_hash_resolver, replace=True)
    OmegaConf.register_new_resolver("genixer.sweep_overrides", _sweep_overrides_resolver, replace=True, use_cache=True)
    OmegaConf.register_new_resolver("genixer.job_dirname", _job_dirname_resolver, replace=True)
    OmegaConf.register_new_resolver("genixer.generation_run", _generation_run_resolver, replace=True)
