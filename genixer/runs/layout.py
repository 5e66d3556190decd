"""Run directories: resolved config, manifest with config hash and code version."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import genixer


def config_hash(cfg: DictConfig) -> str:
    text = OmegaConf.to_yaml(cfg, resolve=True, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_version() -> str:
    """Package version plus the git commit (``+dirty`` when the tree has changes)."""
    root = Path(genixer.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return f"{genixer.__version__}+{commit or 'unknown'}{'-dirty' if dirty else ''}"


def start(cfg: DictConfig) -> Path:
    """Seed, create the run dir with the resolved config, and build the mini world if configured."""
    L.seed_everything(cfg.seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.get("world"):
        instantiate(cfg.world)()
    return out


def write_manifest(out: Path, cfg: DictConfig, stage: str, **content) -> dict:
    manifest = {
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config_hash": config_hash(cfg),
        "code_version": code_version(),
        **content,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def claim(path: Path, settings: dict) -> None:
    """Record what made a resumable folder's contents; refuse to add to contents made otherwise.

    Every process of a run writes the same file (atomically), so the first to arrive wins harmlessly.
    """
    settings = json.loads(json.dumps(settings, default=str))
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != settings:
            raise ValueError(f"{path.parent} holds results made with other settings {stored}, not {settings}: "
                             f"use another run dir or delete that one")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(settings, indent=2))
    os.replace(tmp, path)
