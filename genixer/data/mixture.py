"""Mixtures: named components (source + task), capped and shuffled reproducibly."""
from __future__ import annotations

import random
from itertools import islice
from pathlib import Path

from genixer.data.sources.files import AnnotationError
from genixer.tasks.base import Task

CHECKED_IMAGES = 3   # a component's first images must exist: a wrong image root fails at load, naming it


class Component:
    """Annotations of one source rendered by one task.

    ``fraction`` then ``cap`` keep a seeded subset (Shikra's ``SubSet(portion)``); ``repeat``
    oversamples (the paper repeats the small GPT4Gen sets 5 times). A plain class, not a
    dataclass: OmegaConf would turn a dataclass inside a config dict back into a config.
    """

    def __init__(self, source, task: Task, cap: int | None = None, fraction: float | None = None, repeat: int = 1) -> None:
        self.source = source  # anything with ``load() -> list[dict]``
        self.task, self.cap, self.fraction, self.repeat = task, cap, fraction, repeat

    def subset_size(self, n: int) -> int:
        size = n if self.fraction is None else int(n * self.fraction)
        return size if self.cap is None else min(size, self.cap)


class Mixture:
    """The same list of (component name, annotation) on every rank and run for a seed."""

    def __init__(self, components: dict[str, Component], seed: int) -> None:
        self.components, self.seed = dict(components), seed
        self._items: list[tuple[str, dict]] | None = None

    @property
    def tasks(self) -> dict[str, Task]:
        return {name: c.task for name, c in self.components.items()}

    def items(self) -> list[tuple[str, dict]]:
        """Depends only on the files and the seed: no rank, no process hash salt. Loaded once."""
        if self._items is None:
            self._items = self._load()
        return self._items

    def _load(self) -> list[tuple[str, dict]]:
        items = []
        for name in sorted(self.components):
            component = self.components[name]
            records = component.source.load()
            check_images(name, component.source, records)
            size = component.subset_size(len(records))
            if size < len(records):
                records = random.Random(f"{self.seed}:{name}").sample(records, size)
            items += [(name, r) for r in records] * component.repeat
        random.Random(self.seed).shuffle(items)
        return items


def check_images(name: str, source, records: list[dict]) -> None:
    """The first records' images exist (text-only records have none), else an error naming the image root tried."""
    for record in islice((r for r in records if r.get("image")), CHECKED_IMAGES):
        if not Path(record["image"]).is_file():
            root = getattr(source, "image_root", None)
            raise AnnotationError(f"component {name!r} ({type(source).__name__}): image {record['image']} not found; "
                                  f"image_root tried: {root} (set data.mixture.components.{name}.source.image_root)")
