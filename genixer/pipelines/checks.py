"""Config checks every pipeline runs before any work, and the metric an entry point returns to sweepers."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import CompactHydraException
from omegaconf import Container, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(CompactHydraException, ValueError):
    """The composed config cannot run as it is; the message says what to pass (Hydra prints it alone)."""


def _unset(cfg: DictConfig, key: str) -> str | None:
    """Why ``key`` has no usable value (None when it has one)."""
    try:
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    except OmegaConfBaseException as err:   # e.g. an interpolation to a missing key
        return f"does not resolve ({type(err).__name__})"
    return "unset" if value is None else None


def missing_keys(node: Container, prefix: str = "") -> list[str]:
    """Dotted keys whose value is ``???``, found without resolving interpolations (which may need Hydra)."""
    found = []
    for key in (node.keys() if isinstance(node, DictConfig) else range(len(node))):
        child = node._get_node(key)
        name = f"{prefix}[{key}]" if isinstance(node, ListConfig) else f"{prefix}.{key}" if prefix else str(key)
        if child._is_missing():
            found.append(name)
        elif isinstance(child, Container) and not child._is_none() and not child._is_interpolation():
            found += missing_keys(child, name)
    return found


def check_config(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` listing every ``???`` left and every unset key named in ``required``.

    ``required`` (top level) maps a dotted key to a hint saying what to pass; ``???`` values must be
    set too. Hydra's own node is not checked.
    """
    problems = {key: "??? (a value is required)" for key in missing_keys(cfg) if key.split(".")[0] != "hydra"}
    for key, hint in (cfg.get("required") or {}).items():
        reason = _unset(cfg, key)
        if reason and key not in problems:
            problems[key] = str(hint) if reason == "unset" else f"{hint} ({reason})"
    if problems:
        lines = "\n".join(f"  {key}=...   # {hint}" for key, hint in problems.items())
        raise ConfigError(f"required settings are missing; pass them on the command line:\n{lines}")


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """Nested metrics flattened to ``a/b/c`` names (as the pipelines log them)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, f"{name}/") if isinstance(value, Mapping) else {name: value})
    return flat


def metric_value(metrics: Mapping, name: str | None) -> float | None:
    """``metrics[name]`` as a float for a Hydra sweeper (``optimized_metric``); None when no name is set.

    Nested metrics (evaluation tables) are named by paths, as logged: ``generation/rec/accuracy``.
    """
    if name is None:
        return None
    flat = flatten(metrics)
    if name not in flat:
        raise ConfigError(f"optimized_metric={name} is not among this run's metrics: {sorted(flat) or 'none'}")
    try:
        return float(flat[name])
    except (TypeError, ValueError):
        raise ConfigError(f"optimized_metric={name} is {flat[name]!r}, not a number") from None
