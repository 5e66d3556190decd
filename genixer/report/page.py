"""One self-contained HTML page per run: inline CSS, inline SVG plots, base64 JPEG thumbnails, and a tiny
inline script that checks on load that every image decoded and every plot drew (``<body data-render>``)."""
from __future__ import annotations

import importlib
from html import escape
from pathlib import Path

from genixer.runs.files import atomic_write

from . import sections
from .cards import grid
from .runs import RunView, load_run

# The oracle section's provider, loaded by name (``find_world(run, world)``, ``evaluate(run, world, split)``):
# the mini world's, a client of the core; without it the page has no oracle section.
ORACLE = "genixer.miniworld.report_oracle"

CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:14px;margin:14px 0 6px}table{border-collapse:collapse;margin:4px 0}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}th{background:#eee}
table.facts td:first-child{font-weight:600;white-space:nowrap}.note{color:#666;margin:4px 0}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{background:#fff;border:1px solid #ddd}
svg text{font:11px system-ui,sans-serif}svg text:not([fill]){fill:#333}svg text.pt{font-weight:600}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:10px}
.card{background:#fff;border:1px solid #ccc;border-left:5px solid #999;padding:6px;overflow:hidden}
.card.kept,.card.ok{border-left-color:#3c9a5f}.card.dropped{border-left-color:#d9534f}
.card.rejected{border-left-color:#f0ad4e}.card.error{border-left-color:#555}
.card img{display:block;max-width:100%;margin:0 auto 4px;image-rendering:auto}
.card pre{white-space:pre-wrap;word-break:break-word;background:#f4f4f4;padding:4px;margin:4px 0;font-size:12px}
.badge{display:inline-block;padding:0 5px;border-radius:3px;color:#fff;background:#777;font-size:11px}
.badge.kept,.badge.ok,.badge.correct{background:#3c9a5f}.badge.dropped,.badge.wrong{background:#d9534f}
.badge.rejected,.badge.unverifiable{background:#f0ad4e}.badge.error{background:#555}
.id,.status,.problem,.score{color:#555;font-size:11px}.problem{color:#a33}
.dec{font-weight:600;font-size:12px}.dec.keep{color:#3c9a5f}.dec.drop{color:#d9534f}
ul.marks{margin:2px 0;padding-left:16px;font-size:11px}
"""

# On load: every <img> decoded (naturalWidth > 0) and every plot <svg> has children -> data-render="ok", else
# "missing:<n>"; a headless browser's dumped DOM carries the verdict (tests/test_report.py reads it).
CHECK = """<script>
window.addEventListener('load', function () {
  var missing = 0, imgs = document.images, plots = document.querySelectorAll('svg.plot');
  for (var i = 0; i < imgs.length; i++) { if (!imgs[i].complete || imgs[i].naturalWidth === 0) missing++; }
  for (var j = 0; j < plots.length; j++) { if (plots[j].childElementCount === 0) missing++; }
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-plots', plots.length);
  document.body.setAttribute('data-render', missing ? 'missing:' + missing : 'ok');
});
</script>"""


def render(run: RunView, samples: int = 60, world: str | Path | None = None, split: str | None = None,
           seed: int = 0) -> str:
    """The page's HTML for ``run``; oracle numbers when a mini world is given or found from the run's inputs."""
    try:
        mini_oracle = importlib.import_module(ORACLE)
    except ImportError:
        if world is not None:
            raise
        mini_oracle = None
    found = mini_oracle.find_world(run, world) if mini_oracle else None
    parts, verdicts = [], {}
    if found is not None:
        try:
            result = mini_oracle.evaluate(run, found, split)
            verdicts = result["verdicts"]
            parts.append(f"<h2>Oracle accuracy (mini world)</h2>{sections.oracle(result)}")
        except (KeyError, ValueError, OSError) as e:
            if world is not None:
                raise
            run.notes.append(f"mini world {found} found but not usable for the oracle: {type(e).__name__}: {e}")
    decontamination = run.decontamination()
    if decontamination:
        parts.append(f"<h2>Decontamination</h2>{sections.decontamination(decontamination)}")
    outcomes = "kept and dropped candidates, rows not ok upstream" if run.is_filter else "ok, rejected and error rows"
    body = [f"<h1>Genixer data report: {escape(run.name)}</h1>", "<h2>Run</h2>", sections.summary(run), *parts,
            "<h2>Distributions</h2>", sections.distributions(run),
            (f"<h2>Samples</h2><p class=note>Up to {samples} rows, an equal share of each outcome ({outcomes}), "
             f"seed {seed}; boxes and points drawn and numbered as listed under each text.</p>"),
            grid(run, samples, verdicts, seed)]
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{escape(run.name)} report</title>"
            f"<style>{CSS}</style></head><body data-render=pending>{''.join(body)}{CHECK}</body></html>")


def write_report(run_dir: str | Path, out: str | Path | None = None, samples: int = 60,
                 world: str | Path | None = None, split: str | None = None, seed: int = 0) -> Path:
    """Write the report of the generation or filter run at ``run_dir`` (default ``<run_dir>/report.html``)."""
    run = load_run(run_dir)
    path = Path(out) if out else run.path / "report.html"
    atomic_write(path, render(run, samples, world, split, seed))
    return path
