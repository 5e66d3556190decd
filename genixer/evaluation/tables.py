"""Console tables of evaluation results (rich), and the same text for ``table.txt``."""
from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

GENERATION = ("run", "samples", "reject", "errors", "family", "n", "metric", "accuracy", "baseline", "unverif")
FILTERS = ("filter run", "family", "n", "kept", "precision", "recall", "wrong dropped", "acc. all", "acc. kept")
COVERAGE = ("run", "family", "n", "forms", "distinct-2", "min ratio", "worst kind", "covered", "kind gen%/train% acc%")


def render(header: tuple[str, ...], rows: list[list[str]], width: int = 250, left: tuple[int, ...] = (0,)) -> str:
    """A plain-text table (no colour, no box characters), so logs and files read the same; numbers
    right-justified, the ``left`` columns left-justified."""
    table = Table(*header, box=None, pad_edge=False, header_style="bold")
    for i, column in enumerate(table.columns):
        column.justify = "left" if i in left else "right"
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def generation_table(results: dict[str, dict]) -> str:
    """One line per (run, family): count, reject rate, oracle accuracy beside its baseline."""
    rows = []
    for run, m in results.items():
        for family, f in m["families"].items() or {"-": {}}.items():
            rows.append([run, str(m["samples"]), f"{m['parse_reject_rate']:.1%}", str(m["errors"]), family,
                         str(f.get("n", 0)), f.get("metric", "-"),
                         *(f"{f[k]:.1%}" if k in f else "-" for k in ("accuracy", "baseline", "unverifiable"))])
    return render(GENERATION, rows)


def filter_table(results: dict[str, dict], notes: list[str] = ()) -> str:
    """One line per (filter run, family): kept of n, precision / recall of "kept" for "correct", accuracy gain;
    then ``notes`` (the thresholds and where each was chosen)."""
    rows = [[run, family, str(f["n"]), str(f["kept"]),
             *(f"{f[k]:.1%}" for k in ("precision", "recall", "wrong_dropped", "accuracy_all", "accuracy_kept"))]
            for run, families in results.items() for family, f in families.items()]
    return "\n".join([render(FILTERS, rows), *notes])


def coverage_table(results: dict[str, dict]) -> str:
    """One line per (run, family): distinct forms (generated/training), distinct-2, the smallest generated /
    training share ratio and its kind, and each kind's share (generated/training) and accuracy (kinds under
    0.5% of both left out)."""
    def pct(x):
        return "-" if x is None else f"{x:.0%}"

    rows = []
    for run, families in results.items():
        for family, f in families.items():
            ref = f["reference"] is not None
            kinds = ", ".join(f"{k} {pct(t['share'])}{'/' + pct(t['train_share']) if ref else ''} {pct(t['accuracy'])}"
                              for k, t in f["types"].items() if max(t["share"], t.get("train_share", 0)) >= 0.005)
            ratio = "-" if f["min_share_ratio"] is None else f"{f['min_share_ratio']:.2f}"
            rows.append([run, family, str(f["n"]), f"{f['forms']}/{f['train_forms']}" if ref else str(f["forms"]),
                         f"{f['distinct_2']:.3f}", ratio, (f["worst"] or "-") if ref else "no reference",
                         {True: "yes", False: "no"}.get(f["covered"], "-"), kinds])
    return "\n".join([render(COVERAGE, rows, width=1000, left=(0, 6, 8)), *reference_notes(results)])


def reference_notes(results: dict[str, dict]) -> list[str]:
    """Which training mixture each generator's families were compared with ("none (family)" when no mixture has
    it; "ambiguous" when several have it and ``coverage.prefer`` names none of them for the generator)."""
    by_generator: dict[str, dict[str, list[str]]] = {}
    for run, families in results.items():
        refs = by_generator.setdefault(run.rpartition(":")[0] or run, {})
        for family, f in families.items():
            ambiguous = f.get("ambiguous")
            ref = f"ambiguous, set coverage.prefer: {' / '.join(ambiguous)}" if ambiguous else f["reference"] or "none"
            refs.setdefault(ref, []).append(family)
    return [f"training reference of {generator}: " + "; ".join(f"{ref} ({', '.join(sorted(set(fams)))})"
                                                            for ref, fams in refs.items())
            for generator, refs in by_generator.items()]


def benchmark_table(results: dict[str, dict]) -> str:
    """One line per benchmark: n, missing answers, its metric's score (or why there is none); the other numbers
    (per answer type, mIoU, answering speed) after it."""
    main = {"benchmark", "metric", "n", "missing", "score", "answers", "error_reasons", "failure"}

    def detail(k, v):
        return f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"

    rows = [[name, r.get("metric", "-"), str(r.get("n", "-")), str(r.get("missing", "-")),
             "-" if r.get("score") is None else f"{r['score']:.1f}",
             ", ".join(detail(k, v) for k, v in r.items() if k not in main and v is not None)]
            for name, r in results.items()]
    return render(("benchmark", "metric", "n", "missing", "score", "details"), rows, width=400, left=(0, 1, 5))


def paper_table(model: str, results: dict[str, dict], columns: dict[str, str]) -> str:
    """The paper's layout: one row for the model, a column per benchmark (``columns``: benchmark -> label, in
    the paper's order); "-" where a benchmark has no score here (a server's split, no judge, no files)."""
    cells = ["-" if results.get(b, {}).get("score") is None else f"{results[b]['score']:.1f}" for b in columns]
    return render(("model", *columns.values()), [[model, *cells]], width=400)
