"""Charts as inline SVG drawn on the server: no script, no network, readable by screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

from scoring.pages.i18n import text_width

# Okabe-Ito: told apart with the common colour-vision deficiencies, dark enough on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def _frame(title: str, body: str, *, width: int = WIDTH, height: int = HEIGHT, css: str = "chart") -> Markup:
    t = escape(title)
    return Markup(
        f'<svg class="{css}" viewBox="0 0 {width} {height}" role="img" aria-label="{t}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>{body}</svg>')


def _scale(lo: float, hi: float, top: float, bottom: float) -> tuple[float, float]:
    if hi - lo < 1e-12:
        hi = lo + 1.0
    k = (bottom - top) / (hi - lo)
    return k, lo


def _fit(label: str, width: float, size: float = 11.0) -> str:
    """The label, or its longest start (at a word's end when it has spaces) that fits with an ellipsis."""
    if text_width(label, size) <= width:
        return label
    room = width - text_width("…", size)
    cut = ""
    for ch in label:
        if text_width(cut + ch, size) > room:
            break
        cut += ch
    if " " in cut.strip():
        cut = cut.rstrip()
        # A cut inside a word goes back to the word's start ("Difficulty seeing a…", not "…a doc…").
        if not label[len(cut):].startswith(" "):
            cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:-·、，") + "…"


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], *, y_min: float | None = None,
               y_max: float | None = None, y_format: str = "{:.0%}", xs: Sequence[float] | None = None,
               max_gap: float | None = None) -> Markup:
    """Lines over shared x labels (weeks, months); gaps where a value is None.

    `xs` places the points by value (a week's day number, a year) instead of by index, so a week
    without data leaves its room on the axis; a step between two points wider than `max_gap`
    breaks the line there, as a None does.
    """
    values = [v for s in series for v in s.values if v is not None]
    lo = y_min if y_min is not None else min(values, default=0.0)
    hi = y_max if y_max is not None else max(values, default=1.0)
    k, lo = _scale(lo, hi, TOP, HEIGHT - BOTTOM)
    positions = list(xs) if xs is not None else list(range(len(labels)))
    first = positions[0] if positions else 0.0
    span = (positions[-1] - first) if len(positions) > 1 else 1.0
    usable = WIDTH - LEFT - RIGHT

    def x(i: int) -> float:
        return LEFT + (positions[i] - first) / (span or 1.0) * usable

    def y(v: float) -> float:
        return HEIGHT - BOTTOM - (v - lo) * k

    parts = ['<g class="axis" font-size="11" fill="#333">']
    for j in range(5):
        v = lo + (hi - lo) * j / 4 if hi > lo else lo
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_fmt(y(v))}" y2="{_fmt(y(v))}" stroke="#ddd"/>'
                     f'<text x="{LEFT - 4}" y="{_fmt(y(v) + 4)}" text-anchor="end">{escape(y_format.format(v))}</text>')
    parts.extend(_x_labels(labels, [x(i) for i in range(len(labels))]))
    parts.append("</g>")
    for s_index, s in enumerate(series):
        color = PALETTE[s_index % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, value in enumerate(s.values):
            if value is None or (max_gap is not None and i > 0 and positions[i] - positions[i - 1] > max_gap):
                runs.append([])
            if value is not None:
                runs[-1].append(f"{_fmt(x(i))},{_fmt(y(value))}")
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline class="series" fill="none" stroke="{color}" stroke-width="2" '
                             f'points="{" ".join(run)}"><title>{escape(s.name)}</title></polyline>')
            elif run:
                cx, cy = run[0].split(",")
                parts.append(f'<circle class="series" cx="{cx}" cy="{cy}" r="3" fill="{color}">'
                             f'<title>{escape(s.name)}</title></circle>')
    return _frame(title, "".join(parts))


def _x_labels(labels: Sequence[str], at: Sequence[float], size: float = 11.0, gap: float = 10.0) -> list[str]:
    """The x-axis labels that fit without overlapping, the last one always among them, none past the edges.

    A label centred on its point that would cross the chart's left or right edge is anchored at its
    start or end instead.
    """
    boxes = []
    for label, cx in zip(labels, at, strict=True):
        w = text_width(label, size)
        left = min(max(cx - w / 2, 0.0), WIDTH - w)
        boxes.append((left, left + w, label))
    chosen: list[tuple[float, float, str]] = []
    if boxes:
        last = boxes[-1]
        for box in boxes[:-1]:
            if (not chosen or box[0] >= chosen[-1][1] + gap) and box[1] + gap <= last[0]:
                chosen.append(box)
        chosen.append(last)
    out = []
    for left, right, label in chosen:
        if left <= 0.0:
            attrs = f'x="{_fmt(left)}" text-anchor="start"'
        elif right >= WIDTH:
            attrs = f'x="{_fmt(right)}" text-anchor="end"'
        else:
            attrs = f'x="{_fmt((left + right) / 2)}" text-anchor="middle"'
        out.append(f'<text class="x-label" {attrs} y="{HEIGHT - 8}">{escape(label)}</text>')
    return out


def legend(series: Sequence[Series]) -> Markup:
    items = "".join(f'<li><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
                    f"{escape(s.name)}</li>" for i, s in enumerate(series))
    return Markup(f'<ul class="legend">{items}</ul>')


def sparkline(title: str, values: Sequence[float]) -> Markup:
    """A small trend line (weekly counts) for a table cell."""
    w, h = 120, 28
    if not values:
        return _frame(title, "", width=w, height=h, css="spark")
    hi = max(max(values), 1.0)
    step = (w - 4) / max(len(values) - 1, 1)
    points = " ".join(f"{_fmt(2 + i * step)},{_fmt(h - 2 - v / hi * (h - 4))}" for i, v in enumerate(values))
    return _frame(title, f'<polyline class="series" fill="none" stroke="{PALETTE[1]}" stroke-width="1.5" '
                         f'points="{points}"/>', width=w, height=h, css="spark")


def target_chart(title: str, *, start: date, end: date, baseline: float, target: float,
                 points: Sequence[tuple[date, float]], band: tuple[date, float, float, float] | None) -> Markup:
    """Reported values against the straight trajectory from baseline (Jan 1) to target (Dec 31),
    with the tracker's projection for Dec 31 and its band drawn from the latest report."""
    span = max((end - start).days, 1)
    candidates = [baseline, target, *(v for _d, v in points)]
    if band is not None:
        candidates += [band[1], band[2], band[3]]
    lo, hi = min(candidates), max(candidates)
    pad = (hi - lo) * 0.05 or 1.0
    k, lo = _scale(lo - pad, hi + pad, TOP, HEIGHT - BOTTOM)

    def x(d: date) -> float:
        return LEFT + (d - start).days / span * (WIDTH - LEFT - RIGHT)

    def y(v: float) -> float:
        return HEIGHT - BOTTOM - (v - lo) * k

    parts = ['<g class="axis" font-size="11" fill="#333">']
    for v in (baseline, target):
        parts.append(f'<text x="{LEFT - 4}" y="{_fmt(y(v) + 4)}" text-anchor="end">{escape(f"{v:g}")}</text>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 8}">{start.isoformat()}</text>'
                 f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{end.isoformat()}</text></g>')
    if band is not None:
        d0, value, low, high = band
        last = points[-1] if points else (d0, value)
        parts.append(f'<polygon class="band" fill="{PALETTE[5]}" fill-opacity="0.25" points="'
                     f'{_fmt(x(last[0]))},{_fmt(y(last[1]))} {_fmt(x(end))},{_fmt(y(high))} '
                     f'{_fmt(x(end))},{_fmt(y(low))}"><title>projection band</title></polygon>'
                     f'<line class="projection" x1="{_fmt(x(last[0]))}" y1="{_fmt(y(last[1]))}" x2="{_fmt(x(end))}" '
                     f'y2="{_fmt(y(value))}" stroke="{PALETTE[0]}" stroke-dasharray="4 3"/>')
    parts.append(f'<line class="trajectory" x1="{_fmt(x(start))}" y1="{_fmt(y(baseline))}" x2="{_fmt(x(end))}" '
                 f'y2="{_fmt(y(target))}" stroke="#555" stroke-dasharray="2 4"><title>trajectory</title></line>')
    if points:
        path = " ".join(f"{_fmt(x(d))},{_fmt(y(v))}" for d, v in points)
        parts.append(f'<polyline class="series" fill="none" stroke="{PALETTE[1]}" stroke-width="2" '
                     f'points="{path}"><title>reported</title></polyline>')
    return _frame(title, "".join(parts))


def bars(title: str, rows: Sequence[tuple[str, float]], *, x_max: float = 1.0, value_format: str = "{:.1%}"
         ) -> Markup:
    """Horizontal bars, one per labelled row (satisfaction by unit, category shares)."""
    row_h = 18
    height = TOP + row_h * len(rows) + 8
    label_w = 200
    width = WIDTH
    usable = width - label_w - 60
    parts = ['<g font-size="11" fill="#222">']
    for i, (label, v) in enumerate(rows):
        y0 = TOP + i * row_h
        w = max(0.0, min(v / x_max if x_max else 0.0, 1.0)) * usable
        # A long label is shortened with an ellipsis (at a word's end); its <title> holds the whole of it.
        parts.append(f'<text class="bar-label" x="{label_w - 6}" y="{y0 + 12}" text-anchor="end">'
                     f'<title>{escape(label)}</title>{escape(_fit(label, label_w - 10))}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y0 + 2}" width="{_fmt(w)}" height="{row_h - 6}" '
                     f'fill="{PALETTE[0]}"/><text x="{_fmt(label_w + w + 4)}" y="{y0 + 12}">'
                     f'{escape(value_format.format(v))}</text>')
    parts.append("</g>")
    return _frame(title, "".join(parts), width=width, height=height)
