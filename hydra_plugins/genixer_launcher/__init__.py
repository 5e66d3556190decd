"""Hydra launcher ``hydra/launcher=parallel``: the jobs of a multirun as local subprocesses, K at a time."""
