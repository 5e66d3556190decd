"""The sample grid: a seeded pick of rows over their outcomes, each shown as a card (image with marks, text,
task/family, status, scores and keep/drop reason, oracle verdict)."""
from __future__ import annotations

import random
import re
from html import escape
from pathlib import Path

from .images import PALETTE, thumbnail
from .runs import RunView

MAX_TEXT = 700
_LONG_FLOAT = re.compile(r"(\d+\.\d{3})\d+")   # 0.7081920504570007 -> 0.708


def outcome(row: dict) -> str:
    """kept / dropped (filter candidates), else the generation status: ok / rejected / error."""
    if "kept" in row:
        return "kept" if row["kept"] else "dropped"
    return str(row.get("status", "unknown"))


def pick(rows: list[dict], n: int, seed: int = 0) -> list[dict]:
    """Up to ``n`` rows, an equal share per outcome (kept and dropped, ok, rejected and error; a share left
    unused passes to the others), seeded, in id order."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(outcome(row), []).append(row)
    rng = random.Random(seed)
    pools = {k: rng.sample(v, len(v)) for k, v in sorted(groups.items())}
    chosen: list[dict] = []
    while len(chosen) < n and any(pools.values()):
        for pool in pools.values():
            if pool and len(chosen) < n:
                chosen.append(pool.pop())
    return sorted(chosen, key=lambda r: str(r.get("id")))


def _scores(row: dict) -> str:
    """One line per scorer: its numbers (one per item) or its failure."""
    lines = []
    for scorer, annotation in (row.get("scores") or {}).items():
        if annotation.get("status"):
            lines.append(f"{scorer} {annotation['status']}: {annotation.get('reason', '')}")
            continue
        fields = [f for f in ("p_yes", "cosine", "clipscore") if f in annotation] or [
            f for f, v in annotation.items() if isinstance(v, (int, float, list))][:2]
        for field in fields:
            value = annotation[field]
            values = value if isinstance(value, list) else [value]
            lines.append(f"{scorer} {field}: " + ", ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in values))
    return "".join(f"<div class=score>{escape(line)}</div>" for line in lines)


def _decision(row: dict) -> str:
    if "kept" not in row:
        return ""
    if row["kept"]:
        return "<div class='dec keep'>kept</div>"
    drops = "; ".join(f"{d.get('reason')} ({_LONG_FLOAT.sub(lambda m: m.group(1), str(d.get('detail')))})"
                      for d in row.get("drops", []))
    return f"<div class='dec drop'>dropped: {escape(drops)}</div>"


def card(row: dict, image_root: Path, verdicts: dict[str, str]) -> str:
    uri, found, problem = thumbnail(image_root, row)
    state = outcome(row)
    status = str(row.get("status", "unknown")) + (f": {row['reason']}" if row.get("reason") else "")
    legend = "".join(f"<li><b style='color:{PALETTE[k % len(PALETTE)]}'>{k + 1}</b> {kind} {escape(label)} "
                     f"[{', '.join(f'{c:.2f}' for c in coords)}]</li>" for k, (kind, coords, label) in enumerate(found))
    text = str(row.get("text") or "")
    oracle = verdicts.get(row.get("id"))
    return "".join([
        f"<div class='card {state}' data-outcome='{state}'>",
        f"<img src='{uri}' alt='{escape(str(row.get('image', '')))}'>",
        f"<div class=meta><span class='badge {state}'>{state}</span> <b>{escape(str(row.get('task', '?')))}</b>"
        f" / {escape(str(row.get('family', '-')))}"
        + (f" <span class='badge {oracle}'>oracle: {oracle}</span>" if oracle else "") + "</div>",
        f"<div class=id>{escape(str(row.get('id')))} · {escape(str(row.get('image', '')))}</div>",
        f"<div class=status>status {escape(status)}</div>" if state not in ("ok", "kept", "dropped") else "",
        f"<div class=problem>image: {escape(problem)}</div>" if problem else "",
        f"<pre>{escape(text[:MAX_TEXT])}{'…' if len(text) > MAX_TEXT else ''}</pre>",
        f"<ul class=marks>{legend}</ul>" if legend else "",
        _scores(row), _decision(row), "</div>"])


def grid(run: RunView, n: int, verdicts: dict[str, str], seed: int = 0) -> str:
    chosen = pick(run.rows, n, seed)
    return f"<div class=grid>{''.join(card(r, run.image_root, verdicts) for r in chosen)}</div>"
