"""Oracle-checked quality of generated samples on mini-world images, beside trivial baselines.

Each accepted sample is checked by the world's oracle for its ``family`` (the typed fields its task
wrote: ``qa_pairs``, ``regions``, and the family record ``parsed``); the same check grades a
trivial baseline answer for the same sample (majority answer, option A, central box, first
candidate, ...). Accuracy counts correct samples over all parsed ones: unverifiable samples count
as not correct. A new family needs one checker here; a new task of a known family needs nothing.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from genixer.evaluation.thresholds import lowest_threshold, row_value
from genixer.miniworld import Baselines, Oracle, majority_answers, world_seed

# family -> (checker, what its accuracy means)
FAMILIES = {
    "common_vqa": ("qa", "QA correct"), "adv_vqa": ("qa", "QA correct"), "long_qa": ("qa", "QA correct"),
    "mc_vqa": ("mc", "option correct"), "md": ("md", "checkable pairs ok"), "md_long": ("md", "checkable pairs ok"),
    "rec": ("rec", "box hits referent"), "reg": ("reg", "names boxed obj"),
    "pointqa_local": ("point", "QA correct"), "pointqa_v7w": ("v7w", "picks named obj"),
    "qca_box": ("grounded", "boxes + answer"), "rd": ("grounded", "boxes + answer"),
}


class MiniWorldOracle:
    """Per-family accuracy of generated rows (with each family's trivial baseline), and how well a
    filter's "kept" predicts "correct"."""

    def __init__(self, instances: str, vqa_annotations: str, split: str = "heldout", world_file: str | None = None) -> None:
        self.split = split  # which images: "heldout" for reported tables, "val" for choosing settings
        # world.json's seed redraws what the instances file does not record (a caption's background)
        self.oracle = Oracle.from_instances(instances, world_seed(world_file))
        self.baselines = Baselines(self.oracle, majority_answers(vqa_annotations))

    def evaluate_run(self, rows: list[dict]) -> dict:
        status = Counter(r["status"] for r in rows)
        result = {
            "samples": len(rows),
            "errors": status["error"],
            "parse_reject_rate": status["rejected"] / max(1, len(rows) - status["error"]),
            "rejects": dict(Counter(r["reason"] for r in rows if r["status"] == "rejected")),
            "families": {},
        }
        for family, group in by_family(r for r in rows if r["status"] == "ok").items():
            result["families"][family] = self._score(family, group)
        return result

    def check(self, row: dict) -> tuple[bool, bool, str]:
        """(correct, baseline correct, status) of one accepted row of a known family."""
        return getattr(self, f"_{FAMILIES[row['family']][0]}")(self.oracle.image_id(row["image"]), row)

    def _score(self, family: str, rows: list[dict]) -> dict:
        if family not in FAMILIES:
            return {"n": len(rows), "metric": "no oracle for this family"}
        verdicts = [self.check(r) for r in rows]
        statuses = Counter(v[2] for v in verdicts)
        return {
            "n": len(rows),
            "metric": FAMILIES[family][1],
            "accuracy": sum(v[0] for v in verdicts) / len(rows),
            "baseline": sum(v[1] for v in verdicts) / len(rows),
            "unverifiable": statuses["unverifiable"] / len(rows),
        }

    def evaluate_selection(self, rows: list[dict]) -> dict[str, dict]:
        """Precision (correct among kept), recall (kept among correct), and oracle accuracy of all vs kept."""
        result = {}
        for family, group in by_family(rows).items():
            if family not in FAMILIES:
                continue
            correct = [self.check(r)[0] for r in group]
            kept = [r["kept"] for r in group]
            both = sum(c and k for c, k in zip(correct, kept))
            wrong = len(group) - sum(correct)
            result[family] = {
                "n": len(group), "kept": sum(kept), "correct": sum(correct),
                "precision": both / sum(kept) if any(kept) else 0.0,
                "recall": both / sum(correct) if any(correct) else 0.0,
                "wrong_dropped": sum(not c and not k for c, k in zip(correct, kept)) / wrong if wrong else 0.0,
                "accuracy_all": sum(correct) / len(group),
                "accuracy_kept": both / sum(kept) if any(kept) else 0.0,
            }
        return result

    def choose_threshold(self, runs: dict[str, list[dict]], scorer: str, field: str, min_precision: float,
                         confidence: float | None = None, families: Sequence[str] | None = None) -> dict | None:
        """``lowest_threshold`` over the rows of known families that ``scorer`` annotated (the runs' other rows
        pass its rule untouched), reaching ``min_precision`` in every run (its lower bound at ``confidence``, if
        given), with "correct" this oracle's check; only the rows of ``families`` choose it when given (the others
        are filtered at it all the same)."""
        unknown = set(families or ()) - set(FAMILIES)
        if unknown:
            raise ValueError(f"choose_threshold families {sorted(unknown)}: no oracle check (known: {sorted(FAMILIES)})")
        rows = [(name, r) for name, group in runs.items() for r in group
                if r["family"] in (families or FAMILIES) and r.get("scores", {}).get(scorer)]
        return lowest_threshold([row_value(r["scores"], scorer, field) for _, r in rows],
                                [self.check(r)[0] for _, r in rows], min_precision, [name for name, _ in rows], confidence)

    # one checker per family: (correct, baseline correct, status) ------------------------------
    def _qa(self, image_id: int, row: dict):
        return self._pair(image_id, row["qa_pairs"][0])

    def _pair(self, image_id: int, pair: dict):
        v = self.oracle.check_qa(image_id, pair["question"], pair["answer"])
        return v.correct, self.baselines.qa(image_id, pair["question"]).correct, v.status

    def _mc(self, image_id: int, row: dict):
        p = row["parsed"]
        v = self.oracle.check_mc(image_id, p["question"], p["choices"], p["answer_index"])
        return v.correct, self.baselines.mc(image_id, p["question"], p["choices"]).correct, v.status

    def _md(self, image_id: int, row: dict):
        """Correct when every checkable pair is (descriptions like "What is shown?" are not checkable)."""
        pairs = [self._pair(image_id, pair) for pair in row["qa_pairs"]]
        checked = [(c, b) for c, b, s in pairs if s != "unverifiable"]
        if not checked:
            return False, False, "unverifiable"
        return all(c for c, _ in checked), all(b for _, b in checked), "checked"

    def _rec(self, image_id: int, row: dict):
        region = row["regions"][0]
        text = region["expression"] or row["parsed"]["question"]  # None: no question template matched
        v = self.oracle.check_rec(image_id, text, region["box"])
        return v.correct, self.baselines.rec(image_id, text).correct, v.status

    def _reg(self, image_id: int, row: dict):
        region = row["regions"][0]
        v = self.oracle.check_reg(image_id, region["box"], region["expression"])
        return v.correct, self.baselines.reg(image_id, region["box"]).correct, v.status

    def _point(self, image_id: int, row: dict):
        p = row["parsed"]
        where = {"box": p.get("box"), "point": p.get("point")}
        v = self.oracle.check_point_qa(image_id, p["question"], p["answer"], **where)
        return v.correct, self.baselines.point_qa(image_id, p["question"], **where).correct, v.status

    def _v7w(self, image_id: int, row: dict):
        p = row["parsed"]
        v = self.oracle.check_v7w(image_id, p["question"], p["candidates"], p["answer"])
        return v.correct, self.baselines.v7w(image_id, p["question"], p["candidates"]).correct, v.status

    def _grounded(self, image_id: int, row: dict):
        p = row["parsed"]
        args = (image_id, p["question"], p["answer"], p["question_boxes"], p["answer_boxes"])
        v = self.oracle.check_grounded(*args)
        return v.correct, self.baselines.grounded(*args).correct, v.status


def by_family(rows) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["family"], []).append(r)
    return groups
