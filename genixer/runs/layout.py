"""Run directories: typed paths, the resolved config, the manifest, and the settings claim.

A generation run dir::

    <run>/config.yaml  manifest.json  samples.jsonl  llava.json  rec_shikra.jsonl
    <run>/shards/rank{R}.jsonl + settings.json          (resumable generation)
    <run>/scores/<scorer>/shards/... + settings.json     (resumable scoring, shared by selections)
    <run>/filter/<name>/selected.jsonl  llava.json  rec_shikra.jsonl  manifest.json

Every stage's manifest records its ``inputs`` (what a later stage needs: image root, query file,
generator, task, ...), ``counts`` and ``outputs``; a later stage reads the manifest, never another
stage's Hydra config. Files another stage reads are written atomically, the manifest last, and
readers check the row count the manifest promises.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import genixer
from genixer.runs.files import atomic_write, read_jsonl, write_json
from genixer.runs.shards import SHARD_DIR, has_rows

MANIFEST, CONFIG, SAMPLES, SELECTED, SETTINGS = "manifest.json", "config.yaml", "samples.jsonl", "selected.jsonl", "settings.json"


class RunError(RuntimeError):
    """A run dir that is missing, unfinished, inconsistent, or was made with other settings."""


@dataclass(frozen=True)
class RunDir:
    """Typed paths of one run dir (any stage)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES

    @property
    def selected(self) -> Path:
        return self.path / SELECTED

    @property
    def shards(self) -> Path:
        return self.path / SHARD_DIR

    def scores(self, scorer: str) -> Path:
        return self.path / "scores" / scorer

    def filter(self, name: str) -> Path:
        return self.path / "filter" / name

    @property
    def finished(self) -> bool:
        return self.manifest.is_file()

    def read_manifest(self, stage: str | None = None) -> dict:
        """The manifest; an error when the run is missing, unfinished or of another stage."""
        if not self.path.is_dir():
            raise RunError(f"{self.path}: no such run dir")
        if not self.manifest.is_file():
            raise RunError(f"{self.path}: no {MANIFEST}, so the run never finished: re-run its command to resume it")
        manifest = json.loads(self.manifest.read_text())
        if stage and manifest.get("stage") != stage:
            raise RunError(f"{self.path}: a {manifest.get('stage')} run, not a {stage} run")
        return manifest

    def rows(self, stage: str = "generate") -> list[dict]:
        """The rows of a finished run (``samples.jsonl`` of generation, ``selected.jsonl`` of a filter),
        checked against the count its manifest promises."""
        manifest = self.read_manifest(stage)
        if manifest.get("status") == "failed":
            raise RunError(f"{self.path} failed ({manifest.get('failure')}): fix the cause and re-run it (retry_errors=true)")
        path = self.samples if stage == "generate" else self.selected
        rows = read_jsonl(path)
        if len(rows) != manifest["rows"]:
            raise RunError(f"{path} holds {len(rows)} rows but its manifest promises {manifest['rows']}: "
                           "the file was changed or cut after the run; re-run its command to rewrite it")
        return rows


def config_hash(cfg: DictConfig) -> str:
    text = OmegaConf.to_yaml(cfg, resolve=True, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_version() -> str:
    """Package version plus the git commit (``-dirty`` when the tree has changes)."""
    root = Path(genixer.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{genixer.__version__}+{commit or 'unknown'}{'-dirty' if dirty else ''}"


def write_config(out: Path, cfg: DictConfig) -> None:
    """The resolved config, written once the run's inputs are validated and its settings claimed."""
    atomic_write(out / CONFIG, OmegaConf.to_yaml(cfg, resolve=True))


def write_manifest(out: Path, cfg: DictConfig, stage: str, rows: int, **content) -> dict:
    """``manifest.json``, written last: its presence says the run finished, ``rows`` what readers must find."""
    manifest = {"stage": stage, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config_hash": config_hash(cfg),
                "code_version": code_version(), "rows": rows, **content}
    write_json(out / MANIFEST, manifest)
    return manifest


def claim(folder: Path, settings: dict, results: Path | None = None) -> None:
    """Record what made a resumable folder's results (``folder/settings.json``); refuse to add to
    results made otherwise. Settings without results yet (a run that failed before writing any)
    are simply replaced. ``results``: the shard folder holding them (default: ``folder``).

    Every process of a run writes the same file (atomically), so the first to arrive wins harmlessly.
    """
    path = folder / SETTINGS
    settings = json.loads(json.dumps(settings, default=str))
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored == settings:
            return
        if has_rows(results or folder):
            changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
            detail = "; ".join(f"{k}: {stored.get(k)!r} -> {settings.get(k)!r}" for k in changed)
            raise RunError(f"{folder} holds results made with other settings ({detail}): "
                           "use another run dir or delete that one")
    write_json(path, settings)
