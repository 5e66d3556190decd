"""Entry point: `python train.py [overrides]` (Hydra) -> genixer.pipelines.train.run."""
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

# Config paths resolve from the repository root unless GENIXER_ROOT says otherwise.
os.environ.setdefault("GENIXER_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    from genixer.pipelines import train

    train.run(cfg)


if __name__ == "__main__":
    main()
