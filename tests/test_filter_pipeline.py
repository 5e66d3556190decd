"""The filter stage end to end on the CPU: scores annotate, selection drops with reasons, re-selection
reuses scores, settings mismatches refuse, 1 vs 2 DDP processes agree, and kill -9 then resume."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import open_clip
import pytest
import torch

from conftest import ROOT, accepted, compose_config, kill_and_tear, write_generation_run
from genixer.backbones.open_clip import save_open_clip
from genixer.filtering.selection import Rule, select
from genixer.tasks.boxes import normalize_box

TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
JUDGE = ROOT / "checkpoints/genixer_l_mini"  # any LLaVA checkpoint of ours can be a (meaningless) judge


def test_rules_give_countable_reasons():
    band = Rule("judge", "p_yes", min=0.5, max=0.7)
    strict = Rule("clip", "raw", min=60, exclusive=True)
    assert band.check({"judge": {"p_yes": [0.6, 0.55]}}) is None
    assert band.check({"judge": {"p_yes": [0.6, 0.9]}}) == ("judge: p_yes > 0.7", "p_yes=0.9 (pair 1)")
    assert band.check({"judge": {"p_yes": 0.2}}) == ("judge: p_yes < 0.5", "p_yes=0.2")
    assert band.check({"clip": {"raw": 10.0}}) is None  # the judge scored nothing here: not applicable
    assert strict.check({"clip": {"raw": 60.0}})[0] == "clip: raw <= 60"
    assert strict.check({"clip": {"status": "rejected", "reason": "crop 3x4 px under min side 12"}}) == (
        "clip rejected", "crop 3x4 px under min side 12")
    assert Rule("judge", "verdict", equals="Yes").check({"judge": {"verdict": ["Yes", None]}})[0] == "judge: verdict missing"
    drops = select({"judge": {"p_yes": [0.1]}, "clip": {"raw": 70.0}}, {"yes": band, "raw": strict})
    assert drops == [{"rule": "yes", "reason": "judge: p_yes < 0.5", "detail": "p_yes=0.1 (pair 0)"}]
    with pytest.raises(ValueError, match="needs min, max or equals"):
        Rule("judge", "p_yes")


@pytest.fixture(scope="module")
def generation_run(tmp_path_factory, small_world) -> Path:
    """A finished generation run dir written by hand from ground truth: QA rows, REC rows, one error, one tiny box."""
    run = tmp_path_factory.mktemp("generated")
    recs = [json.loads(line) for line in (small_world / "annotations/rec_train.jsonl").read_text().splitlines()][:10]
    rows = []
    for k, rec in enumerate(recs):
        base = {"image": rec["img_path"], "width": rec["width"], "height": rec["height"]}
        rows.append(accepted("common_vqa", {"question": "What is shown?", "answer": rec["expression"]},
                             f"{k:03d}/common_vqa/0", **base))
        box = normalize_box(rec["bbox"], rec["width"], rec["height"]) if k else (0.1, 0.1, 0.12, 0.12)  # k=0: tiny
        record = {"question": f"Where is {rec['expression']}?", "expression": rec["expression"], "box": box}
        rows.append(accepted("rec", record, f"{k:03d}/rec/0", **base))
    rows.append(accepted("md", {"turns": [{"question": "a?", "answer": "b"}, {"question": "c?", "answer": "d"}]},
                         "999/md/0", image="train/missing.png", width=10, height=10))
    rows.append({"id": "998/common_vqa/0", "task": "common_vqa", "image": recs[0]["img_path"], "status": "rejected",
                 "reason": "no answer"})
    write_generation_run(run, sorted(rows, key=lambda r: r["id"]), small_world / "images")
    torch.manual_seed(0)
    save_open_clip(open_clip.CLIP(**TINY_CLIP).eval(), TINY_CLIP, run.parent / "clip")
    return run


def filter_cmd(run: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(ROOT / "filter.py"), f"run={run}", "filter=mini", f"filter.scorers.judge.scorer.path={JUDGE}",
            f"filter.scorers.clip.scorer.checkpoint={run.parent / 'clip'}", "filter.scorers.judge.batch_size=4",
            "filter.scorers.clip.batch_size=4", *overrides]


ENV = {**os.environ, "GENIXER_ROOT": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run_filter(*command: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def selected(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "selected.jsonl").read_text().splitlines()]


def same_selection(rows: list[dict], expected: list[dict]) -> bool:
    """Same rows, decisions and scores, scores to 1e-3: other batch mates pad differently, and this
    untrained judge's P(Yes) is a ratio of two tiny masses, so float noise is amplified."""
    def flat(value, approx: bool):
        if isinstance(value, dict):
            return {k: flat(v, approx) for k, v in value.items() if k != "detail"}
        if isinstance(value, list):
            return [flat(v, approx) for v in value]
        return pytest.approx(value, abs=1e-3) if approx and isinstance(value, float) else value
    return flat(rows, False) == flat(expected, True)


@pytest.fixture(scope="module")
def reference(generation_run, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("reference")
    run_filter(*filter_cmd(generation_run, f"hydra.run.dir={out}", f"scores_dir={out / 'scores'}"))
    return selected(out)


def test_scores_annotate_and_selection_explains_every_drop(generation_run, reference, tmp_path):
    assert len(reference) == 21  # every ok row is a candidate; the rejected one is counted upstream
    by_id = {r["id"]: r for r in reference}
    assert len(by_id["999/md/0"]["scores"]["judge"]["p_yes"]) == 2  # per pair
    assert by_id["999/md/0"]["drops"][0]["reason"] == "judge error"
    assert by_id["000/rec/0"]["drops"][0]["reason"] == "clip rejected"
    assert "under min side 12" in by_id["000/rec/0"]["drops"][0]["detail"]
    assert all("clip" in r["scores"] and "judge" not in r["scores"] for r in reference if "/rec/" in r["id"])
    assert all(r["kept"] == (not r["drops"]) for r in reference)

    # Re-selection with other thresholds reuses the stored scores: nothing is scored again.
    out = tmp_path / "loose"
    run_filter(*filter_cmd(generation_run, f"hydra.run.dir={out}", f"scores_dir={tmp_path / 'scores'}"))
    run_filter(*filter_cmd(generation_run, f"hydra.run.dir={out}", f"scores_dir={tmp_path / 'scores'}",
                           "filter.rules.judge_yes.min=0.0", "filter.rules.clip_match.min=-1.0"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["throughput"]["items_scored"] == 0
    assert manifest["counts"]["kept"] == 19 and manifest["counts"]["not_ok_upstream"] == {"rejected": 1}
    assert set(manifest["counts"]["dropped_by_reason"]) == {"judge error", "clip rejected"}
    kept = json.loads((out / "llava.json").read_text())
    rec = [json.loads(line) for line in (out / "rec_shikra.jsonl").read_text().splitlines()]
    assert len(kept) == 19 and len(rec) == 9 and all("clip_score" in r for r in rec)


def test_changed_scorer_settings_refuse_stale_scores(generation_run, tmp_path):
    """In process (the CLI path is the tests around it): stored scores are not reused with other scorer settings."""
    from genixer.pipelines import filter as filter_stage

    common = [f"run={generation_run}", "filter=clip_mini", f"scores_dir={tmp_path / 'scores'}",
              f"filter.scorers.clip.scorer.checkpoint={generation_run.parent / 'clip'}"]
    filter_stage.run(compose_config("filter", [*common, f"paths.output_dir={tmp_path / 'a'}"]))
    with pytest.raises(Exception, match="holds results made with other settings"):
        filter_stage.run(compose_config("filter", [*common, f"paths.output_dir={tmp_path / 'b'}",
                                                   "filter.scorers.clip.scorer.min_side=30"]))


def test_two_ddp_processes_match_one_process(generation_run, reference, tmp_path):
    run_filter(*filter_cmd(generation_run, f"hydra.run.dir={tmp_path / 'out'}", f"scores_dir={tmp_path / 'scores'}",
                           "trainer=ddp_cpu"))
    judge = [tmp_path / f"scores/judge/shards/rank{r}.jsonl" for r in (0, 1)]
    ids = [[json.loads(line)["id"] for line in p.read_text().splitlines()] for p in judge]
    assert ids[0] and ids[1] and not set(ids[0]) & set(ids[1]) and len(ids[0]) + len(ids[1]) == 12
    # contiguous blocks, not items dealt out in turn: an image's items (its QA pairs, its crops) stay on one rank
    assert len(ids[0]) == len(ids[1]) == 6 and max(ids[0]) < min(ids[1])
    assert same_selection(selected(tmp_path / "out"), reference)


def test_resume_after_kill_matches_uninterrupted_run(generation_run, reference, tmp_path):
    command = filter_cmd(generation_run, f"hydra.run.dir={tmp_path / 'out'}", f"scores_dir={tmp_path / 'scores'}",
                         "filter.scorers.judge.batch_size=1")
    shard = tmp_path / "scores/judge/shards/rank0.jsonl"
    complete = kill_and_tear(command, ENV, shard, b'{"id": "005/common_vqa/0#0", "p_y')
    run_filter(*command)
    lines = shard.read_text().splitlines()
    assert len(lines) == len({json.loads(line)["id"] for line in lines}) == 12
    assert same_selection(selected(tmp_path / "out"), reference)
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["throughput"]["items_scored"] == 12 - complete + 10  # the rest of the judge + all CLIP items


def test_oracle_precision_recall_of_a_selection(small_world):
    from genixer.evaluation.tables import filter_table
    from genixer.miniworld.evaluator import MiniWorldOracle

    ann = small_world / "annotations"
    bench = MiniWorldOracle(str(ann / "instances_train.json"), str(ann / "v2_mini_train_annotations.json"))
    recs = [json.loads(line) for line in (ann / "rec_train.jsonl").read_text().splitlines()][:8]
    rows = []
    for k, rec in enumerate(recs):
        box = list(normalize_box(rec["bbox"], rec["width"], rec["height"]))
        if k % 2:  # a wrong box: the mirror image of the right one
            box = [1 - box[2], 1 - box[3], 1 - box[0], 1 - box[1]]
        record = {"question": f"Where is {rec['expression']}?", "expression": rec["expression"], "box": tuple(box)}
        rows.append(accepted("rec", record, str(k), rec["img_path"], kept=k < 4))
    correct = [bench.check(r)[0] for r in rows]
    assert sum(correct) >= 3  # mostly the even rows (a mirrored box can still land on a twin)
    result = bench.evaluate_selection(rows)["rec"]
    kept_correct = sum(c for c, r in zip(correct, rows) if r["kept"])
    assert result["n"] == 8 and result["kept"] == 4 and result["correct"] == sum(correct)
    assert result["precision"] == kept_correct / 4 == result["accuracy_kept"]
    assert result["recall"] == kept_correct / sum(correct) and result["accuracy_all"] == sum(correct) / 8
    assert "rec" in filter_table({"run:mini": {"rec": result}})
