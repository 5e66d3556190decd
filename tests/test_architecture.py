"""The layering the stages rely on: no stage imports another's package, the core never imports the mini world."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "genixer"


def imported(path: Path) -> set[str]:
    """Absolute module names a source file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
    return names


def files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((PACKAGE / folder).rglob("*.py"))]


STAGES = {"filtering": ["filtering"], "evaluation": ["evaluation", "pipelines/evaluate.py"],
          "training": ["training", "pipelines/train.py"]}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stages_do_not_import_generation(stage):
    paths = [p for entry in STAGES[stage] for p in ([PACKAGE / entry] if entry.endswith(".py") else files(entry))]
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported(p) if m.startswith("genixer.generation"))
                 for p in paths}
    assert not {k: v for k, v in offenders.items() if v}


def test_filter_stage_reads_generation_runs_through_the_run_layer():
    assert not [m for m in imported(PACKAGE / "pipelines/filter.py") if m.startswith("genixer.generation")]


def test_core_does_not_import_the_mini_world():
    core = [p for p in PACKAGE.rglob("*.py") if "miniworld" not in p.parts]
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported(p) if m.startswith("genixer.miniworld"))
                 for p in core}
    assert not {k: v for k, v in offenders.items() if v}


def test_core_imports_with_no_mini_world_present():
    """Every core module imports in a process where ``genixer.miniworld`` cannot be imported."""
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in PACKAGE.rglob("*.py")
                     if "miniworld" not in p.parts and p.name != "__main__.py")
    code = ("import importlib, sys\nsys.modules['genixer.miniworld'] = None\n"
            f"for name in {modules!r}:\n    importlib.import_module(name.removesuffix('.__init__'))\n"
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
