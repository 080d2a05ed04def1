"""Every page of the built book printed on A4, in Chromium's print layout.

Each page of the toc is opened once with outside requests blocked, switched to
print media (``page.emulate_media``) at the width of an A4 page's text column
(the page less the margins of ``@page`` in ``book/_static/print.css``), and
checked for what a reader holding the paper would notice:

- no code block (input or output ``<pre>``) and no display equation is wider than
  its box: nothing is cut at the right margin;
- no table runs past the text column, and the page is no wider than the paper;
- the interface (header buttons, sidebars, launch and download buttons, search,
  previous/next) is not printed;
- solutions print open, and no "Click to hide" / "Click to show" label is printed;
- every code cell (input or output) that fits on one page is kept in one piece
  (``break-inside: avoid``), and every heading stays with what follows it
  (``break-after: avoid``), so that no printed page ends on the empty top of a
  code box or on a heading.

Without a browser or a built book the tests skip locally; under CI (``CI=true``)
they fail.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_support import CHAPTERS, PAGES, ROOT, Tab

pytestmark = pytest.mark.browser

PRINT_CSS = ROOT / "book" / "_static" / "print.css"
A4_WIDTH_MM = 210.0
A4_HEIGHT_MM = 297.0
CSS_PX_PER_MM = 96 / 25.4


def _page_margins_mm() -> tuple[float, float]:
    """print.css's ``@page`` margins (``margin: <vertical> <horizontal>`` in mm)."""
    css = PRINT_CSS.read_text(encoding="utf-8")
    page = re.search(r"@page\s*\{[^}]*?margin:\s*([\d.]+)mm\s+([\d.]+)mm", css)
    assert page, f"{PRINT_CSS} has no '@page {{ margin: Vmm Hmm }}' rule"
    return float(page.group(1)), float(page.group(2))


def _a4_column_px() -> int:
    """The width of the printed text column: A4 less the left and right margins."""
    return round((A4_WIDTH_MM - 2 * _page_margins_mm()[1]) * CSS_PX_PER_MM)


def _a4_height_px() -> int:
    """The height of a printed page's text: A4 less the top and bottom margins."""
    return round((A4_HEIGHT_MM - 2 * _page_margins_mm()[0]) * CSS_PX_PER_MM)


# What a reader cannot use on paper: each must be in the page (so that the check
# can fail) and must not be printed.
CHROME = {
    "header": ".bd-header",
    "article header buttons": ".bd-header-article",
    "left sidebar": ".bd-sidebar-primary",
    "previous/next": ".prev-next-area",
    "search button": ".search-button",
    "theme switch": ".theme-switch-button",
}
CHAPTER_CHROME = {
    "right sidebar (contents)": ".bd-sidebar-secondary",
    "launch buttons": ".dropdown-launch-buttons",
    "download button": ".btn-download-source-button",
    "solution toggle buttons": "button.toggle-button",
}

_PRINT_FACTS_JS = r"""
([chrome, pageHeight]) => {
  const shown = el => el.getClientRects().length > 0
    && getComputedStyle(el).visibility !== "hidden";
  const article = document.querySelector("article.bd-article") || document.body;
  const right = article.getBoundingClientRect().right;
  const cut = el => el.scrollWidth > el.clientWidth + 1;
  const describe = el => (el.textContent || "").trim().replace(/\s+/g, " ")
    .slice(0, 70);
  const hint = /Click to (hide|show)/i;
  const labels = [];
  for (const el of document.querySelectorAll("body *")) {
    if (!shown(el)) continue;
    const own = Array.from(el.childNodes)
      .filter(n => n.nodeType === Node.TEXT_NODE).map(n => n.textContent).join("");
    const before = getComputedStyle(el, "::before").content;
    const after = getComputedStyle(el, "::after").content;
    if (hint.test(own) || hint.test(before) || hint.test(after)) {
      labels.push(`${el.tagName.toLowerCase()}.${el.className}: `
        + (hint.test(own) ? own.trim() : before + after));
    }
  }
  const solutions = Array.from(article.querySelectorAll(".solution"));
  const cells = Array.from(
    article.querySelectorAll("div.cell_input, div.cell_output")).filter(shown);
  return {
    cellCount: cells.length,
    split: cells
      .filter(el => el.getBoundingClientRect().height < pageHeight)
      .filter(el => getComputedStyle(el).breakInside !== "avoid")
      .map(el => [describe(el), Math.round(el.getBoundingClientRect().height)]),
    headings: Array.from(article.querySelectorAll("h1, h2, h3, h4")).filter(shown)
      .filter(el => getComputedStyle(el).breakAfter !== "avoid").map(describe),
    innerWidth: window.innerWidth,
    pageWidth: document.documentElement.scrollWidth,
    pre: Array.from(article.querySelectorAll("pre")).filter(shown)
      .filter(cut).map(el => [describe(el), el.scrollWidth, el.clientWidth]),
    equations: Array.from(article.querySelectorAll('mjx-container[display="true"]'))
      .filter(shown)
      .filter(el => cut(el) || el.getBoundingClientRect().right > right + 1)
      .map(el => [describe(el), el.scrollWidth, el.clientWidth]),
    equationCount: article.querySelectorAll('mjx-container[display="true"]').length,
    tables: Array.from(article.querySelectorAll("table")).filter(shown)
      .filter(el => el.getBoundingClientRect().right > right + 1
        || cut(el.parentElement))
      .map(el => [describe(el), Math.round(el.getBoundingClientRect().right),
                  Math.round(right)]),
    chrome: Object.fromEntries(Object.entries(chrome).map(([name, sel]) => {
      const els = Array.from(document.querySelectorAll(sel));
      return [name, {present: els.length, printed: els.filter(shown).length}];
    })),
    labels: labels,
    solutions: solutions.map(s => {
      const body = Array.from(s.children)
        .filter(c => !c.classList.contains("admonition-title"));
      const height = body.reduce((h, c) => h + c.getBoundingClientRect().height, 0);
      return {
        id: s.id,
        shown: body.length > 0 && body.every(shown)
          && body.every(c => Number(getComputedStyle(c).opacity) > 0),
        height: height,
      };
    }),
  };
}
"""

# After the switch to print media, MathJax's equations are fitted by print-fit.js
# on the next rendering frame (a media query's change event is dispatched then).
_NEXT_FRAMES_JS = (
    "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
)

_printed: dict[str, dict[str, Any]] = {}


def _print_facts(book: Any, entry: str) -> dict[str, Any]:
    """Open a page once at A4 column width under print media: what would print."""
    if entry not in _printed:
        chrome = dict(CHROME, **(CHAPTER_CHROME if entry in CHAPTERS else {}))
        tab = Tab(
            book.browser,
            book.base,
            viewport={"width": _a4_column_px(), "height": 1100},
        )
        try:
            status, mathjax = tab.open(entry)
            assert status == 200, f"{entry} answered HTTP {status}"
            tab.page.emulate_media(media="print")
            tab.page.evaluate(_NEXT_FRAMES_JS)
            facts = tab.page.evaluate(_PRINT_FACTS_JS, [chrome, _a4_height_px()])
            facts["mathjax"] = mathjax
            facts["errors"] = tab.console_errors + tab.page_errors
            facts["blocked"] = list(tab.blocked)
        finally:
            tab.close()
        _printed[entry] = facts
    return _printed[entry]


def _found(entry: str, facts: dict[str, Any]):
    """``found(key, what)`` fails, naming ``what`` and the first five, when the
    page's printed ``facts[key]`` lists anything."""

    def found(key: str, what: str) -> None:
        assert not facts[key], f"{entry}: {what}: {facts[key][:5]}"

    return found


@pytest.mark.parametrize("entry", PAGES)
def test_printed_code_and_math_are_not_cut_off(book: Any, entry: str):
    facts = _print_facts(book, entry)
    assert facts["innerWidth"] == _a4_column_px()
    assert not facts["errors"], f"{entry}: errors while printing: {facts['errors']}"
    assert not facts["blocked"], f"{entry}: outside requests: {facts['blocked']}"
    found = _found(entry, facts)
    found("pre", "code blocks cut at the right margin (text, scrollWidth, width)")
    found("equations", "display equations wider than the A4 column (text, ...)")
    found("tables", "tables past the A4 column")
    assert facts["pageWidth"] <= facts["innerWidth"] + 1, (
        f"{entry}: the printed page is {facts['pageWidth']} px wide, the paper's "
        f"column {facts['innerWidth']} px"
    )


@pytest.mark.parametrize("entry", PAGES)
def test_code_cells_and_headings_are_kept_whole(book: Any, entry: str):
    facts = _print_facts(book, entry)
    if entry in CHAPTERS:
        assert facts["cellCount"] > 0, f"{entry}: no code cell found (selector?)"
    found = _found(entry, facts)
    found(
        "split", "code cells shorter than a page that a break may split (text, px)"
    )
    found("headings", "headings a page break may leave at the foot of a page")


@pytest.mark.parametrize("entry", PAGES)
def test_the_interface_is_not_printed(book: Any, entry: str):
    facts = _print_facts(book, entry)
    missing = [name for name, c in facts["chrome"].items() if not c["present"]]
    assert not missing, f"{entry}: no {missing} in the page (selector outdated?)"
    printed = [name for name, c in facts["chrome"].items() if c["printed"]]
    assert not printed, f"{entry}: the interface prints: {printed}"
    _found(entry, facts)("labels", "button labels print")


@pytest.mark.parametrize("entry", CHAPTERS)
def test_solutions_print_open(book: Any, entry: str):
    solutions = _print_facts(book, entry)["solutions"]
    assert solutions, f"{entry} has no solution"
    closed = [s["id"] for s in solutions if not s["shown"] or s["height"] < 20]
    assert not closed, f"{entry}: solutions that print closed or empty: {closed}"


def test_the_book_prints_display_math(book: Any):
    """The equation check above is not vacuous: the chapters have display math."""
    assert sum(_print_facts(book, e)["equationCount"] for e in CHAPTERS) > 0


def test_print_fit_assumes_the_column_of_print_css():
    """print-fit.js sizes equations for a print dialog from the same column."""
    js = (ROOT / "book" / "_static" / "print-fit.js").read_text(encoding="utf-8")
    found = re.search(r"PRINT_COLUMN_PX = (\d+);", js)
    assert found and int(found.group(1)) == _a4_column_px(), (
        f"print-fit.js's PRINT_COLUMN_PX is not print.css's A4 column "
        f"({_a4_column_px()} px)"
    )
