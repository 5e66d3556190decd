"""What a report reads from a run dir: its manifest, rows, image root and selection rules.

A generation run is read as written (``samples.jsonl``). A filter run's ``selected.jsonl`` holds only
the candidates (ok rows, with ``scores``, ``kept`` and ``drops``); the rows its generation run rejected
or failed are added back from ``samples.jsonl`` so the report shows every row once. Read like
``genixer.runs.layout.RunDir.rows`` (row counts checked against the manifest) without importing it: that
module pulls in Lightning, seconds of start-up for a page that needs none of it. A failed run is reported
(with a note), not refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from genixer.filtering.selection import Rule
from genixer.runs.files import read_jsonl

FILES = {"generate": "samples.jsonl", "filter": "selected.jsonl"}


class ReportError(RuntimeError):
    """A path that is no finished generation or filter run, or whose rows disagree with its manifest."""


@dataclass
class RunView:
    """One finished generation or filter run, ready to report on."""

    path: Path
    stage: str                      # "generate" or "filter"
    manifest: dict                  # this run's manifest
    source: dict                    # the generation run's manifest (the same for a generation run)
    rows: list[dict]                # every row once (filter runs: selected rows + rows not ok upstream)
    image_root: Path
    rules: dict[str, Rule] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def is_filter(self) -> bool:
        return self.stage == "filter"

    @property
    def name(self) -> str:
        """``<generator>:<task>`` (generation) or ``<generator>:<task>:<filter>`` (filter), as evaluate names runs."""
        inputs = self.source.get("inputs", {})
        name = f"{Path(str(inputs.get('generator', '?'))).name}:{inputs.get('task', '?')}"
        return f"{name}:{self.manifest['inputs'].get('filter', '?')}" if self.is_filter else name

    def decontamination(self) -> dict | None:
        """The manifest's ``decontamination`` record (this run's, else its generation run's), when present."""
        return self.manifest.get("decontamination") or self.source.get("decontamination")


def parse_rules(raw: dict) -> dict[str, Rule]:
    """The filter manifest's ``inputs.rules`` as Rule objects (``_target_`` dropped)."""
    return {name: Rule(**{k: v for k, v in spec.items() if k != "_target_"}) for name, spec in (raw or {}).items()}


def read_run(path: Path, stage: str | None = None) -> tuple[dict, list[dict]]:
    """(manifest, rows) of a finished generation or filter run, rows checked against the manifest's count."""
    if not (path / "manifest.json").is_file():
        raise ReportError(f"{path}: no manifest.json: not a finished run dir (a generation run, or <run>/filter/<name>)")
    manifest = json.loads((path / "manifest.json").read_text())
    found = manifest.get("stage")
    if found not in FILES or (stage and found != stage):
        raise ReportError(f"{path}: a {found} run; expected {stage or 'a generation or filter run'}")
    rows = read_jsonl(path / FILES[found])
    if len(rows) != manifest.get("rows"):
        raise ReportError(f"{path / FILES[found]} holds {len(rows)} rows but its manifest promises {manifest.get('rows')}")
    return manifest, rows


def load_run(path: str | Path) -> RunView:
    """The run at ``path`` (a ReportError when it is no finished generation or filter run)."""
    path = Path(path)
    manifest, rows = read_run(path)
    notes = [f"the run failed: {manifest.get('failure')}"] if manifest.get("status") == "failed" else []
    if manifest["stage"] == "generate":
        return RunView(path, "generate", manifest, manifest, rows, Path(manifest["inputs"]["image_root"]), notes=notes)
    inputs, source, upstream = manifest["inputs"], {"inputs": {}}, []
    try:
        source, generated = read_run(Path(inputs["run"]), "generate")
        chosen = {r["id"] for r in rows}
        upstream = [r for r in generated if r["id"] not in chosen and r.get("status") != "ok"]
    except (ReportError, KeyError, OSError, ValueError) as e:
        notes.append(f"generation run not readable ({e}): rows not ok upstream are not shown")
    rows = sorted(rows + upstream, key=lambda r: str(r["id"]))
    root = Path(inputs.get("image_root") or source["inputs"].get("image_root", "."))
    return RunView(path, "filter", manifest, source, rows, root, parse_rules(inputs.get("rules")), notes)
