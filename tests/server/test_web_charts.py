"""The dashboard's SVG charts and the arithmetic behind them (pure functions)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, strategies as st

from server.web.charts import (Bar, Series, bar_chart, clock, histogram, late_histogram,
                               line_chart, nice_ceiling, percent_present)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == SVG + "svg" and root.get("role") == "img"
    return root


@pytest.mark.parametrize("counts, expected", [
    ({"H": 9, "A": 1}, 90.0),
    ({"H": 2, "S": 1}, 66.67),
    ({"H": 0, "A": 3}, 0.0),
    ({"LIBUR": 5}, None),
    ({}, None),
    ({"H": 20, "A": 1, "S": 0, "I": 0, "DL": 0, "C": 0, "PENDING": 3}, 95.24),
])
def test_percent_present(counts, expected):
    assert percent_present(counts) == expected


def test_late_histogram_fills_gaps_between_bins():
    minutes = [7 * 60 + 31, 7 * 60 + 44, 7 * 60 + 46, 8 * 60 + 30]
    assert late_histogram(minutes, 15) == [(450, 2), (465, 1), (480, 0), (495, 0), (510, 1)]
    assert late_histogram([], 15) == []
    assert late_histogram([1439, 1440 + 5], 60) == [(0, 1), (60, 0), (120, 0), (180, 0),
                                                   (240, 0), (300, 0), (360, 0), (420, 0),
                                                   (480, 0), (540, 0), (600, 0), (660, 0),
                                                   (720, 0), (780, 0), (840, 0), (900, 0),
                                                   (960, 0), (1020, 0), (1080, 0), (1140, 0),
                                                   (1200, 0), (1260, 0), (1320, 0), (1380, 1)]
    with pytest.raises(ValueError):
        late_histogram([1], 0)


@given(st.lists(st.integers(0, 1439), max_size=200), st.sampled_from([5, 10, 15, 30, 60]))
def test_late_histogram_counts_every_minute_once(minutes, width):
    bins = late_histogram(minutes, width)
    assert sum(n for _, n in bins) == len(minutes)
    starts = [s for s, _ in bins]
    assert starts == sorted(starts) and all(b - a == width for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("value, expected", [(0, 1), (0.3, 0.5), (7, 10), (12, 20), (23, 25),
                                             (40, 50), (100, 100), (101, 200)])
def test_nice_ceiling(value, expected):
    assert nice_ceiling(value) == expected


def test_clock():
    assert (clock(0), clock(7 * 60 + 5), clock(1439)) == ("00:00", "07:05", "23:59")


def test_line_chart_points_values_and_gaps():
    svg = line_chart([Series("OPD-1", [90.0, None, 95.5, 100.0])], ["1", "2", "3", "4"],
                     title="Hadir <per hari>", unit="%")
    root = parse(svg)
    assert root.find(SVG + "title").text == "Hadir <per hari>"  # escaped in the markup
    assert "<per hari>" not in svg
    points = root.findall(f".//{SVG}circle")
    assert [(p.get("data-label"), p.get("data-value")) for p in points] == [
        ("1", "90"), ("3", "95.5"), ("4", "100")]
    # The missing day breaks the line: one polyline for days 3-4, none for a lone point.
    lines = root.findall(f".//{SVG}polyline")
    assert len(lines) == 1 and len(lines[0].get("points").split()) == 2
    ys = [float(p.get("cy")) for p in points]
    assert ys[0] > ys[1] > ys[2]  # higher values are drawn higher up


def test_line_chart_with_two_series_has_a_legend():
    svg = line_chart([Series("A", [50, 60]), Series("B & C", [70, 80])], ["1", "2"],
                     title="t")
    root = parse(svg)
    assert [t.text for t in root.iter(SVG + "text") if t.get("class") == "legend-text"] == [
        "A", "B & C"]
    classes = {p.get("class") for p in root.iter(SVG + "polyline")}
    assert classes == {"line series-0", "line series-1"}


def test_empty_charts_say_so():
    for svg in (line_chart([Series("x", [None, None])], ["1", "2"], title="t",
                           empty_text="Belum ada data"),
                bar_chart([], title="t", empty_text="Belum ada data"),
                histogram([], bin_minutes=15, title="t", empty_text="Belum ada data")):
        root = parse(svg)
        assert "chart-empty" in root.get("class")
        assert [t.text for t in root.iter(SVG + "text")] == ["Belum ada data"]


def test_bar_chart_rows_and_widths():
    svg = bar_chart([Bar("OPD-1 Dinas", 50.0), Bar("OPD-2 <b>", 100.0)], title="per unit")
    root = parse(svg)
    bars = root.findall(f".//{SVG}rect")
    assert [(b.get("data-label"), b.get("data-value")) for b in bars] == [
        ("OPD-1 Dinas", "50"), ("OPD-2 <b>", "100")]
    assert float(bars[1].get("width")) == pytest.approx(2 * float(bars[0].get("width")))
    assert int(root.get("viewBox").split()[3]) > 2 * 22  # grows with the number of rows


def test_histogram_columns():
    svg = histogram([(450, 2), (465, 0), (480, 5)], bin_minutes=15, title="Terlambat")
    root = parse(svg)
    columns = root.findall(f".//{SVG}rect")
    assert [(c.get("data-label"), c.get("data-value")) for c in columns] == [
        ("07:30", "2"), ("07:45", "0"), ("08:00", "5")]
    heights = [float(c.get("height")) for c in columns]
    assert heights[1] == 0 and heights[2] > heights[0] > 0
    assert re.search(r"07:30–07:45: 2", svg)


def test_no_inline_style_or_script():
    """The pages' Content-Security-Policy allows no inline style or script."""
    svgs = [line_chart([Series("a", [1, 2])], ["1", "2"], title="t"),
            bar_chart([Bar("a", 1)], title="t"),
            histogram([(0, 1)], bin_minutes=15, title="t")]
    for svg in svgs:
        assert "style=" not in svg and "<script" not in svg and "<style" not in svg


@pytest.mark.parametrize("milliseconds, shown", [
    (None, "–"), (0, "0 dtk"), (-300, "0 dtk"), (999, "0 dtk"), (1000, "+1 dtk"),
    (-1500, "−1 dtk"), (-600_000, "−10 mnt"), (7_200_000, "+2 jam"),
])
def test_clock_offsets_have_a_sign_only_when_they_are_not_zero(milliseconds, shown):
    from server.web.views import Formats

    assert Formats("id").offset(milliseconds) == shown
