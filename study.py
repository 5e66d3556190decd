"""Entry point: `python study.py [overrides]` (Hydra) -> genixer.study.runner.run_study. Re-run to resume."""
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from genixer.runs.naming import register_resolvers

# Config paths resolve from the repository root unless GENIXER_ROOT says otherwise.
os.environ.setdefault("GENIXER_ROOT", str(Path(__file__).resolve().parent))
register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="study")
def main(cfg: DictConfig) -> None:
    from genixer.study.runner import run_study

    run_study(cfg)


if __name__ == "__main__":
    main()
