"""Console tables of evaluation results (rich), and the same text for ``table.txt``."""
from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

GENERATION = ("run", "samples", "reject", "errors", "family", "n", "metric", "accuracy", "baseline", "unverif")
FILTERS = ("filter run", "family", "n", "kept", "precision", "recall", "wrong dropped", "acc. all", "acc. kept")


def render(header: tuple[str, ...], rows: list[list[str]]) -> str:
    """A plain-text table (no colour, no box characters), so logs and files read the same."""
    table = Table(*header, box=None, pad_edge=False, header_style="bold")
    for column in table.columns[1:]:
        column.justify = "right"
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    Console(file=out, width=250, color_system=None).print(table)
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


def filter_table(results: dict[str, dict]) -> str:
    """One line per (filter run, family): kept of n, precision / recall of "kept" for "correct", accuracy gain."""
    rows = [[run, family, str(f["n"]), str(f["kept"]),
             *(f"{f[k]:.1%}" for k in ("precision", "recall", "wrong_dropped", "accuracy_all", "accuracy_kept"))]
            for run, families in results.items() for family, f in families.items()]
    return render(FILTERS, rows)
