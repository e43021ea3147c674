"""The dashboard's HTML helpers escape everything that is not their own markup."""

from __future__ import annotations

from marketplace.ui.html import Html, esc, page, table, tag


def test_strings_are_escaped_and_own_markup_passes() -> None:
    evil = '<img src=x onerror="alert(1)">'
    assert "<img" not in tag("td", evil)
    assert "<img" not in tag("a", "x", href=evil)  # attributes too
    assert tag("td", Html("<b>ok</b>")) == "<td><b>ok</b></td>"
    assert esc(None) == "&ndash;" and esc(0.123456) == "0.1235"


def test_tables_and_pages() -> None:
    empty = table(("a", "b"), [])
    assert "none yet" in empty and 'colspan="2"' in empty
    full = table(("a",), [("<x>",)], id="t")
    assert 'id="t"' in full and "&lt;x&gt;" in full
    assert 'http-equiv="refresh" content="9"' in page("p", Html(""), refresh_s=9)
    html = page("<t>", Html(""))
    assert "refresh" not in html and "<title>&lt;t&gt;" in html and "<script" not in html
