"""The dRAG sources page: every registered source, its reputation now and over time."""

from __future__ import annotations

from collections.abc import Sequence

from marketplace.chain.registry import SCALE
from marketplace.ui.html import Html, join, table, tag
from marketplace.ui.svg import Series, line_chart
from marketplace.views.sources import SourceHistory


def source_label(source: SourceHistory) -> str:
    return f"source {source.source_id}"


def _state(source: SourceHistory) -> Html:
    if source.slashed:
        return tag("span", "slashed (equivocated)", class_="bad")
    return tag("span", "active", class_="good") if source.active else tag("span", "inactive")


def reliability_chart(sources: Sequence[SourceHistory]) -> Html:
    """Reliability (Beta(1, 1) posterior mean) of each source after each feedback block.

    Each line starts at the registry's prior, 0.5, at the block before its first feedback,
    so a source with one update still draws a segment.
    """
    series = []
    for s in sources:
        if not s.points:
            continue
        points = [(float(s.points[0].block - 1), 0.5)]
        points += [(float(p.block), p.reliability) for p in s.points]
        series.append(Series(source_label(s), points))
    return Html(
        line_chart(
            series,
            title="Source reliability over time (from SourceRegistry feedback events)",
            x_label="block",
            y_label="reliability",
            y_range=(0.0, 1.0),
            x_integer=True,
        )
    )


def sources_body(sources: Sequence[SourceHistory]) -> Html:
    rows = [
        (
            s.source_id,
            tag("span", s.endpoint, class_="mono"),
            tag("span", s.owner, class_="mono"),
            _state(s),
            Html(f"{s.reliability:.3f}"),
            Html(f"{s.alpha / SCALE:g} / {s.beta / SCALE:g}"),
            Html(f"{s.usefulness / SCALE:g}"),
            len(s.points),
            "complete" if s.complete else tag("span", "log incomplete", class_="bad"),
        )
        for s in sources
    ]
    headers = (
        "id",
        "endpoint",
        "owner",
        "state",
        "reliability",
        "evidence + / -",
        "usefulness",
        "feedback txs",
        "history",
    )
    return join(
        [
            tag(
                "p",
                "Reliability is the posterior mean of each source's Beta reputation "
                "(prior Beta(1, 1)); evidence is counted in queries.",
                class_="muted",
            ),
            table(headers, rows, id="sources"),
            reliability_chart(sources),
        ]
    )
