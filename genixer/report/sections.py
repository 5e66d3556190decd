"""The report's sections as HTML fragments: summary, distributions, oracle accuracy, decontamination."""
from __future__ import annotations

import json
from collections import Counter
from html import escape

from genixer.filtering.selection import Rule

from . import stats
from .runs import RunView
from .svg import DROPPED, KEPT, bars, bin_of, edges, histogram


def table(header: list[str], rows: list[list[object]], cls: str = "") -> str:
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else escape(str(v))
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><tr>{head}</tr>{body}</table>"


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def summary(run: RunView) -> str:
    """Inputs, counts and rules from the manifests."""
    inputs, counts = run.source.get("inputs", {}), run.manifest.get("counts", {})
    facts = [["run", str(run.path)], ["stage", run.stage], ["created", run.manifest.get("created", "?")],
             ["code", run.manifest.get("code_version", "?")], ["generator", inputs.get("generator", "?")],
             ["task", inputs.get("task", "?")], ["queries", inputs.get("queries", "?")],
             ["decoding", json.dumps(inputs.get("generation", {}))]]
    status = Counter(str(r.get("status")) for r in run.rows)
    facts.append(["rows", ", ".join(f"{k} {v}" for k, v in status.most_common())])
    reasons = Counter(str(r.get("reason")) for r in run.rows if r.get("status") != "ok")
    if run.is_filter:
        facts += [["filter", run.manifest["inputs"].get("filter", "?")],
                  ["kept", f"{counts.get('kept', 0)} of {counts.get('candidates', 0)} candidates"]]
        facts += [[f"rule {name}", rule.describe()] for name, rule in run.rules.items()]
        facts += [["dropped", f"{v} × {k}"] for k, v in counts.get("dropped_by_reason", {}).items()]
        facts += [["scorer error", f"{v} × {k}"] for k, v in counts.get("scorer_errors", {}).items()]
    facts += [["not ok", f"{v} × {k}"] for k, v in reasons.most_common(8)]
    notes = "".join(f"<p class=note>{escape(n)}</p>" for n in run.notes)
    return table(["", ""], facts, "facts") + notes


def distributions(run: RunView) -> str:
    """Family mix, answer lengths, distinct-n; for filter runs every rule's scores and kept share by band."""
    mix = stats.family_mix(run.rows)
    plots = [bars([(label, n) for label, n, _ in mix], "task / family mix (accepted rows)",
                  kept=[k for _, _, k in mix] if run.is_filter else None)]
    status = Counter(str(r.get("status")) for r in run.rows)
    plots.append(bars(status.most_common(), "row status"))
    lengths = stats.answer_lengths(run.rows)
    if lengths:
        top = min(max(lengths), 60)   # longer answers count in the last bin
        ticks = sorted({(0, "0"), (top // 2, str(top // 2)), (top, f"{top}+" if max(lengths) > top else str(top))})
        boxes = any(r.get("family") == "rec" for r in stats.ok(run.rows))
        title = "answer length (words" + ("; REC rows left out: a box answers them)" if boxes else ")")
        plots.append(histogram([("", lengths, "#4a78b5")], edges(-0.5, top + 0.5, top + 1),
                               title, ticks=ticks, xlabel="words"))
    unscored = [f"{name} ({rule.scorer}.{rule.field})" for name, rule in run.rules.items() if not stats.score_view(run.rows, rule)["rows"]]
    for name, rule in run.rules.items():
        plots.extend(score_plots(run, name, rule))
    div = stats.diversity(run.rows)
    diversity = table(["family", "n", "distinct-1 q", "distinct-2 q", "distinct-1 a", "distinct-2 a"],
                      [[d["family"], d["n"], d["q1"], d["q2"], d["a1"] if d["a"] else "-", d["a2"] if d["a"] else "-"]
                       for d in div])
    note = f"<p class=note>rules with no numeric score in these rows: {escape(', '.join(unscored))}</p>" if unscored else ""
    return (f"<div class=plots>{''.join(plots)}</div>{note}<h3>Diversity</h3>"
            "<p class=note>distinct-n: distinct word n-grams / all n-grams; q: the questions (REC / REG: the "
            "expressions), a: the answers (none for REC: its answer is a box).</p>" + diversity)


def score_plots(run: RunView, name: str, rule: Rule) -> list[str]:
    """The rule's item scores (by their row's outcome) with its threshold, and the kept share per score band."""
    view = stats.score_view(run.rows, rule)
    if not view["rows"]:
        return []
    marks = stats.thresholds(rule)
    lo, hi = stats.value_range(view["kept"] + view["dropped"], marks)
    label = f"{rule.scorer}.{rule.field}"
    plots = [histogram([("in kept rows", view["kept"], KEPT), ("in dropped rows", view["dropped"], DROPPED)],
                       edges(lo, hi, 20), f"{label} per item ({name})", marks=marks, xlabel=rule.field)]
    band_edges = edges(lo, hi, 10)
    totals, kept = Counter(), Counter()
    for value, was_kept in view["rows"]:
        b = bin_of(value, band_edges)
        totals[b] += 1
        kept[b] += was_kept
    items = [(f"{band_edges[b]:.3g}–{band_edges[b + 1]:.3g} (n={totals[b]})", 100 * kept[b] / totals[b]) for b in sorted(totals)]
    plots.append(bars(items, f"kept share by {label} band (row's deciding value)", unit="%", maximum=100, label_width=170))
    if view["failed"]:
        plots.append(bars(sorted(view["failed"].items()), f"{rule.scorer}: items not scored"))
    return plots


def oracle(result: dict) -> str:
    """Per-family accuracy beside the trivial baseline; for filter runs precision / recall of "kept"."""
    gen = result["generation"]
    rows = [[f, r["n"], r["metric"], pct(r["accuracy"]) if "accuracy" in r else "-",
             pct(r["baseline"]) if "baseline" in r else "-", pct(r["unverifiable"]) if "unverifiable" in r else "-"]
            for f, r in sorted(gen["families"].items())]
    html = (f"<p>world {escape(result['world'])}, <b>{escape(result['split'])}</b> split (strict oracle; "
            f"accuracy counts correct rows over all parsed ones). Parse rejects {pct(gen['parse_reject_rate'])}, "
            f"errors {gen['errors']}" + (f", {result['outside']} rows with images outside the split left out" if result["outside"] else "")
            + ".</p>" + table(["family", "n", "metric", "accuracy", "baseline", "unverifiable"], rows))
    accuracy = [(f, 100 * r["accuracy"]) for f, r in sorted(gen["families"].items()) if "accuracy" in r]
    html += f"<div class=plots>{bars(accuracy, 'oracle accuracy per family', unit='%', maximum=100)}</div>"
    if result.get("selection"):
        sel = [[f, r["n"], r["kept"], pct(r["precision"]), pct(r["recall"]), pct(r["wrong_dropped"]),
                pct(r["accuracy_all"]), pct(r["accuracy_kept"])] for f, r in sorted(result["selection"].items())]
        html += "<h3>Filter against the oracle</h3>" + table(
            ["family", "n", "kept", "precision", "recall", "wrong dropped", "acc. all", "acc. kept"], sel)
    return html


def decontamination(record: dict, limit: int = 400) -> str:
    """The manifest's decontamination record, flattened one level (long values cut at ``limit`` characters)."""
    def shown(value: object) -> object:
        text = json.dumps(value) if isinstance(value, (dict, list)) else value
        return text[:limit] + "…" if isinstance(text, str) and len(text) > limit else text
    rows = []
    for key, value in record.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        rows += [[key if k is None else f"{key}.{k}", shown(v)] for k, v in items]
    return table(["", ""], rows, "facts")
