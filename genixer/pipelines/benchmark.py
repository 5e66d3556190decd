"""Model benchmarks: answer a benchmark's questions with a model, then score the answers file.

    python evaluate.py benchmark=<name> model=<run or checkpoint dir>   # answer (sharded, resumable), then score
    python evaluate.py benchmark=<name> answers=<file>                   # score an existing answers file
    python evaluate.py benchmark=all model=<dir>                          # a suite: the paper's table

Per benchmark ``<run>/<name>/``: ``shards/`` (the predict loop's, resumed after a crash), ``answers.jsonl``
(the LLaVA eval layout: question_id, prompt, text, model_id) and a server's upload file where one scores the
split; then ``results.json``, ``table.txt`` and the manifest. In a suite a benchmark whose files are missing,
or whose judge has no key, is reported as such and the others go on.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from genixer.data.sources.files import AnnotationError
from genixer.evaluation.benchmarks import read_answers
from genixer.evaluation.gpt_judge import JudgeError, JudgeUnavailable
from genixer.evaluation.tables import benchmark_table, paper_table
from genixer.generation.loop import pending, predict
from genixer.generation.module import GenerationModule
from genixer.generation.queries import QuestionDataset
from genixer.generation.settings import Decoding
from genixer.pipelines.common import RunFailed, failure, prepare
from genixer.runs.files import atomic_write, write_json, write_jsonl
from genixer.runs.layout import claim, write_config, write_manifest
from genixer.runs.shards import SHARD_DIR, is_error, read_shards

log = logging.getLogger(__name__)
UNAVAILABLE = (OSError, AnnotationError, ValueError, KeyError)  # a benchmark's files missing or malformed


def run(cfg: DictConfig, out: Path) -> dict:
    suite = entries(cfg.benchmark)
    if bool(cfg.get("model")) == bool(cfg.get("answers")):
        raise ValueError(f"benchmark={cfg.benchmark.name} needs model=<run or checkpoint dir> (answer, then score) "
                         "or answers=<file> (score a LLaVA-layout answers file; a folder of <benchmark>.jsonl for a suite)")
    answerer = Answerer(cfg) if cfg.get("model") else None
    if answerer is None and not Path(cfg.answers).exists():
        raise FileNotFoundError(f"answers={cfg.answers}: no such file or folder")
    prepare(cfg)
    write_config(out, cfg)
    results = {name: one(cfg, out, name, node, answerer, single=len(suite) == 1) for name, node in suite}
    if answerer is not None and not answerer.is_global_zero:
        return {}
    tables = [benchmark_table(results)]
    if cfg.benchmark.get("columns"):
        model = answerer.model_id if answerer else answers_model_id(results) or Path(cfg.answers).stem
        tables.insert(0, paper_table(model, results, OmegaConf.to_container(cfg.benchmark.columns)))
    print(*tables, sep="\n\n", flush=True)
    results = {"benchmarks": results}
    failed = [f"{name}: {r['failure']}" for name, r in results["benchmarks"].items() if r.get("failure")]
    write_json(out / "results.json", results)
    atomic_write(out / "table.txt", "\n\n".join(tables) + "\n")
    inputs = {"model": str(Path(cfg.model).resolve())} if answerer else {"answers": str(Path(cfg.answers).resolve())}
    write_manifest(out, cfg, "evaluate", rows=0, status="failed" if failed else "ok", failure="; ".join(failed) or None,
                   inputs={**inputs, "benchmarks": [name for name, _ in suite]}, results=results)
    if failed:
        raise RunFailed("; ".join(failed))
    return results


def answers_model_id(results: dict[str, dict]) -> str | None:
    """The ``model_id`` the answers files name, when they all name the same one."""
    ids = set()
    for r in results.values():
        if r.get("answers"):
            with open(r["answers"], encoding="utf-8") as f:   # the first line names it: no second full read
                first = f.readline()
            ids.add(json.loads(first).get("model_id") if first.strip() else None)
    return ids.pop() if len(ids) == 1 and None not in ids else None


def entries(node: DictConfig) -> list[tuple[str, DictConfig]]:
    """A suite's benchmarks (``suite: {name: config}``), or the one benchmark."""
    if node.get("suite"):
        return [(str(name), sub) for name, sub in node.suite.items()]
    return [(node.name, node)]


def one(cfg: DictConfig, out: Path, name: str, node: DictConfig, answerer: Answerer | None, single: bool) -> dict:
    """One benchmark's result (rank 0; {} on other ranks): answered or read, uploaded where a server scores, scored."""
    try:
        benchmark = instantiate(node)
        questions = benchmark.questions()
    except UNAVAILABLE as err:
        if single:
            raise
        log.warning("%s: unavailable (%s)", name, err)
        return {"benchmark": name, "score": None, "note": f"unavailable: {err}"}
    folder = out / name
    extra: dict = {}
    if answerer is not None:
        extra = answerer(benchmark, questions, folder, getattr(benchmark, "answering", {}))
        if not answerer.is_global_zero:
            return {}
        path = folder / "answers.jsonl"
    else:
        path = Path(cfg.answers) if single else Path(cfg.answers) / f"{name}.jsonl"
        if not path.is_file():
            if single:
                raise FileNotFoundError(f"{path}: no answers file")
            return {"benchmark": name, "n": len(questions), "score": None, "note": f"no answers file {path}"}
    answers = read_answers(path)
    if hasattr(benchmark, "upload"):
        extra["upload"] = str(benchmark.upload(answers, folder))
    try:
        result = benchmark.score(answers)
    except (JudgeUnavailable, JudgeError) as err:  # the answers are written; scoring waits for a judge
        if single and isinstance(err, JudgeError):
            raise
        result = {"benchmark": name, "n": len(questions), "missing": sum(str(q["question_id"]) not in answers for q in questions),
                  "score": None, "note": str(err)}
    return {**result, **extra, "answers": str(path)}


class Answerer:
    """The model (built once, reused across a suite's benchmarks) answering questions through the predict loop."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.backbone = instantiate(cfg.backbone)  # checks the checkpoint dir; no weights yet
        self.generation = OmegaConf.to_container(cfg.generation, resolve=True)
        decoding = Decoding.from_config(self.generation)  # a misspelled setting fails before any work
        self.codec = self.backbone.codec()
        self.module = GenerationModule(self.backbone, self.codec, decoding)
        self.model_id = Path(cfg.model).resolve().name
        self.is_global_zero = True

    def __call__(self, benchmark, questions: list[dict], folder: Path, answering: dict) -> dict:
        """Answer what ``folder/shards`` lacks, then (rank 0) write ``folder/answers.jsonl``; returns the counts."""
        cfg, name = self.cfg, benchmark.name
        self.module.decoding = decoding = Decoding.from_config({**self.generation, **answering})
        dataset = QuestionDataset(questions, benchmark.image_root, name, self.codec, cfg.max_pixels)
        shards = folder / SHARD_DIR
        digest = hashlib.sha256(json.dumps(questions, sort_keys=True, default=str).encode()).hexdigest()[:16]
        claim(shards, {"model": str(Path(cfg.model).resolve()), "benchmark": name, "questions": digest,
                       "generation": decoding.settings(), "precision": str(cfg.trainer.precision)})
        work = pending(shards, dataset, cfg.retry_errors)
        if work.resumed:
            log.info("%s: resuming, %d of %d questions already answered", name, work.total - len(work.todo), work.total)
        trainer, seconds = predict(cfg, shards, dataset, work.todo, self.module, name)
        self.is_global_zero = trainer.is_global_zero
        if not trainer.is_global_zero:
            return {}
        rows = read_shards(shards)
        answers, errors = [], Counter()
        for i, q in enumerate(questions):
            row = rows.get(dataset.sample_id(i))
            if row is None or is_error(row):
                errors[row["reason"] if row else "not answered"] += 1
                continue
            answers.append({"question_id": q["question_id"], "prompt": q["text"], "text": row["text"].strip(),
                            "model_id": self.model_id})
        write_jsonl(folder / "answers.jsonl", answers)
        done = len(work.todo)
        return {"answered": len(answers), "errors": sum(errors.values()), "error_reasons": dict(errors),
                "seconds": round(seconds, 2), "questions_per_s": round(done / seconds, 2) if done and seconds > 0 else None,
                "failure": failure("questions", errors, len(questions), cfg.error_ceiling)}
