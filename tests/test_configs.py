"""Every primary composes with every experiment, every group option composes where it belongs, and every
``_target_`` binds its callable: with the arguments the pipeline supplies, a missing required one fails."""
from __future__ import annotations

import fnmatch
import inspect
import time

import pytest
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from conftest import CONF, compose_config

PRIMARIES = sorted(p.stem for p in CONF.glob("*.yaml"))
EXPERIMENTS = [None] + sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
RESERVED = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}

# What the pipelines pass to ``instantiate`` beside the config's own keys (genixer/pipelines/*.py), by
# config path (fnmatch patterns). Union over the stages: a node must accept everything any stage passes.
SUPPLIED = {
    "cfg.trainer": {"callbacks", "logger", "enable_progress_bar", "default_root_dir", "accumulate_grad_batches"},
    "cfg.module": {"backbone", "codec"},                  # train.assemble
    "cfg.data": {"codec"},        # train.assemble (+ mixture, built from the node's own mixture key when it has one)
    "cfg.filter.scorers.*.scorer": {"name"},              # filter.run
}

# Where each config group's options belong: the primaries they are composed on, and the override that
# selects one (``{}`` = the option). Every group folder under conf/ must be listed (test_every_group_listed).
GROUP_HOMES = {
    "backbone": (["train", "generate"], "backbone={}"),
    "callbacks": (["train"], "callbacks={}"),
    "candidate_shares": (["generate"], "candidate_shares={}"),
    "conversation": (["train"], "conversation@backbone.conversation={}"),   # every backbone picks one
    "data": (["train"], "data={}"),
    "data/mixture": (["train"], "data/mixture={}"),
    "data/source": (["train"], "+data/source@source_probe={}"),   # a source alone (data / mixtures hold them)
    "debug": (["train", "generate", "filter", "evaluate"], "debug={}"),
    "decontamination": (["filter"], "decontamination={}"),
    "filter": (["filter"], "filter={}"),
    "logger": (["train"], "logger={}"),
    "benchmark": (["evaluate"], "benchmark={}"),
    "module": (["train"], "module={}"),
    "oracle": (["evaluate", "study"], "oracle={}"),
    "paths": (PRIMARIES, "paths={}"),
    "task": (["generate"], "task={}"),
    "trainer": (["train", "generate", "filter"], "trainer={}"),
    "world": (["train", "generate", "evaluate", "study"], "world={}"),
}
NOT_OPTIONS = {"experiment", "hydra", "hydra/job_logging",   # composed by the primary x experiment tests
               "hydra/launcher"}                             # tests/test_slurm.py


def targets(node, path="cfg"):
    """(path, node) for every config node with a ``_target_``."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node.keys():
            if not OmegaConf.is_missing(node, key):
                yield from targets(node._get_node(key), f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            yield from targets(item, f"{path}[{i}]")


def supplied(path: str) -> set[str]:
    return set().union(*(keys for pattern, keys in SUPPLIED.items() if fnmatch.fnmatchcase(path, pattern)))


def check_binds(path: str, node: DictConfig) -> None:
    """A partial binds its keys partially; anything else binds its keys plus what the pipeline supplies."""
    fn = get_object(node._target_)
    args = list(node.get("_args_") or [])
    kwargs = {k: None for k in node.keys() if k not in RESERVED}
    sig = inspect.signature(fn)
    try:
        if node.get("_partial_", False):
            sig.bind_partial(*args, **kwargs)
        else:
            sig.bind(*args, **{**kwargs, **dict.fromkeys(supplied(path))})
    except TypeError as err:
        raise AssertionError(f"{path}: {node._target_}{sig} does not take {sorted(kwargs)} "
                             f"(+ supplied {sorted(supplied(path))}): {err}") from None


def check_all(cfg: DictConfig) -> list[str]:
    found = list(targets(cfg))
    for path, node in found:
        check_binds(path, node)
    return [p for p, _ in found]


def test_primaries_found():
    assert PRIMARIES == ["evaluate", "filter", "generate", "study", "train"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("primary", PRIMARIES)
def test_compose_and_bind(primary, experiment, tmp_path):
    overrides = [f"paths.output_dir={tmp_path}"] + ([f"experiment={experiment}"] if experiment else [])
    cfg = compose_config(primary, overrides)
    assert cfg.stage == primary
    assert cfg.required is not None and "optimized_metric" in cfg
    paths = check_all(cfg)
    if primary == "train":
        assert "cfg.module" in paths


def test_protocol_strings_in_configs(tmp_path):
    """The conversation template and task suffixes are protocol (docs/original.md §1, §3)."""
    cfg = compose_config("generate", [f"paths.output_dir={tmp_path}", "task=rec"])
    conv = cfg.backbone.conversation
    assert conv.system == (
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    )
    assert (list(conv.roles), conv.sep, conv.sep2) == (["USER", "ASSISTANT"], " ", "</s>")
    assert cfg.task.suffix == (
        " This is a Referring Expression Comprehension (REC) task. The question will give an expression "
        "of a specific region of the image. Please provide the coordinates in the answer."
    )
    assert compose_config("generate", [f"paths.output_dir={tmp_path}"]).task.suffix == "\nThis is the Common VQA task."
    assert compose_config("generate", [f"paths.output_dir={tmp_path}", "task=agnostic"]).task.get("suffix", "") == ""


def group_folders() -> set[str]:
    return {str(p.parent.relative_to(CONF)) for p in CONF.rglob("*.yaml") if p.parent != CONF}


def test_every_group_listed():
    """A new config group must say where it belongs, or its options go untested."""
    assert group_folders() - NOT_OPTIONS == set(GROUP_HOMES)


GROUP_OPTIONS = sorted(
    (group, primary, p.stem) for group, (primaries, _) in GROUP_HOMES.items()
    for p in (CONF / group).glob("*.yaml") for primary in primaries
)


@pytest.mark.parametrize("group,primary,option", GROUP_OPTIONS)
def test_every_group_option_binds(group, primary, option, tmp_path):
    """Each option of each group, selected on a primary where it belongs, composes and binds its targets."""
    overrides = [f"paths.output_dir={tmp_path}", GROUP_HOMES[group][1].format(option)]
    if group == "data/mixture":
        overrides.insert(0, "data=mini_world")
    cfg = compose_config(primary, overrides)
    check_all(cfg)


def test_filter_presets_are_complete(tmp_path):
    """Every filter preset runs scorers and selects with rules naming them."""
    for preset in sorted(p.stem for p in (CONF / "filter").glob("*.yaml")):
        cfg = compose_config("filter", [f"paths.output_dir={tmp_path}", f"filter={preset}"])
        assert cfg.filter.scorers and cfg.filter.rules, preset
        assert {r.scorer for r in cfg.filter.rules.values()} <= set(cfg.filter.scorers), preset


def needs_codec(backbone, codec, batch_size: int, seed: int = 0):
    """A stand-in data module: ``codec`` is required, as the pipeline supplies it."""


def test_missing_required_argument_fails():
    """A node lacking an argument neither its config nor the pipeline gives fails the check."""
    node = OmegaConf.create({"_target_": f"{__name__}.needs_codec", "batch_size": 4})
    check_binds("cfg.module", node)   # backbone + codec supplied by the pipeline
    with pytest.raises(AssertionError, match="missing a required argument: 'codec'"):
        check_binds("cfg.task", OmegaConf.create({"_target_": f"{__name__}.needs_codec", "backbone": None, "batch_size": 4}))
    with pytest.raises(AssertionError, match="missing a required argument: 'batch_size'"):
        check_binds("cfg.module", OmegaConf.create({"_target_": f"{__name__}.needs_codec"}))
    with pytest.raises(AssertionError, match="unexpected keyword argument 'batchsize'"):
        check_binds("cfg.module", OmegaConf.create({"_target_": f"{__name__}.needs_codec", "batch_size": 4, "batchsize": 4}))
    # A partial only has to accept its keys: the rest comes at call time.
    check_binds("cfg.elsewhere", OmegaConf.create({"_target_": f"{__name__}.needs_codec", "_partial_": True}))


def test_generation_sampling_settings_are_keys(tmp_path):
    """Sampling is switched on by a key (the original's temperature 0.2), not by ``+`` additions."""
    cfg = compose_config("generate", [f"paths.output_dir={tmp_path}", "generation.do_sample=true"])
    assert (cfg.generation.do_sample, cfg.generation.temperature, cfg.generation.top_p, cfg.generation.top_k) == (
        True, 0.2, None, None)
    for primary in ("generate", "filter"):
        cfg = compose_config(primary, [f"paths.output_dir={tmp_path}"])
        assert (cfg.retry_errors, cfg.error_ceiling) == (False, 1.0)


def test_experiments_carry_no_time_caps(tmp_path):
    """Time caps are per machine: they belong on the command line (Makefile, recipes), not in experiments."""
    for experiment in EXPERIMENTS[1:]:
        cfg = compose_config("train", [f"paths.output_dir={tmp_path}", f"experiment={experiment}"])
        assert cfg.trainer.get("max_time") is None, experiment


def test_wandb_logger_offline(tmp_path, monkeypatch):
    """``logger=wandb`` is Lightning's WandbLogger as wandb documents it: WANDB_MODE=offline logs locally."""
    from hydra.utils import instantiate

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", "logger=wandb"])
    assert cfg.logger.wandb._target_ == "lightning.pytorch.loggers.WandbLogger"
    logger = instantiate(cfg.logger.wandb)
    logger.log_metrics({"probe_metric": 1.5}, step=0)
    logger.experiment.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    deadline = time.time() + 60  # wandb's service process writes the record file after finish() returns
    while b"probe_metric" not in runs[0].read_bytes() and time.time() < deadline:
        time.sleep(0.5)
    assert b"probe_metric" in runs[0].read_bytes()


@pytest.mark.parametrize("experiment", ["mini_world_generator", "mini_world_l_generator", "mini_world_s_generator",
                                        "mini_world_cpu_generator"])
def test_required_keys_fail_before_any_work(experiment, tmp_path):
    """Stage 2 without a stage-1 vision run is an error naming the key and what to pass, not a random tower."""
    from genixer.pipelines.checks import ConfigError, check_config

    cfg = compose_config("train", [f"paths.output_dir={tmp_path}", f"experiment={experiment}"])
    with pytest.raises(ConfigError, match=r"backbone\.vision_init=.*a stage-1 vision run dir \(python train\.py "
                                          r"experiment=mini_world_(cpu_)?vision\)"):
        check_config(cfg)
    check_config(compose_config("train", [f"paths.output_dir={tmp_path}", f"experiment={experiment}",
                                          "backbone.vision_init=some/run"]))


def test_check_config_lists_every_problem():
    from genixer.pipelines.checks import ConfigError, check_config

    cfg = OmegaConf.create({"a": "???", "b": {"c": None, "d": "${a}"}, "e": 1,
                            "required": {"b.c": "pass b.c=<x>", "e": "set", "f.g": "an absent key counts as unset"}})
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    message = str(err.value)
    assert "a=..." in message and "b.c=...   # pass b.c=<x>" in message and "f.g=..." in message
    assert "e=..." not in message
    for primary in PRIMARIES:
        check_config(compose_config(primary, []))   # the primaries as shipped need nothing more


def test_metric_value():
    from genixer.pipelines.checks import ConfigError, metric_value

    metrics = {"loss": 0.5, "steps": 3, "generation": {"rec": {"accuracy": 0.75}}, "note": "text"}
    assert metric_value(metrics, None) is None
    assert metric_value(metrics, "loss") == 0.5 and metric_value(metrics, "steps") == 3.0
    assert metric_value(metrics, "generation/rec/accuracy") == 0.75
    with pytest.raises(ConfigError, match=r"optimized_metric=los is not among .*\['generation/rec/accuracy', 'loss', "):
        metric_value(metrics, "los")
    with pytest.raises(ConfigError, match="not a number"):
        metric_value(metrics, "note")


def test_no_logger_leaves_out_the_learning_rate_monitor(tmp_path):
    """``logger=none``: Lightning refuses a run with a LearningRateMonitor and no logger, so training drops it."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    from genixer.pipelines.train import make_callbacks

    for logger, logged in (("none", False), ("csv", True)):
        cfg = compose_config("train", [f"paths.output_dir={tmp_path}", f"logger={logger}"])
        callbacks = make_callbacks(cfg, logged=logged)
        assert any(isinstance(c, LearningRateMonitor) for c in callbacks) == logged, logger
        assert len(callbacks) == len(cfg.callbacks) - (not logged)
