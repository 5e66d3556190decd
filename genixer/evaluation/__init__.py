"""Evaluation: oracle checks of generated data; benchmarks later."""
