"""Every primary config composes with every experiment; every ``_target_`` binds its callable."""
from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from conftest import CONF, compose_config

PRIMARIES = sorted(p.stem for p in CONF.glob("*.yaml"))
EXPERIMENTS = [None] + sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
RESERVED = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}


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


def test_primaries_found():
    assert PRIMARIES == ["evaluate", "filter", "generate", "train"]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("primary", PRIMARIES)
def test_compose_and_bind(primary, experiment, tmp_path):
    overrides = [f"paths.output_dir={tmp_path}"] + ([f"experiment={experiment}"] if experiment else [])
    cfg = compose_config(primary, overrides)
    assert cfg.stage == primary
    found = list(targets(cfg))
    for path, node in found:
        fn = get_object(node._target_)
        kwargs = {k: None for k in node.keys() if k not in RESERVED}
        try:
            inspect.signature(fn).bind_partial(**kwargs)
        except TypeError as err:
            raise AssertionError(f"{path}: {node._target_} does not accept {sorted(kwargs)}: {err}") from None
    if primary in ("train", "generate"):
        assert any(p == "cfg.module" for p, _ in found)


def test_protocol_strings_in_configs(tmp_path):
    """The conversation template and task suffixes are protocol (spec §1.2, §1.3, §3.1)."""
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


SELECTABLE = ("backbone", "benchmark", "callbacks", "data", "data/mixture", "debug", "logger", "module", "paths",
              "task", "trainer", "world")
GROUP_OPTIONS = sorted(
    (str(p.parent.relative_to(CONF)), p.stem) for p in CONF.rglob("*.yaml") if str(p.parent.relative_to(CONF)) in SELECTABLE
)


@pytest.mark.parametrize("group,option", GROUP_OPTIONS)
def test_every_group_option_binds(group, option, tmp_path):
    """Each option of each group, selected on the train primary, binds its targets."""
    overrides = [f"paths.output_dir={tmp_path}", f"{group}={option}"]
    if option == "pretrained_llava":
        overrides.append("+generator=some/dir")
    cfg = compose_config("train", overrides)
    for path, node in targets(cfg):
        kwargs = {k: None for k in node.keys() if k not in RESERVED}
        inspect.signature(get_object(node._target_)).bind_partial(**kwargs)
