"""Filtering pipeline (MLLM judge, CLIP box-crop score): not implemented yet."""
from __future__ import annotations

from omegaconf import DictConfig


def run(cfg: DictConfig) -> dict:
    raise NotImplementedError(
        "filter.py is not implemented yet: the MLLM judge and CLIP REC filters are planned "
        "(see the filtering issue). Generated data is usable unfiltered from generate.py's run dir."
    )
