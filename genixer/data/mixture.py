"""Mixtures: named components (source + task), capped and shuffled reproducibly."""
from __future__ import annotations

import random
from dataclasses import dataclass

from genixer.tasks.base import Task


@dataclass
class Component:
    """Annotations of one source, rendered by one task; ``cap`` keeps a seeded subset."""

    source: object  # anything with ``load() -> list[dict]``
    task: Task
    cap: int | None = None
    repeat: int = 1


class Mixture:
    """The same list of (component name, annotation) on every rank and run for a seed."""

    def __init__(self, components: dict[str, Component], seed: int) -> None:
        self.components, self.seed = dict(components), seed

    @property
    def tasks(self) -> dict[str, Task]:
        return {name: c.task for name, c in self.components.items()}

    def items(self) -> list[tuple[str, dict]]:
        items = []
        for name in sorted(self.components):
            component = self.components[name]
            records = component.source.load()
            if component.cap is not None and component.cap < len(records):
                records = random.Random(f"{self.seed}:{name}").sample(records, component.cap)
            items += [(name, r) for r in records] * component.repeat
        random.Random(self.seed).shuffle(items)
        return items
