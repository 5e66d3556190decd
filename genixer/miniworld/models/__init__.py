"""The mini world's own models: training data (dense labels, CLIP pairs, verification pairs), a tiny Fuyu, held-out checks."""
