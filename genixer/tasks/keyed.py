"""Seeded per-sample randomness derived from a stable key (never the process RNG)."""

from __future__ import annotations

import hashlib
import random

from .templates import _canonical


def keyed_rng(key: object, salt: str) -> random.Random:
    """A `random.Random` seeded by sha256(salt, key): same key, same draws, in every process."""
    # The salt keeps independent choices made from one key (template, order, version) apart.
    digest = hashlib.sha256(f"{salt}\x1f{_canonical(key)}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))
