"""The few HTML building blocks every dashboard page uses, escaping by default.

Everything shown comes from the chain or the content store, which anyone can write to: a
source's endpoint, a project's exclusion reason, a CID. So a plain ``str`` is always
escaped; only :class:`Html` (markup this package built) passes through. Pages carry no
script, and the server's Content-Security-Policy forbids any, so even a slip here could
not run code in the reader's browser.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape


class Html(str):
    """Markup built by this package: inserted as is (every other ``str`` is escaped)."""


Cell = str | int | float | Html | None


def esc(value: Cell) -> Html:
    """``value`` as markup: escaped unless it already is :class:`Html`; None is a dash."""
    if value is None:
        return Html("&ndash;")
    if isinstance(value, Html):
        return value
    if isinstance(value, float):
        return Html(f"{value:.4g}")
    return Html(escape(str(value)))


def tag(name: str, content: Cell = "", **attrs: str) -> Html:
    """``<name attrs>content</name>``; attribute names use ``_`` for ``-`` (``class_`` ok)."""
    rendered = "".join(
        f' {key.rstrip("_").replace("_", "-")}="{escape(value)}"' for key, value in attrs.items()
    )
    return Html(f"<{name}{rendered}>{esc(content)}</{name}>")


def join(parts: Iterable[Cell], sep: str = "") -> Html:
    return Html(escape(sep).join(esc(p) for p in parts))


def link(href: str, text: Cell) -> Html:
    return tag("a", text, href=href)


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], **attrs: str) -> Html:
    """A table; an empty one says so in a single row instead of showing only headers."""
    head = join(tag("th", h) for h in headers)
    body = [join(tag("td", c) for c in row) for row in rows]
    if not body:
        body = [Html(f'<td colspan="{len(headers)}" class="empty">none yet</td>')]
    rows_html = join(tag("tr", r) for r in body)
    return tag("table", Html(f"<thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody>"), **attrs)


def page(title: str, body: Html, refresh_s: int = 0) -> Html:
    """A whole page: header with navigation, ``body``, the stylesheet, an optional
    meta refresh (a live view without script)."""
    meta = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s > 0 else ""
    nav = join([link("/", "Projects"), link("/sources", "dRAG sources")], " · ")
    return Html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)} · LedgerLearn</title>{meta}"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/dashboard.css"></head><body>'
        f'<header><span class="brand">LedgerLearn</span><nav>{nav}</nav>'
        '<span class="note">read-only · chain and content store only</span></header>'
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )


STYLESHEET = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #171717; background: #fff; }
header { display: flex; gap: 24px; align-items: baseline; padding: 10px 24px;
         background: #0f172a; color: #e2e8f0; }
header a { color: #93c5fd; }
.brand { font-weight: bold; font-size: 16px; }
.note { margin-left: auto; font-size: 12px; color: #94a3b8; }
main { padding: 8px 24px 40px; max-width: 1200px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: #f5f5f5; font-weight: 600; }
td.empty { color: #737373; font-style: italic; }
.mono { font-family: ui-monospace, monospace; font-size: 12px; }
.bad { color: #b91c1c; } .good { color: #15803d; } .muted { color: #737373; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dl.facts dt { color: #525252; } dl.facts dd { margin: 0; }
.chart { display: block; margin: 8px 0; }
"""
