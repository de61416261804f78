"""Charts as inline SVG, made on the server: pure functions from numbers to markup.

No JavaScript chart library and nothing fetched from elsewhere: the page
carries the picture. Colours come from classes (``series-0``, ``bar``, …)
styled by the dashboard's stylesheet, so the strict Content-Security-Policy
(no inline styles) holds. Every point and bar carries its value in a
``data-value`` attribute and a ``<title>`` (a tooltip, read by screen readers
too); text is escaped.

Also here: the arithmetic behind the charts (:func:`percent_present`,
:func:`late_histogram`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Iterable, Mapping, Sequence

#: Statuses that make a working day (as in the monthly recap).
WORKING = ("H", "A", "S", "I", "DL", "C")


@dataclass(frozen=True)
class Series:
    """One line: a name and a value (or None: no data) per x position."""

    name: str
    values: Sequence[float | None]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    note: str = ""  # extra text for the tooltip


# -- arithmetic ---------------------------------------------------------------------------
def percent_present(counts: Mapping[str, int]) -> float | None:
    """H over working days (H + A + S + I + DL + C) x 100, 2 decimals; None without a
    working day (a holiday, a weekend, no rows)."""
    working = sum(int(counts.get(s, 0)) for s in WORKING)
    if not working:
        return None
    return round(int(counts.get("H", 0)) / working * 100, 2)


def late_histogram(minutes: Iterable[int], bin_minutes: int = 15) -> list[tuple[int, int]]:
    """Count local times of day (minutes since midnight) per bin of ``bin_minutes``:
    ``[(bin start, count), …]`` from the first to the last non-empty bin, empty bins
    between them included (a histogram must not hide a gap)."""
    if bin_minutes <= 0:
        raise ValueError("bin_minutes must be more than 0")
    counts: dict[int, int] = {}
    for minute in minutes:
        start = (int(minute) % 1440) // bin_minutes * bin_minutes
        counts[start] = counts.get(start, 0) + 1
    if not counts:
        return []
    first, last = min(counts), max(counts)
    return [(start, counts.get(start, 0)) for start in range(first, last + 1, bin_minutes)]


def clock(minute: int) -> str:
    """Minutes since midnight as ``HH:MM``."""
    return f"{minute // 60 % 24:02d}:{minute % 60:02d}"


def nice_ceiling(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5, 5 x a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _svg_open(width: int, height: int, title: str, description: str, css: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css}" '
            f'viewBox="0 0 {width} {height}" width="100%" role="img" '
            f'aria-label="{escape(title)}">',
            f"<title>{escape(title)}</title>", f"<desc>{escape(description)}</desc>"]


def _empty(width: int, height: int, title: str, empty_text: str, css: str) -> str:
    parts = _svg_open(width, height, title, empty_text, css + " chart-empty")
    parts.append(f'<text class="empty" x="{width / 2:.0f}" y="{height / 2:.0f}" '
                 f'text-anchor="middle">{escape(empty_text)}</text></svg>')
    return "".join(parts)


# -- charts ------------------------------------------------------------------------------------
def line_chart(series: Sequence[Series], labels: Sequence[str], *, title: str,
               description: str = "", y_max: float | None = 100.0, unit: str = "%",
               empty_text: str = "no data", width: int = 760, height: int = 300) -> str:
    """Lines over ``labels`` (x positions); None values break a line (no data that day).

    ``y_max`` None: from the data. Returns one ``<svg>`` element.
    """
    values = [v for s in series for v in s.values if v is not None]
    if not labels or not values:
        return _empty(width, height, title, empty_text, "line-chart")
    top = y_max if y_max is not None else nice_ceiling(max(values))
    left, right, upper, lower = 48, 16, 16, 56 if len(series) > 1 else 36
    plot_w, plot_h = width - left - right, height - upper - lower
    step = plot_w / max(1, len(labels) - 1)

    def x(i: int) -> float:
        return left + (i * step if len(labels) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return upper + plot_h - min(v, top) / top * plot_h

    parts = _svg_open(width, height, title, description, "line-chart")
    for k in range(5):  # grid lines and the y axis labels
        v = top * k / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(v):.1f}" '
                     f'y2="{y(v):.1f}"/><text class="axis" x="{left - 6}" y="{y(v) + 4:.1f}" '
                     f'text-anchor="end">{_number(v)}{escape(unit)}</text>')
    every = max(1, math.ceil(len(labels) / 16))
    for i, label in enumerate(labels):
        if i % every == 0 or i == len(labels) - 1:
            parts.append(f'<text class="axis" x="{x(i):.1f}" y="{upper + plot_h + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    for n, line in enumerate(series):
        runs: list[list[str]] = [[]]
        for i, v in enumerate(line.values[:len(labels)]):
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline class="line series-{n % 6}" fill="none" '
                             f'points="{" ".join(run)}"/>')
        for i, v in enumerate(line.values[:len(labels)]):
            if v is not None:
                parts.append(f'<circle class="point series-{n % 6}" cx="{x(i):.1f}" '
                             f'cy="{y(v):.1f}" r="3.5" data-series="{escape(line.name)}" '
                             f'data-label="{escape(labels[i])}" data-value="{_number(v)}">'
                             f"<title>{escape(line.name)} {escape(labels[i])}: "
                             f"{_number(v)}{escape(unit)}</title></circle>")
    if len(series) > 1:  # legend
        for n, line in enumerate(series):
            lx = left + n * 180
            parts.append(f'<rect class="legend series-{n % 6}" x="{lx}" y="{height - 20}" '
                         f'width="12" height="12"/><text class="legend-text" x="{lx + 18}" '
                         f'y="{height - 10}">{escape(line.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: Sequence[Bar], *, title: str, description: str = "",
              x_max: float | None = 100.0, unit: str = "%", empty_text: str = "no data",
              width: int = 760, row_height: int = 22, label_width: int = 290) -> str:
    """Horizontal bars, one row per item (many sites stay readable)."""
    if not bars:
        return _empty(width, 120, title, empty_text, "bar-chart")
    top = x_max if x_max is not None else nice_ceiling(max(b.value for b in bars))
    upper, lower = 8, 28
    height = upper + lower + row_height * len(bars)
    plot_w = width - label_width - 64
    parts = _svg_open(width, height, title, description, "bar-chart")
    for k in range(5):
        gx = label_width + plot_w * k / 4
        parts.append(f'<line class="grid" x1="{gx:.1f}" x2="{gx:.1f}" y1="{upper}" '
                     f'y2="{height - lower}"/><text class="axis" x="{gx:.1f}" '
                     f'y="{height - 10}" text-anchor="middle">{_number(top * k / 4)}'
                     f"{escape(unit)}</text>")
    for i, bar in enumerate(bars):
        by = upper + i * row_height
        w = max(0.0, min(bar.value, top)) / top * plot_w
        tip = f"{bar.label}: {_number(bar.value)}{unit}" + (f" ({bar.note})" if bar.note else "")
        text_y = by + row_height * 0.7
        parts.append(f'<text class="bar-label" x="{label_width - 8}" y="{text_y:.1f}" '
                     f'text-anchor="end">{escape(_clip(bar.label, 40))}</text>'
                     f'<rect class="bar" x="{label_width}" y="{by + 3}" width="{w:.1f}" '
                     f'height="{row_height - 6}" data-label="{escape(bar.label)}" '
                     f'data-value="{_number(bar.value)}"><title>{escape(tip)}</title></rect>'
                     f'<text class="bar-value" x="{label_width + w + 6:.1f}" '
                     f'y="{text_y:.1f}">{_number(bar.value)}{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(bins: Sequence[tuple[int, int]], *, bin_minutes: int, title: str,
              description: str = "", empty_text: str = "no data", width: int = 760,
              height: int = 280) -> str:
    """Vertical columns of counts per time-of-day bin (from :func:`late_histogram`)."""
    if not bins or not any(count for _, count in bins):
        return _empty(width, height, title, empty_text, "histogram")
    top = nice_ceiling(max(count for _, count in bins))
    left, right, upper, lower = 48, 16, 16, 40
    plot_w, plot_h = width - left - right, height - upper - lower
    column = plot_w / len(bins)
    parts = _svg_open(width, height, title, description, "histogram")
    for k in range(5):
        v = top * k / 4
        gy = upper + plot_h - v / top * plot_h
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{gy:.1f}" '
                     f'y2="{gy:.1f}"/><text class="axis" x="{left - 6}" y="{gy + 4:.1f}" '
                     f'text-anchor="end">{_number(v)}</text>')
    every = max(1, math.ceil(len(bins) / 12))
    for i, (start, count) in enumerate(bins):
        h = count / top * plot_h
        bx = left + i * column
        label = f"{clock(start)}–{clock(start + bin_minutes)}"
        parts.append(f'<rect class="bar column" x="{bx + 1:.1f}" y="{upper + plot_h - h:.1f}" '
                     f'width="{max(1.0, column - 2):.1f}" height="{h:.1f}" '
                     f'data-label="{clock(start)}" data-value="{count}">'
                     f"<title>{escape(label)}: {count}</title></rect>")
        if i % every == 0:
            parts.append(f'<text class="axis" x="{bx:.1f}" y="{upper + plot_h + 16}" '
                         f'text-anchor="start">{clock(start)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
