"""Numbers behind the report's plots: family mix, answer lengths, distinct-n, scores against their rules."""
from __future__ import annotations

import re
from collections import Counter

from genixer.filtering.selection import Rule
from genixer.tasks.box_qa import PH_ED, PH_ST

_COORDS = re.compile(r"\[[-\d.,\s\[\]]*\]")


def ok(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok"]


def mix_label(row: dict) -> str:
    """The row's family, prefixed by its task when they differ (``agnostic/rec``)."""
    task, family = row.get("task", "?"), row.get("family", "?")
    return family if task == family else f"{task}/{family}"


def family_mix(rows: list[dict]) -> list[tuple[str, int, int]]:
    """(task/family, accepted rows, kept rows) sorted by count; kept counts rows with ``kept`` true."""
    total, kept = Counter(), Counter()
    for row in ok(rows):
        total[mix_label(row)] += 1
        kept[mix_label(row)] += bool(row.get("kept"))
    return [(label, n, kept[label]) for label, n in total.most_common()]


def answer_text(row: dict) -> str | None:
    """What answers the row's question(s): its QA answers, else the parsed answer / expression (REG), else the
    text after "Answer:"; None for REC, whose answer is a box."""
    pairs = row.get("qa_pairs") or []
    if pairs:
        return " ".join(str(p.get("answer", "")) for p in pairs)
    if row.get("family") == "rec":
        return None
    parsed = row.get("parsed") or {}
    for key in ("answer", "expression"):
        if isinstance(parsed.get(key), str):
            return parsed[key]
    return str(row.get("text", "")).rpartition("Answer:")[2]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", _COORDS.sub(" ", text.lower()))


def answer_lengths(rows: list[dict]) -> list[int]:
    return [len(words(a)) for r in ok(rows) if (a := answer_text(r)) is not None]


def distinct_n(items: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the texts' lowercased words (as ``genixer.miniworld.coverage``,
    not imported: it pulls in the training data stack)."""
    grams = [tuple(w[i:i + n]) for t in items for w in [words(t)] for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def question_texts(row: dict) -> list[str]:
    """The row's questions (one per MD turn; REC / REG: the expressions), box marks and coordinates stripped,
    as the coverage tables read them."""
    parsed = row.get("parsed") or {}
    if row.get("family") in ("rec", "reg"):
        raw = [r.get("expression") or parsed.get("question") or "" for r in row.get("regions") or []]
    elif isinstance(parsed.get("turns"), list):
        raw = [str(t.get("question", "")) for t in parsed["turns"]]
    elif "question" in parsed:
        raw = [str(parsed["question"])]
    else:
        raw = [str(row.get("text", "")).partition("Answer:")[0]]
    return [" ".join(_COORDS.sub(" ", t.replace(PH_ST, "").replace(PH_ED, "")).split()) for t in raw]


def diversity(rows: list[dict]) -> list[dict]:
    """Distinct-1 / distinct-2 of questions and of answers, per family and over all accepted rows."""
    groups: dict[str, list[dict]] = {}
    for row in ok(rows):
        groups.setdefault(row.get("family", "?"), []).append(row)
    table = []
    for name, group in [*sorted(groups.items()), *([("all", ok(rows))] if len(groups) > 1 else [])]:
        questions = [t for r in group for t in question_texts(r)]
        answers = [a for r in group if (a := answer_text(r)) is not None]
        table.append({"family": name, "n": len(group), "q1": distinct_n(questions, 1), "q2": distinct_n(questions, 2),
                      "a": len(answers), "a1": distinct_n(answers, 1), "a2": distinct_n(answers, 2)})
    return table


def rule_values(row: dict, rule: Rule) -> list[float] | None:
    """Numeric values of ``scores[scorer][field]`` (one per item); None when the scorer did not score the row."""
    annotation = (row.get("scores") or {}).get(rule.scorer)
    if not annotation or annotation.get("status"):
        return None
    value = annotation.get(rule.field)
    values = value if isinstance(value, list) else [value]
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)] or None


def deciding(values: list[float], rule: Rule) -> float:
    """The value that decides the row (every item must pass): the lowest against a min, else the highest."""
    return min(values) if rule.min is not None else max(values)


def thresholds(rule: Rule) -> list[tuple[float, str]]:
    return [(float(v), f"{op} {v}") for v, op in ((rule.min, ">="), (rule.max, "<=")) if v is not None]


def score_view(rows: list[dict], rule: Rule) -> dict:
    """Item values by their row's outcome, each scored row's (deciding value, kept), scorer failures."""
    items: dict[bool, list[float]] = {True: [], False: []}
    decided, failed = [], Counter()
    for row in ok(rows):
        annotation = (row.get("scores") or {}).get(rule.scorer)
        if annotation and annotation.get("status"):
            failed[f"{rule.scorer} {annotation['status']}"] += 1
        values = rule_values(row, rule)
        if values:
            items[bool(row.get("kept"))].extend(values)
            decided.append((deciding(values, rule), bool(row.get("kept"))))
    return {"kept": items[True], "dropped": items[False], "rows": decided, "failed": dict(failed)}


def value_range(values: list[float], marks: list[tuple[float, str]]) -> tuple[float, float]:
    """The axis: [0, 1] for values that spread over most of it (probabilities), else the 2nd to 98th
    percentile of the values widened to the thresholds (the plots count values beyond it in the end bins)."""
    ordered = sorted(values)
    lo, hi = (ordered[int(0.02 * (len(ordered) - 1))], ordered[int(0.98 * (len(ordered) - 1))]) if ordered else (0.0, 1.0)
    if ordered and ordered[0] >= 0 and ordered[-1] <= 1 and hi - lo > 0.5:
        return 0.0, 1.0
    lo, hi = min([lo] + [m for m, _ in marks]), max([hi] + [m for m, _ in marks])
    pad = (hi - lo) * 0.05 or 0.05
    return lo - pad, hi + pad
