"""Every conf/benchmark config (bar the mini world's) against the tiny official-layout fixtures of
tests/benchmark_fixtures.py: composed with ``paths.datasets=<fixtures>``, it finds its files and images, its
question ids are the fixture's, right answers get full marks where it is scored here, a server-scored split
writes its upload, and a GPT-judged one stops without its key."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
from benchmark_fixtures import JUDGED, SERVER_SCORED, write_answers_folder, write_datasets
from conftest import CONF, compose_config
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genixer.evaluation.benchmarks import read_answers
from genixer.evaluation.gpt_judge import JudgeUnavailable
from genixer.evaluation.metrics import MME_PERCEPTION
from genixer.evaluation.yes_no import MMEBenchmark


def benchmark_configs() -> dict[str, str]:
    """file stem -> the config's name, for each conf/benchmark yaml with a _target_ (suites have none) but mini_world_*."""
    out = {}
    for path in sorted((CONF / "benchmark").glob("*.yaml")):
        node = OmegaConf.load(path)   # unresolved: _target_ and name are literals
        if not path.stem.startswith("mini_world_") and node.get("_target_"):
            out[path.stem] = str(node.name)
    return out


CONFIGS = benchmark_configs()


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    root = tmp_path_factory.mktemp("datasets")
    return root, write_datasets(root)


def _unrelated_defaults() -> tuple[str, ...]:
    """Deletions of conf/evaluate.yaml's coverage-reference mixtures (``/data/mixture@coverage...``): nothing a
    benchmark reads, and two thirds of the time a compose takes (checked: the benchmark node is the same)."""
    defaults = OmegaConf.to_container(OmegaConf.load(CONF / "evaluate.yaml"))["defaults"]
    keys = [key for d in defaults if isinstance(d, dict) for key in d]
    return tuple(f"~{key.lstrip('/')}" for key in keys if key.lstrip("/").startswith("data/mixture@coverage."))


@functools.cache
def _config(stem: str, root: Path, output_dir: Path, light: bool = True):
    overrides = [f"benchmark={stem}", f"paths.datasets={root}", f"paths.data={root.parent / 'data'}",
                 f"paths.output_dir={output_dir}"]
    return compose_config("evaluate", overrides + list(_unrelated_defaults() if light else ()))


def make(stem: str, root: Path):
    """conf/benchmark/<stem>.yaml on the fixtures, instantiated afresh (configs composed once), as the benchmark
    pipeline does."""
    node = _config(stem, root, root.parent / "out", True).benchmark
    return instantiate(node)


@pytest.mark.parametrize("stem", sorted({"llava_bench"} & set(CONFIGS)))
def test_light_compose_gives_the_same_benchmark(stem, fixtures):
    root, _ = fixtures
    assert _unrelated_defaults()
    full, light = (OmegaConf.to_container(_config(stem, root, root.parent / "out", light).benchmark, resolve=True)
                   for light in (False, True))
    assert full == light


def full_marks(bench) -> float:
    """MME: 200 per perception category present; every other benchmark 100 (percent)."""
    if isinstance(bench, MMEBenchmark):
        return 200.0 * sum(c in MME_PERCEPTION for c in bench.categories)
    return 100.0


def test_every_benchmark_config_has_a_fixture(fixtures):
    _, answers = fixtures
    assert CONFIGS, "no benchmark config found"
    assert sorted(CONFIGS) == sorted(CONFIGS.values()), "a config's name differs from its file name"
    assert set(CONFIGS.values()) == set(answers), "write_datasets and conf/benchmark disagree"
    assert all(2 <= len(a) for a in answers.values()) and SERVER_SCORED | JUDGED <= set(answers)


@pytest.mark.parametrize("stem", sorted(CONFIGS))
def test_config_reads_its_fixture_and_right_answers_score(stem, fixtures, tmp_path, monkeypatch):
    root, answers = fixtures
    bench = make(stem, root)
    name = CONFIGS[stem]
    assert bench.name == name and root.parent in Path(bench.image_root).parents  # datasets (or data/cache)
    questions = bench.questions()
    assert questions and all(q["text"] for q in questions)
    assert all((Path(bench.image_root) / q["image"]).is_file() for q in questions), "an image is missing"
    ids = [str(q["question_id"]) for q in questions]
    assert len(set(ids)) == len(ids) and set(ids) == set(answers[name])
    if name in JUDGED:
        assert bench.needs_judge
        monkeypatch.delenv(bench.judge.api_key_env, raising=False)
        with pytest.raises(JudgeUnavailable, match=bench.judge.api_key_env):
            bench.score(answers[name])
        return
    result = bench.score(answers[name])
    assert (result["benchmark"], result["missing"]) == (name, 0)
    if name in SERVER_SCORED:
        assert result["score"] is None and result["note"]
        path = bench.upload(answers[name], tmp_path / "upload")
        assert path.is_file() and path.parent == tmp_path / "upload" and path.stat().st_size > 0
    else:
        assert result["score"] == pytest.approx(full_marks(bench)), result


@pytest.mark.parametrize("stem", sorted(s for s, n in CONFIGS.items() if n not in SERVER_SCORED | JUDGED))
def test_wrong_answers_score_below_full_marks(stem, fixtures):
    root, answers = fixtures
    bench = make(stem, root)
    result = bench.score({qid: "zzz" for qid in answers[CONFIGS[stem]]})
    assert result["missing"] == 0 and result["score"] < full_marks(bench)


def test_mme_full_marks_are_the_perception_total(fixtures):
    root, answers = fixtures
    bench = make("mme", root)
    result = bench.score(answers["mme"])
    assert (result["score"], result["cognition"]) == (2000.0, 800.0)   # the fixture has all 14 categories


def test_answers_folder_reads_back(fixtures, tmp_path):
    _, answers = fixtures
    folder = write_answers_folder(tmp_path / "answers", answers)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{name}.jsonl" for name in answers)
    for name, by_id in answers.items():
        assert read_answers(folder / f"{name}.jsonl") == by_id
