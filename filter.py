"""Entry point: `python filter.py [overrides]` (Hydra) -> genixer.pipelines.filter.run."""
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from genixer.runs.naming import register_resolvers

# Config paths resolve from the repository root unless GENIXER_ROOT says otherwise.
os.environ.setdefault("GENIXER_ROOT", str(Path(__file__).resolve().parent))
# The run dirs in conf/hydra use genixer.* resolvers: registered before Hydra composes.
register_resolvers()
# Batches of varying prompt/cache sizes fragment the CUDA heap; expandable segments avoid OOMs.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")


@hydra.main(version_base="1.3", config_path="conf", config_name="filter")
def main(cfg: DictConfig) -> float | None:
    from genixer.pipelines import filter
    from genixer.pipelines.checks import metric_value

    # A sweeper (e.g. Optuna) optimizes what main returns: optimized_metric names it.
    return metric_value(filter.run(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
