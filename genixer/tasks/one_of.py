"""Generation where the model picks the family: task-agnostic mode (a generic instruction, no suffix),
or a suffix that several families share (" This is a PointQA task." for PointQA Local and V7W)."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .base import Parsed, Task
from .templates import TemplatePool


class OneOf(Task):
    """Prompts with ``instructions`` + ``suffix`` (default: the first task's); a generated text goes to
    the first task that ``recognizes`` its shape, which parses it (or rejects it with its own reason).
    A text no task recognizes gets the first task's verdict.

    ``tasks`` in routing order (a mapping, as Hydra composes config groups): the specific shapes first,
    catch-alls (plain QA, any boxes) last. Adding a family here is one more entry in the config.
    """

    def __init__(self, name: str, tasks: Mapping[str, Task], instructions: TemplatePool | None = None,
                 suffix: str | None = None) -> None:
        if not tasks:
            raise ValueError("OneOf needs at least one task")
        self.tasks = list(tasks.values())
        first = self.tasks[0]
        super().__init__(name, first.suffix if suffix is None else suffix, instructions or first.instructions)

    def corpus(self) -> Iterator[str]:
        yield from super().corpus()
        for task in self.tasks:
            yield from task.corpus()

    def target(self, annotation: Mapping[str, Any], key: object) -> str:
        raise NotImplementedError(f"{self.name} is for generation: train each family with its own task "
                                  "(task-agnostic samples: that task with an empty suffix)")

    def parse(self, text: str) -> Parsed:
        task = next((t for t in self.tasks if t.recognizes(text)), self.tasks[0])
        parsed = task.parse(text)
        return Parsed.accept(parsed.record, parsed.task or task) if parsed.ok else parsed  # type: ignore[arg-type]

    def conversation(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        raise TypeError(f"{self.name} records belong to the task that parsed them (Parsed.task)")
