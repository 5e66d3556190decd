"""Logger factories that need a decision at run time."""
from __future__ import annotations

import os

from lightning.pytorch.loggers import WandbLogger


def wandb_logger(**kwargs) -> WandbLogger:
    """Weights & Biases, offline when no ``WANDB_API_KEY`` is in the environment."""
    return WandbLogger(offline="WANDB_API_KEY" not in os.environ, **kwargs)
