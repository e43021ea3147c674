"""The dashboard's inline SVG charts: the points drawn are the data given, in order, inside
the plot, and names from the chain cannot inject markup."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from marketplace.ui.svg import Series, _ticks, line_chart

NS = {"svg": "http://www.w3.org/2000/svg"}


def _points(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(".//svg:circle[@class='point']", NS)


def test_every_point_is_drawn_with_its_values_inside_the_plot() -> None:
    data = [(3.0, 0.9), (1.0, 0.5), (2.0, 0.75)]
    svg = line_chart([Series("acc", data)], title="t", x_label="round", y_label="accuracy",
                     y_range=(0.0, 1.0), width=400, height=200)  # fmt: skip
    points = _points(svg)
    drawn = [(float(p.get("data-x", "")), float(p.get("data-y", ""))) for p in points]
    assert drawn == sorted(data)
    xs = [float(p.get("cx", "")) for p in points]
    ys = [float(p.get("cy", "")) for p in points]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # higher accuracy is higher up
    assert all(0 < x < 400 for x in xs) and all(0 < y < 200 for y in ys)
    assert ET.fromstring(svg).find(".//svg:polyline", NS) is not None


def test_an_empty_chart_says_so_and_a_single_point_still_draws() -> None:
    empty = line_chart([], title="t", x_label="x", y_label="y")
    assert "no data yet" in empty and not _points(empty)
    one = line_chart([Series("s", [(5.0, 0.5)])], title="t", x_label="x", y_label="y")
    assert len(_points(one)) == 1


def test_hostile_series_names_and_titles_are_escaped() -> None:
    evil = '"><script>alert(1)</script>'
    svg = line_chart([Series(evil, [(1.0, 1.0)]), Series("b", [(1.0, 0.0)])],
                     title=evil, x_label=evil, y_label="y")  # fmt: skip
    assert "<script>" not in svg
    root = ET.fromstring(svg)  # still well-formed XML
    assert root.findall(".//svg:circle", NS)[0].get("data-series") == evil


def test_ticks_are_round_and_integer_axes_have_no_halves() -> None:
    assert _ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert _ticks(1.0, 3.0, 6, integer=True) == [1.0, 2.0, 3.0]
    assert all(t == int(t) for t in _ticks(7.0, 131.0, 6, integer=True))
