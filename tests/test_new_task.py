"""Adding a task is one class and one YAML: a toy task defined here runs generate -> filter -> evaluate
with no other change to the library or its configs."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from conftest import ROOT, compose_config
from genixer.pipelines import evaluate, filter, generate
from genixer.tasks import Parsed, QAPair, Task, format_qa, require_text

ATTRIBUTE_QUESTION = re.compile(r"(?i)^what (?:colou?r is|is the shape of) .+\?$")


class AttributeQA(Task):
    """Only questions about an object's colour or shape, answered by one word; its records are Common VQA's."""

    def target(self, annotation: Mapping[str, Any], key: object = None) -> str:
        return format_qa(require_text(annotation, "question"), require_text(annotation, "answer"))

    def parse_pair(self, question: str, answer: str) -> Parsed:
        if not ATTRIBUTE_QUESTION.match(question):
            return Parsed.reject("not an attribute question")
        if len(answer.split()) != 1:
            return Parsed.reject("not a one-word answer")
        return Parsed.accept({"question": question, "answer": answer})

    def qa_pairs(self, record: Mapping[str, Any]) -> list[QAPair]:
        return [QAPair(record["question"], record["answer"])]


TOY_YAML = f"""\
# A toy task: Common VQA's protocol suffix (so the shipped generator writes QA pairs), attribute questions only.
_target_: {__name__}.AttributeQA
name: attribute_qa
family: common_vqa
suffix: "\\nThis is the Common VQA task."
instructions:
  _target_: genixer.tasks.TemplatePool
  path: ${{paths.templates}}/generic_instructions.json
"""


def test_a_new_task_runs_end_to_end(tmp_path, small_world):
    (tmp_path / "conf/task").mkdir(parents=True)
    (tmp_path / "conf/task/attribute_qa.yaml").write_text(TOY_YAML)
    common = [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", f"paths.mini_world={small_world}", "world=mini",
              "world.num_train=60", "world.num_heldout=12", "world.num_val=4"]
    run = tmp_path / "generate"
    counts = generate.run(compose_config("generate", [*common, f"paths.output_dir={run}", "task=attribute_qa",
                                                      f"generator={ROOT / 'checkpoints/genixer_l_mini'}"]))
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    ok = [r for r in rows if r["status"] == "ok"]
    assert counts["samples"] == 12 and len(ok) >= 3, counts
    assert all(r["task"] == "attribute_qa" and r["family"] == "common_vqa" and len(r["qa_pairs"]) == 1 for r in ok)
    assert {r["reason"] for r in rows if r["status"] == "rejected"} <= {"not an attribute question", "not a one-word answer"}

    selection = run / "filter/judge_mini"
    filter.run(compose_config("filter", [*common, f"paths.output_dir={selection}", f"run={run}", "filter=judge_mini"]))
    selected = [json.loads(line) for line in (selection / "selected.jsonl").read_text().splitlines()]
    assert len(selected) == len(ok) and all(len(r["scores"]["judge"]["p_yes"]) == 1 for r in selected)

    results = evaluate.run(compose_config("evaluate", [*common, f"paths.output_dir={tmp_path / 'eval'}",
                                                       f"runs=[{run}]", f"filters=[{run}]"]))
    family = results["generation"]["genixer_l_mini:attribute_qa"]["families"]["common_vqa"]
    assert family["n"] == len(ok) and family["metric"] == "QA correct" and family["accuracy"] > family["baseline"]
    assert results["filters"]["genixer_l_mini:attribute_qa:judge_mini"]["common_vqa"]["n"] == len(ok)

    # choosing a threshold over the filter run's rows: what lowest_threshold gives on the same values and verdicts
    from hydra.utils import instantiate

    from genixer.evaluation.thresholds import lowest_threshold
    from genixer.runs.layout import RunDir

    spec = "choose_threshold={scorer: judge, field: p_yes, min_precision: 0.6}"
    cfg = compose_config("evaluate", [*common, f"paths.output_dir={tmp_path / 'choose'}", f"filters=[{run}]", spec])
    chosen = evaluate.run(cfg)["threshold"]
    rows = RunDir(selection).rows("filter")
    oracle = instantiate(cfg.oracle)
    expected = lowest_threshold([min(r["scores"]["judge"]["p_yes"]) for r in rows], [oracle.check(r)[0] for r in rows], 0.6,
                                ["genixer_l_mini:attribute_qa:judge_mini"] * len(rows))
    assert chosen == expected and chosen is not None and chosen["rows"] == len(ok)
    assert "chosen on the heldout split: judge.p_yes >= " in (tmp_path / "choose/table.txt").read_text()
