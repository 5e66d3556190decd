"""Inline SVG plots (no plotting library): horizontal bars and histograms with marked thresholds.

Every plot is ``<svg class="plot">`` with a ``<title>``; the page's render check counts their children.
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

KEPT, DROPPED, BAR, MARK = "#3c9a5f", "#d9534f", "#4a78b5", "#222222"


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>'
            f'<text x="4" y="14" class="pt">{escape(title)}</text>{"".join(body)}</svg>')


def _fmt(value: float) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def bars(items: list[tuple[str, float]], title: str, *, kept: list[float] | None = None, unit: str = "",
         width: int = 420, label_width: int = 150, maximum: float | None = None) -> str:
    """Horizontal bars, one per (label, value); ``kept``: a second, overlaid value per bar (kept rows)."""
    top = maximum or max([v for _, v in items] + [1e-9])
    span, row = width - label_width - 60, 18
    body = []
    for k, (label, value) in enumerate(items):
        y = 24 + k * row
        body.append(f'<text x="{label_width - 4}" y="{y + 12}" text-anchor="end">{escape(label[:28])}</text>'
                    f'<rect x="{label_width}" y="{y + 2}" width="{span * value / top:.1f}" height="{row - 5}" fill="{BAR}"/>')
        if kept is not None:
            body.append(f'<rect x="{label_width}" y="{y + 6}" width="{span * kept[k] / top:.1f}" height="{row - 13}" '
                        f'fill="{KEPT}"/>')
        text = _fmt(value) + unit + (f" ({_fmt(kept[k])} kept)" if kept is not None else "")
        body.append(f'<text x="{label_width + span * value / top + 4:.1f}" y="{y + 12}">{escape(text)}</text>')
    if not items:
        body.append('<text x="8" y="40">no data</text>')
    return _svg(width + 80 * (kept is not None), 30 + row * max(1, len(items)), title, body)


def edges(lo: float, hi: float, bins: int) -> list[float]:
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return [lo + (hi - lo) * k / bins for k in range(bins + 1)]


def bin_of(value: float, edge: list[float]) -> int:
    """Index of the bin holding ``value`` (the last bin includes its upper edge)."""
    k = int((value - edge[0]) / (edge[-1] - edge[0]) * (len(edge) - 1))
    return min(max(k, 0), len(edge) - 2)


def histogram(series: list[tuple[str, list[float], str]], edge: list[float], title: str, *,
              marks: Sequence[tuple[float, str]] = (), ticks: Sequence[tuple[float, str]] | None = None,
              width: int = 420, height: int = 170, xlabel: str = "") -> str:
    """Stacked histogram of ``series`` [(name, values, colour)] over bin ``edge``s (values beyond the ends count
    in the end bins), vertical lines at ``marks``, x labels at ``ticks`` (default: the two ends)."""
    bins = len(edge) - 1
    counts = [[0] * bins for _ in series]
    for s, (_, values, _) in enumerate(series):
        for v in values:
            counts[s][bin_of(v, edge)] += 1
    top = max([sum(c[b] for c in counts) for b in range(bins)] + [1])
    x0, y0, pw, ph = 36, 24, width - 50, height - 62
    x = lambda v: x0 + pw * (v - edge[0]) / (edge[-1] - edge[0])
    body = [f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#888"/>',
            f'<text x="{x0 - 4}" y="{y0 + 8}" text-anchor="end">{top}</text>',
            f'<text x="{x0 - 4}" y="{y0 + ph}" text-anchor="end">0</text>']
    for b in range(bins):
        base = 0
        for s, (_, _, colour) in enumerate(series):
            n = counts[s][b]
            if n:
                h = ph * n / top
                body.append(f'<rect x="{x(edge[b]) + 0.5:.1f}" y="{y0 + ph - ph * base / top - h:.1f}" '
                            f'width="{max(pw / bins - 1, 1):.1f}" height="{h:.1f}" fill="{colour}"/>')
                base += n
    for v, label in ticks if ticks is not None else [(edge[0], _fmt(edge[0])), (edge[-1], _fmt(edge[-1]))]:
        body.append(f'<text x="{x(v):.1f}" y="{y0 + ph + 13}" text-anchor="middle">{escape(label)}</text>')
    for value, label in marks:
        if edge[0] <= value <= edge[-1]:
            right = x(value) > x0 + pw * 0.75   # a label near the right end goes left of its line
            body.append(f'<line x1="{x(value):.1f}" y1="{y0 - 4}" x2="{x(value):.1f}" y2="{y0 + ph}" stroke="{MARK}" '
                        f'stroke-dasharray="4 3" stroke-width="1.5"/><text x="{x(value) + (-3 if right else 3):.1f}" '
                        f'y="{y0 + 6}" text-anchor="{"end" if right else "start"}">{escape(label)}</text>')
    at = x0
    for name, values, colour in (s for s in series if s[0]):
        legend = f"■ {name} ({len(values)})"
        body.append(f'<text x="{at}" y="{height - 8}" fill="{colour}">{escape(legend)}</text>')
        at += 6 * len(legend) + 14
    if xlabel:
        body.append(f'<text x="{x0 + pw}" y="{height - 8}" text-anchor="end">{escape(xlabel)}</text>')
    return _svg(width, height, title, body)


def lines(series: list[tuple[str, list[tuple[float, float, float]], str]], title: str, *, xlabel: str = "",
          ylabel: str = "", ticks: Sequence[tuple[float, str]] = (), width: int = 460, height: int = 260) -> str:
    """Line plot of ``series`` [(name, [(x, y, spread)], colour)]: a dot per point with a +-spread bar, the
    y range padded around every point and bar; x labels at ``ticks``."""
    points = [p for _, pts, _ in series for p in pts]
    if not points:
        return _svg(width, height, title, ['<text x="8" y="40">no data</text>'])
    lo = min(y - s for _, y, s in points)
    hi = max(y + s for _, y, s in points)
    pad = max((hi - lo) * 0.1, 0.5)
    lo, hi = lo - pad, hi + pad
    xs = [x for x, _, _ in points] + [v for v, _ in ticks]
    x_lo, x_hi = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    x0, y0, pw, ph = 46, 36, width - 60, height - 86   # the y label sits between the title and the plot
    X = lambda v: x0 + pw * (v - x_lo) / (x_hi - x_lo)
    Y = lambda v: y0 + ph - ph * (v - lo) / (hi - lo)
    body = [f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="#888"/>',
            f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + ph}" stroke="#888"/>',
            f'<text x="{x0 - 4}" y="{y0 + 8}" text-anchor="end">{_fmt(round(hi, 1))}</text>',
            f'<text x="{x0 - 4}" y="{y0 + ph}" text-anchor="end">{_fmt(round(lo, 1))}</text>']
    for v, label in ticks:
        body.append(f'<text x="{X(v):.1f}" y="{y0 + ph + 13}" text-anchor="middle">{escape(label)}</text>')
    for name, pts, colour in series:
        path = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y, _ in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y, s in pts:
            body.append(f'<line x1="{X(x):.1f}" y1="{Y(y - s):.1f}" x2="{X(x):.1f}" y2="{Y(y + s):.1f}" stroke="{colour}"/>'
                        f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{colour}"/>')
    at = x0
    for name, _, colour in series:
        body.append(f'<text x="{at}" y="{height - 8}" fill="{colour}">{escape("■ " + name)}</text>')
        at += 6 * len(name) + 30
    if xlabel:
        body.append(f'<text x="{x0 + pw}" y="{y0 + ph + 28}" text-anchor="end">{escape(xlabel)}</text>')
    if ylabel:
        body.append(f'<text x="{x0 + 4}" y="{y0 - 4}">{escape(ylabel)}</text>')
    return _svg(width, height, title, body)
