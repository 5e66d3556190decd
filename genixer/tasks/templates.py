"""Template pools loaded from JSON with deterministic, process-independent picking."""

from __future__ import annotations

import hashlib
import json
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def _canonical(key: object) -> str:
    """Stable text form of a key; rejects objects whose repr may vary between runs."""
    if key is None or isinstance(key, (bool, str, float)):
        return f"{type(key).__name__}:{key!r}"
    if isinstance(key, numbers.Integral):  # int, numpy/torch integer scalars
        return f"int:{int(key)}"
    if isinstance(key, (tuple, list)):
        return "(" + ",".join(_canonical(k) for k in key) + ")"
    raise TypeError(f"template key must be built from str/int/float/bool/None/tuple, got {type(key).__name__}")


class TemplatePool:
    """An immutable list of instruction templates with a seeded, stable `pick`.

    The shipped pools (``templates/``) are our own wording: 64 generic instructions, 36 REC and 36 REG
    item questions, not the original's 58 / 51 / 125 templates that the released checkpoints were
    trained with (docs/original.md §1). A task takes another pool from a file through its config:
    ``task.instructions.path=<json>``, ``task.questions.path=<json>``.

    A pool file is a JSON list of distinct non-empty strings (the format of the original's template
    files), each holding ``placeholder`` exactly once when one is given (REC ``<expr>``, REG ``<objs>``),
    and never ``<image>``: the conversation template places the image.
    """

    def __init__(self, path: str | os.PathLike[str], placeholder: str | None = None) -> None:
        try:
            with open(path, encoding="utf-8") as f:
                items = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"template pool {path}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"template pool {path}: not a UTF-8 JSON file ({err})") from None
        self._setup(items, placeholder, str(path))

    @classmethod
    def from_strings(cls, templates: Sequence[str], placeholder: str | None = None,
                     source: str = "<strings>") -> TemplatePool:
        """Build a pool from an in-memory list (tests, ad-hoc pools)."""
        pool = cls.__new__(cls)
        pool._setup(list(templates), placeholder, source)
        return pool

    @classmethod
    def builtin(cls, name: str, placeholder: str | None = None) -> TemplatePool:
        """Load `genixer/tasks/templates/<name>.json` (independent of the working dir)."""
        return cls(TEMPLATES_DIR / f"{name}.json", placeholder)

    def _setup(self, items: object, placeholder: str | None, source: str) -> None:
        if not isinstance(items, list) or not items:
            got = "an empty list" if items == [] else f"a {type(items).__name__}"
            raise ValueError(f"{source}: expected a non-empty JSON list of strings, got {got}")
        seen: set[str] = set()
        for i, t in enumerate(items):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"{source}: entry {i} is not a non-empty string: {t!r}")
            if placeholder is not None and t.count(placeholder) != 1:
                raise ValueError(f"{source}: entry {i} must contain {placeholder!r} exactly once: {t!r}")
            if "<image>" in t:
                raise ValueError(f"{source}: entry {i} contains '<image>', which the conversation template "
                                 f"places (drop the original's '<image> ' prefix): {t!r}")
            if t in seen:
                raise ValueError(f"{source}: entry {i} is a duplicate: {t!r}")
            seen.add(t)
        self.templates: tuple[str, ...] = tuple(items)
        self.placeholder = placeholder
        self.source = source
        # Salt with the pool content so two pools picked with the same key are
        # independent (otherwise h % 60 and h % 30 would be tied together).
        self._salt = hashlib.sha256("\x1f".join(self.templates).encode()).digest()

    def __len__(self) -> int:
        return len(self.templates)

    def __getitem__(self, index: int) -> str:
        return self.templates[index]

    def pick(self, key: object) -> tuple[int, str]:
        """(index, template) chosen by a stable hash of `key`, e.g. (seed, epoch, idx).

        hashlib instead of `hash()`: Python's str hash is salted per process, which
        would give every run and every rank a different template.
        """
        digest = hashlib.sha256(self._salt + _canonical(key).encode()).digest()
        index = int.from_bytes(digest[:8], "big") % len(self.templates)
        return index, self.templates[index]

    def __repr__(self) -> str:
        return f"TemplatePool({self.source!r}, n={len(self)}, placeholder={self.placeholder!r})"
