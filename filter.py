"""Entry point: `python filter.py [overrides]` (Hydra) -> genixer.pipelines.filter.run."""
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

# Config paths resolve from the repository root unless GENIXER_ROOT says otherwise.
os.environ.setdefault("GENIXER_ROOT", str(Path(__file__).resolve().parent))
# Batches of varying prompt/cache sizes fragment the CUDA heap; expandable segments avoid OOMs.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")


@hydra.main(version_base="1.3", config_path="conf", config_name="filter")
def main(cfg: DictConfig) -> None:
    from genixer.pipelines import filter

    filter.run(cfg)


if __name__ == "__main__":
    main()
