"""Oracle-checked quality of generated samples on mini-world images, beside trivial baselines.

Each accepted sample is checked by the world's oracle for its family; the same check grades a
trivial baseline answer for the same sample (majority answer, option A, central box, first
candidate, ...). Accuracy counts correct samples over all parsed ones: unverifiable samples
count as not correct.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from genixer.miniworld import Baselines, Oracle, majority_answers

# task name -> (family checked, what its accuracy means)
FAMILIES = {
    "common_vqa": ("qa", "QA correct"), "adv_vqa": ("qa", "QA correct"), "long_qa": ("qa", "QA correct"),
    "mc_vqa": ("mc", "option correct"), "md": ("md", "checkable pairs ok"), "md_long": ("md", "checkable pairs ok"),
    "rec": ("rec", "IoU>=.5 + named"), "reg": ("reg", "names boxed obj"),
    "pointqa_local": ("point", "QA correct"), "pointqa_v7w": ("v7w", "picks named obj"),
    "qca_box": ("grounded", "boxes + answer"), "rd": ("grounded", "boxes + answer"),
}


def expand_runs(paths: list[str]) -> list[Path]:
    """Generation run dirs; a multirun sweep dir stands for the runs inside it."""
    runs = []
    for path in map(Path, paths):
        inside = sorted(p.parent for p in path.glob("*/samples.jsonl"))
        runs += [path] if (path / "samples.jsonl").exists() or not inside else inside
    return runs


def expand_filter_runs(paths: list[str]) -> list[Path]:
    """Filter run dirs (holding ``selected.jsonl``); any folder above them stands for those inside."""
    runs = []
    for path in map(Path, paths):
        runs += [path] if (path / "selected.jsonl").exists() else sorted(p.parent for p in path.rglob("selected.jsonl"))
    return runs


def load_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_samples(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir, "samples.jsonl")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a generation run dir (run generate.py first)")
    return load_rows(path)


class MiniWorldOracle:
    """Per-family accuracy of generation runs, with the trivial baseline of each family."""

    def __init__(self, instances: str, vqa_annotations: str) -> None:
        self.oracle = Oracle.from_instances(instances)
        self.baselines = Baselines(self.oracle, majority_answers(vqa_annotations))

    def evaluate(self, run_dirs: list[str]) -> dict[str, dict]:
        return {self._name(d): self.evaluate_run(load_samples(d)) for d in expand_runs(run_dirs)}

    @staticmethod
    def _name(run_dir: Path) -> str:
        """``<generator>:<task>`` from the run's manifest (the dir name without one)."""
        manifest = run_dir / "manifest.json"
        if not manifest.exists():
            return run_dir.name
        info = json.loads(manifest.read_text())
        return f"{Path(info['generator']).name}:{info['task']}"

    def evaluate_run(self, rows: list[dict]) -> dict:
        status = Counter(r["status"] for r in rows)
        parsed = [r for r in rows if r["status"] == "ok"]
        result = {
            "samples": len(rows),
            "errors": status["error"],
            "parse_reject_rate": status["rejected"] / max(1, len(rows) - status["error"]),
            "rejects": dict(Counter(r["reason"] for r in rows if r["status"] == "rejected")),
            "families": {},
        }
        for family, group in self._by_family(parsed).items():
            result["families"][family] = self._score(family, group)
        return result

    @staticmethod
    def _by_family(rows: list[dict]) -> dict[str, list[dict]]:
        groups: dict[str, list[dict]] = {}
        for r in rows:
            name = r["parsed"].get("task", r["task"])  # the agnostic parser names the family it saw
            groups.setdefault(name, []).append(r)
        return groups

    def _score(self, task: str, rows: list[dict]) -> dict:
        if task not in FAMILIES:
            return {"n": len(rows), "metric": "no oracle for this task"}
        family, metric = FAMILIES[task]
        check = getattr(self, f"_{family}")
        verdicts = [check(self.oracle.image_id(r["image"]), r["parsed"]) for r in rows]
        statuses = Counter(v[2] for v in verdicts)
        return {
            "n": len(rows),
            "metric": metric,
            "accuracy": sum(v[0] for v in verdicts) / len(rows),
            "baseline": sum(v[1] for v in verdicts) / len(rows),
            "unverifiable": statuses["unverifiable"] / len(rows),
        }

    def evaluate_filters(self, filter_dirs: list[str]) -> dict[str, dict]:
        """Per filter run and family: how well "kept" predicts "oracle-correct", and what filtering gains."""
        return {self._filter_name(d): self.evaluate_selection(load_rows(d / "selected.jsonl"))
                for d in expand_filter_runs(filter_dirs)}

    @classmethod
    def _filter_name(cls, filter_dir: Path) -> str:
        """``<generator>:<task>:<filter>`` (the filtered run's name, as in the generation table)."""
        manifest = filter_dir / "manifest.json"
        run = Path(json.loads(manifest.read_text())["run"]) if manifest.exists() else filter_dir.parent.parent
        return f"{cls._name(run)}:{filter_dir.name}"

    def evaluate_selection(self, rows: list[dict]) -> dict[str, dict]:
        """Precision (correct among kept), recall (kept among correct), and oracle accuracy of all vs kept."""
        result = {}
        for task, group in self._by_family(rows).items():
            if task not in FAMILIES:
                continue
            check = getattr(self, f"_{FAMILIES[task][0]}")
            correct = [check(self.oracle.image_id(r["image"]), r["parsed"])[0] for r in group]
            kept = [r["kept"] for r in group]
            both = sum(c and k for c, k in zip(correct, kept))
            wrong = len(group) - sum(correct)
            result[task] = {
                "n": len(group), "kept": sum(kept), "correct": sum(correct),
                "precision": both / sum(kept) if any(kept) else 0.0,
                "recall": both / sum(correct) if any(correct) else 0.0,
                "wrong_dropped": sum(not c and not k for c, k in zip(correct, kept)) / wrong if wrong else 0.0,
                "accuracy_all": sum(correct) / len(group),
                "accuracy_kept": both / sum(kept) if any(kept) else 0.0,
            }
        return result

    # one checker per family: (correct, baseline correct, status) ------------------------------
    def _qa(self, image_id: int, p: dict):
        v = self.oracle.check_qa(image_id, p["question"], p["answer"])
        return v.correct, self.baselines.qa(image_id, p["question"]).correct, v.status

    def _mc(self, image_id: int, p: dict):
        v = self.oracle.check_mc(image_id, p["question"], p["choices"], p["answer_index"])
        return v.correct, self.baselines.mc(image_id, p["question"], p["choices"]).correct, v.status

    def _md(self, image_id: int, p: dict):
        """Correct when every checkable pair is (descriptions like "What is shown?" are not checkable)."""
        pairs = [self._qa(image_id, turn) for turn in p["turns"]]
        checked = [(c, b) for c, b, s in pairs if s != "unverifiable"]
        if not checked:
            return False, False, "unverifiable"
        return all(c for c, _ in checked), all(b for _, b in checked), "checked"

    def _rec(self, image_id: int, p: dict):
        v = self.oracle.check_rec(image_id, p["question"], tuple(p["box"]))
        return v.correct, self.baselines.rec(image_id, p["question"]).correct, "checked"

    def _reg(self, image_id: int, p: dict):
        v = self.oracle.check_reg(image_id, p["box"], p["expression"])
        return v.correct, self.baselines.reg(image_id, p["box"]).correct, v.status

    def _point(self, image_id: int, p: dict):
        where = {"box": p.get("box"), "point": p.get("point")}
        v = self.oracle.check_point_qa(image_id, p["question"], p["answer"], **where)
        return v.correct, self.baselines.point_qa(image_id, p["question"], **where).correct, v.status

    def _v7w(self, image_id: int, p: dict):
        v = self.oracle.check_v7w(image_id, p["question"], p["candidates"], p["answer"])
        return v.correct, self.baselines.v7w(image_id, p["question"], p["candidates"]).correct, v.status

    def _grounded(self, image_id: int, p: dict):
        args = (image_id, p["question"], p["answer"], p["question_boxes"], p["answer_boxes"])
        v = self.oracle.check_grounded(*args)
        return v.correct, self.baselines.grounded(*args).correct, v.answer_status


def examples(run_dirs: list[str], per_run: int = 1) -> str:
    """A few accepted samples per run, as generated, so a reader sees what the numbers count."""
    lines = []
    for run in expand_runs(run_dirs):
        ok = [r for r in load_samples(run) if r["status"] == "ok"][:per_run]
        lines += [f"[{run.name}] {r['image']}: {r['text']!r}" for r in ok]
    return "\n".join(lines)


def format_table(results: dict[str, dict]) -> str:
    """One line per (run, family): count, reject rate, oracle accuracy beside its baseline."""
    header = ["run", "samples", "reject", "errors", "family", "n", "metric", "accuracy", "baseline", "unverif"]
    lines = [header]
    for run, m in results.items():
        for family, f in m["families"].items() or {"-": {}}.items():
            lines.append([run, str(m["samples"]), f"{m['parse_reject_rate']:.1%}", str(m["errors"]), family,
                          str(f.get("n", 0)), f.get("metric", "-"),
                          *(f"{f[k]:.1%}" if k in f else "-" for k in ("accuracy", "baseline", "unverifiable"))])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in lines)


def format_filter_table(results: dict[str, dict]) -> str:
    """One line per (filter run, family): kept of n, precision / recall of "kept" for "correct", accuracy gain."""
    header = ["filter run", "family", "n", "kept", "precision", "recall", "wrong dropped", "acc. all", "acc. kept"]
    lines = [header]
    for run, families in results.items():
        for family, f in families.items():
            lines.append([run, family, str(f["n"]), str(f["kept"]),
                          *(f"{f[k]:.1%}" for k in ("precision", "recall", "wrong_dropped", "accuracy_all", "accuracy_kept"))])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in lines)
