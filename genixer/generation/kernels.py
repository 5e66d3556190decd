"""When a Triton kernel of ours runs: never without Triton; always under ``TRITON_INTERPRET=1`` (the tests, on the
CPU); on a GPU once it has matched its reference there (checked once per kernel and device; a mismatch or an error
is logged by the check, and the caller keeps its plain PyTorch path)."""
from __future__ import annotations

import logging
import os
from typing import Callable

import torch

try:
    import triton
except ImportError:  # a CPU-only install
    triton = None

log = logging.getLogger(__name__)
_CHECKED: dict[tuple[str, int], bool] = {}


def kernel_enabled(name: str, device: torch.device, matches: Callable[[torch.device], bool]) -> bool:
    if triton is None:
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    if device.type != "cuda":
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    if (name, index) not in _CHECKED:
        _CHECKED[name, index] = matches(torch.device("cuda", index))
    return _CHECKED[name, index]


def kernel_matches(name: str, device: torch.device, compare: Callable[[], str | None], fallback: str) -> bool:
    """Whether a kernel matches its reference on ``device``: ``compare()`` says what differs (None: nothing); a
    difference or an error is logged with the ``fallback`` that serves instead."""
    try:
        problem = compare()
    except Exception as err:  # noqa: BLE001 - any failure means: use the fallback
        problem = f"failed ({type(err).__name__}: {err})"
    if problem:
        log.warning("the %s kernel on %s %s; %s", name, device, problem, fallback)
    return problem is None
