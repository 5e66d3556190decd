"""Selection: keep or drop scored rows by configured rules; every drop records its rule and reason.

Scorers annotate (``row["scores"][scorer]``); rules only read those annotations, so thresholds
change without re-scoring. A rule passes rows its scorer did not score (not applicable), drops rows
whose item failed (error / rejected, with the scorer's reason), and checks every value of a
per-pair list (a dialogue is kept only if every pair passes).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """Keep when ``scores[scorer][field]`` is within [``min``, ``max``] (strict with ``exclusive``) or equals ``equals``.

    ``chosen_on`` says where the threshold comes from (data it was tuned on, or a fixed rule); tables of
    filtered data print it, so no reader has to guess whether it saw the data it is reported on.
    """

    scorer: str
    field: str
    min: float | None = None
    max: float | None = None
    equals: str | None = None
    exclusive: bool = False
    chosen_on: str | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None and self.equals is None:
            raise ValueError(f"rule on {self.scorer}.{self.field} needs min, max or equals")

    def violation(self, value) -> str | None:
        """Why ``value`` fails the rule (a short, countable reason), or None."""
        if value is None:
            return f"{self.field} missing"
        if self.equals is not None:
            return None if value == self.equals else f"{self.field} not {self.equals}"
        low = self.min is not None and (value <= self.min if self.exclusive else value < self.min)
        high = self.max is not None and (value >= self.max if self.exclusive else value > self.max)
        if low:
            return f"{self.field} {'<=' if self.exclusive else '<'} {self.min}"
        if high:
            return f"{self.field} {'>=' if self.exclusive else '>'} {self.max}"
        return None

    def check(self, scores: dict) -> tuple[str, str] | None:
        """``(reason, detail)`` when the row's annotation fails, else None."""
        annotation = scores.get(self.scorer)
        if not annotation:
            return None  # this scorer had nothing to score in the row
        if annotation.get("status"):
            return f"{self.scorer} {annotation['status']}", annotation.get("reason", "")
        value = annotation.get(self.field)
        for k, v in enumerate(value if isinstance(value, list) else [value]):
            reason = self.violation(v)
            if reason:
                where = f" (pair {k})" if isinstance(value, list) else ""
                return f"{self.scorer}: {reason}", f"{self.field}={v!r}{where}"
        return None

    def describe(self) -> str:
        """'clip.cosine >= 0.7944' (chosen on ...)."""
        bounds = [f"{'>' if self.exclusive else '>='} {self.min}" if self.min is not None else "",
                  f"{'<' if self.exclusive else '<='} {self.max}" if self.max is not None else "",
                  f"== {self.equals}" if self.equals is not None else ""]
        return f"{self.scorer}.{self.field} {' and '.join(b for b in bounds if b)} ({self.chosen_on or 'origin not stated'})"


@dataclass(frozen=True)
class Flagged:
    """Drop rows an annotator flagged: the first of ``fields`` true in ``scores[scorer]`` is the reason,
    ``"<scorer>: <field> <label>"`` (countable), and the annotation's ``detail`` keys the detail. Like
    :class:`Rule`, it passes rows the annotator did not annotate and drops those it failed on (``status``)."""

    scorer: str
    fields: tuple[str, ...]
    label: str = "flagged"
    detail: tuple[str, ...] = ()
    chosen_on: str | None = None

    def check(self, scores: dict) -> tuple[str, str] | None:
        annotation = scores.get(self.scorer)
        if not annotation:
            return None
        if annotation.get("status"):
            return f"{self.scorer} {annotation['status']}", annotation.get("reason", "")
        for name in self.fields:
            if annotation.get(name):
                return f"{self.scorer}: {name} {self.label}", ", ".join(f"{k}={annotation.get(k)!r}" for k in self.detail)
        return None

    def describe(self) -> str:
        return f"{self.scorer}: drop when {' or '.join(self.fields)} ({self.chosen_on or 'origin not stated'})"


def select(scores: dict, rules: dict[str, Rule | Flagged]) -> list[dict]:
    """The drops of one row: ``[{"rule", "reason", "detail"}]`` (empty: kept)."""
    drops = []
    for name, rule in rules.items():
        failed = rule.check(scores)
        if failed:
            drops.append({"rule": name, "reason": failed[0], "detail": failed[1]})
    return drops
