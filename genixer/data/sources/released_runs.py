"""Released Genixer_L outputs as run dirs our later stages take: re-filter, re-select, re-export, report.

    python -m genixer.data.sources.released_runs generation <merge.jsonl> --task common_vqa --image-root <images> --out <run>
    python -m genixer.data.sources.released_runs fuyu <fuyu merge.jsonl> --image-root <images> --out <run> [--min 0.5 --max 0.7]
    python filter.py run=<run> filter=judge            # re-score with our judge: <run>/scores, <run>/filter/...

Both write a finished generation run dir (``samples.jsonl``, ``llava.json`` [+ ``rec_shikra.jsonl``],
``manifest.json`` with the image root), so ``filter.py``, ``evaluate.py`` and ``python -m genixer.report``
take it like one of ours. ``fuyu`` also writes the original's Fuyu verdicts, mapped to our judge's
annotation, as a filter run ``<run>/filter/fuyu8b``: rows Fuyu said Yes to with ``p_yes`` in [--min, --max]
(selected.jsonl with every drop's reason, llava.json of the kept rows; ``write_fuyu_selection`` takes any ``Rule``s).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from genixer.data.exports import export
from genixer.data.sources.files import AnnotationError
from genixer.data.sources.genixer_outputs import FUYU, FuyuOutputs, GenixerOutputs
from genixer.filtering.selection import Rule
from genixer.runs.files import write_json, write_jsonl
from genixer.runs.layout import MANIFEST, SELECTED, RunDir, RunError, code_version

REPO = Path(__file__).resolve().parents[3]


def manifest(stage: str, rows: int, **content) -> dict:
    return {"stage": stage, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "code_version": code_version(),
            "rows": rows, "status": "ok", "failure": None, **content}


def write_generation_run(reader: GenixerOutputs, out: str | Path) -> dict:
    """The reader's rows as a finished generation run dir at ``out``; returns its manifest."""
    run = RunDir(out)
    if run.finished:
        raise RunError(f"{run.path} already holds a finished run: import into another folder")
    rows = sorted(reader.load(), key=lambda r: r["id"])
    counts = {"samples": len(rows), "status": dict(Counter(r["status"] for r in rows)),
              "reasons": dict(Counter(f"{r['status']}: {r['reason']}" for r in rows if r["status"] != "ok")),
              "left_out": dict(reader.skipped)}
    write_jsonl(run.samples, rows)
    outputs = {"samples": str(run.samples), **export([r for r in rows if r["status"] == "ok"], run.path)}
    generators = {r["provenance"]["generator"] for r in rows}
    generator = generators.pop() if len(generators) == 1 and None not in generators else reader.path.name
    inputs = {"generator": generator, "task": reader.task.name, "queries": str(reader.path.resolve()),
              "image_root": str(reader.image_root.resolve()), "released": str(reader.path.resolve())}
    content = manifest("generate", len(rows), inputs=inputs, counts=counts, outputs=outputs)
    write_json(run.manifest, content)
    return content


def write_fuyu_selection(run: str | Path, rules: dict[str, Rule], name: str = FUYU) -> dict:
    """A filter run ``<run>/filter/<name>`` selecting an imported Fuyu run's rows by their released verdicts."""
    from genixer.pipelines.filter import select_rows  # the filter stage's own selection and counts

    source = RunDir(run)
    rows = source.rows("generate")
    verdicts = {r["id"]: r["released_scores"][FUYU] for r in rows if FUYU in r.get("released_scores", {})}
    if not verdicts:
        raise RunError(f"{source.path}: no row holds released Fuyu verdicts (released_scores.{FUYU})")
    selected, counts = select_rows(rows, {FUYU: verdicts}, rules)
    out = source.filter(name)
    write_jsonl(out / SELECTED, selected)
    outputs = {"selected": str(out / SELECTED), **export([r for r in selected if r["kept"]], out)}
    inputs = {"run": str(source.path.resolve()), "filter": name,
              "image_root": source.read_manifest()["inputs"]["image_root"],
              "scorers": {FUYU: {"released": "the original's Fuyu-8B outputs (genixer_outputs.fuyu_scores)"}},
              "rules": {n: {"_target_": "genixer.filtering.selection.Rule", **asdict(r)} for n, r in rules.items()}}
    content = manifest("filter", len(selected), inputs=inputs, counts=counts, outputs=outputs)
    write_json(out / MANIFEST, content)
    return content


def load_task(name: str):
    """``conf/task/<name>.yaml`` instantiated as the generation stage does."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    os.environ.setdefault("GENIXER_ROOT", str(REPO))
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return instantiate(compose(config_name="generate", overrides=[f"task={name}"]).task)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genixer.data.sources.released_runs", description=(
        "Import the original Genixer_L's generation or Fuyu-filter outputs as a generation run dir."))
    parser.add_argument("kind", choices=["generation", "fuyu"], help="model_genixer_eval.py or GenQA_filtering_mp.py output")
    parser.add_argument("file", help="the released jsonl (e.g. a merged answers file)")
    parser.add_argument("--image-root", required=True, help="the folder its image paths are relative to")
    parser.add_argument("--out", required=True, help="the run dir to write")
    parser.add_argument("--task", default="common_vqa", help="conf/task name that parses the texts (default common_vqa)")
    parser.add_argument("--min", type=float, default=0.5, help="fuyu: keep rows Fuyu said Yes to, p_yes >= this (0.5)")
    parser.add_argument("--max", type=float, default=None, help="fuyu: ... and p_yes <= this (the paper's band: 0.7)")
    args = parser.parse_args(argv)
    reader = (FuyuOutputs if args.kind == "fuyu" else GenixerOutputs)(args.file, args.image_root, load_task(args.task))
    try:
        content = write_generation_run(reader, args.out)
        print(f"{args.out}: {content['counts']}")
        if args.kind == "fuyu":
            where = "command line, on the released Fuyu-8B verdicts"
            rules = {"fuyu_yes": Rule(FUYU, "verdict", equals="Yes", chosen_on=where),
                     "fuyu_p_yes": Rule(FUYU, "p_yes", min=args.min, max=args.max, chosen_on=where)}
            selection = write_fuyu_selection(args.out, rules)
            counts = selection["counts"]
            print(f"{Path(args.out) / 'filter' / FUYU}: kept {counts['kept']} of {counts['candidates']}")
    except (AnnotationError, RunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
