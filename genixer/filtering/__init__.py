"""Filtering: scorers annotate generated rows (MLLM judge, CLIP box crops); selection keeps or drops."""
