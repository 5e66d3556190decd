"""Generation with a suffix that several families share (PointQA Local and V7W both use
" This is a PointQA task."): prompt like the first, accept whichever family the model wrote."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .base import Parsed, Task


class OneOf(Task):
    """Instructions of the first task; ``parse`` tries each task and tags the record with its name."""

    def __init__(self, name: str, tasks: Mapping[str, Task]) -> None:
        """``tasks`` in priority order (a mapping, as Hydra composes config groups)."""
        if not tasks:
            raise ValueError("OneOf needs at least one task")
        first = next(iter(tasks.values()))
        super().__init__(name, first.suffix, first.instructions)
        self.tasks = {t.name: t for t in tasks.values()}

    def corpus(self) -> Iterator[str]:
        for task in self.tasks.values():
            yield from task.corpus()

    def target(self, annotation: Mapping[str, Any], key: object) -> str:
        raise NotImplementedError(f"{self.name} is for generation; train each family with its own task")

    def parse(self, text: str) -> Parsed:
        first = None
        for name, task in self.tasks.items():
            parsed = task.parse(text)
            if parsed.ok:
                return Parsed.accept({**parsed.record, "task": name})
            first = first or parsed
        return first

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        return self.tasks[record["task"]].conversation(record)
