"""Trivial baselines' answers files for the mini-world model benchmarks (LLaVA answers layout), scored like a model's:

    python -m genixer.miniworld.benchmark_baselines --world data/mini_world --out runs/baselines
    python evaluate.py benchmark=mini_world answers=runs/baselines     (paths.mini_world=<the same world>)

VQA: the majority training answer of the question's type (the world's grammar parses the type); REC: the central box.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from genixer.runs.files import write_jsonl
from genixer.tasks import format_box

from .baselines import Baselines
from .family_files import ANNOTATION_FILES
from .oracle import CENTRAL_BOX, majority_answers

MODEL_ID = "trivial baseline"


def write_baseline_answers(world: str | Path, out: str | Path) -> Path:
    """``<out>/mini_world_vqa.jsonl`` and ``<out>/mini_world_rec.jsonl`` for the world's held-out benchmark files."""
    ann, out = Path(world) / "annotations", Path(out)
    answer_for = Baselines(None, majority_answers(ann / ANNOTATION_FILES["vqa_annotations"])).answer_for
    questions = json.loads((ann / ANNOTATION_FILES["vqa_questions_heldout"]).read_text())["questions"]
    write_jsonl(out / "mini_world_vqa.jsonl", [
        {"question_id": q["question_id"], "prompt": q["question"], "text": answer_for(q["question"]) or "yes",
         "model_id": MODEL_ID} for q in questions])
    lines = (ann / ANNOTATION_FILES["rec_heldout"]).read_text().splitlines()
    write_jsonl(out / "mini_world_rec.jsonl", [
        {"question_id": k, "prompt": json.loads(line)["expression"], "text": format_box(CENTRAL_BOX), "model_id": MODEL_ID}
        for k, line in enumerate(lines)])
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(write_baseline_answers(args.world, args.out))
