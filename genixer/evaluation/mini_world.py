"""Oracle-checked quality of generated samples on mini-world images, beside trivial baselines."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from genixer.data.mini_world import CENTRAL_BOX, Oracle, majority_answers


def load_samples(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir, "samples.jsonl")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a generation run dir (run generate.py first)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MiniWorldOracle:
    """QA accuracy and REC IoU>=0.5 rate by the world's ground truth.

    QA accuracy counts correct answers over all parsed QA samples (unverifiable ones count
    as not correct); the baseline answers each question with the majority training answer
    of its type. REC counts a box correct when IoU >= 0.5 with the best-matching object and
    the question names that object's colour and shape; the baseline is a fixed central box.
    """

    def __init__(self, instances: str, vqa_annotations: str) -> None:
        self.oracle = Oracle.from_instances(instances)
        self.majority = majority_answers(vqa_annotations)

    def evaluate(self, run_dirs: list[str]) -> dict[str, dict]:
        return {self._name(d): self.evaluate_run(load_samples(d)) for d in run_dirs}

    @staticmethod
    def _name(run_dir: str) -> str:
        manifest = Path(run_dir, "manifest.json")
        return json.loads(manifest.read_text())["task"] if manifest.exists() else Path(run_dir).name

    def evaluate_run(self, rows: list[dict]) -> dict:
        status = Counter(r["status"] for r in rows)
        parsed = [r for r in rows if r["status"] == "ok"]
        qa = [r for r in parsed if "answer" in r["parsed"]]
        rec = [r for r in parsed if "box" in r["parsed"]]
        result = {
            "samples": len(rows),
            "errors": status["error"],
            "parse_reject_rate": status["rejected"] / max(1, len(rows) - status["error"]),
        }
        if qa:
            result.update(self._qa(qa))
        if rec:
            result.update(self._rec(rec))
        return result

    def _qa(self, rows: list[dict]) -> dict:
        verdicts = [self.oracle.check_qa(self._image_id(r), r["parsed"]["question"], r["parsed"]["answer"]) for r in rows]
        status = Counter(v.status for v in verdicts)
        baseline = sum(v.truth is not None and self.majority.get(v.qtype) == v.truth for v in verdicts)
        return {
            "qa": len(rows),
            "qa_accuracy": status["correct"] / len(rows),
            "qa_unverifiable": status["unverifiable"] / len(rows),
            "qa_baseline_majority": baseline / len(rows),
            "qa_types": dict(Counter(v.qtype or "unknown" for v in verdicts)),
        }

    def _rec(self, rows: list[dict]) -> dict:
        hits = base = iou_only = 0
        for r in rows:
            image_id, text = self._image_id(r), r["parsed"]["question"]
            verdict = self.oracle.check_rec(image_id, text, tuple(r["parsed"]["box"]))
            hits += verdict.correct
            iou_only += verdict.iou >= 0.5
            base += self.oracle.check_rec(image_id, text, CENTRAL_BOX).correct
        return {
            "rec": len(rows),
            "rec_iou50": hits / len(rows),
            "rec_iou50_any_object": iou_only / len(rows),
            "rec_baseline_central": base / len(rows),
        }

    def _image_id(self, row: dict) -> int:
        return self.oracle.image_id(row["image"])


def format_table(results: dict[str, dict]) -> str:
    """A plain-text table: one row per generation run."""
    cols = [("samples", "samples", "{:d}"), ("reject", "parse_reject_rate", "{:.1%}"),
            ("QA acc", "qa_accuracy", "{:.1%}"), ("QA base", "qa_baseline_majority", "{:.1%}"),
            ("QA unverif", "qa_unverifiable", "{:.1%}"), ("REC IoU>=.5", "rec_iou50", "{:.1%}"),
            ("REC base", "rec_baseline_central", "{:.1%}"), ("errors", "errors", "{:d}")]
    header = ["task"] + [c[0] for c in cols]
    lines = [header] + [[name] + [fmt.format(m[key]) if key in m else "-" for _, key, fmt in cols] for name, m in results.items()]
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in lines)
