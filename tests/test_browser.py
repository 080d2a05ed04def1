"""The built book as a reader meets it, in a real browser.

Serves the HTML of the built book (``_build/html``, or ``$BOOK_HTML``) on an
ephemeral localhost port, opens every page listed in ``_toc.yml`` in headless
Chromium (Debian's ``/usr/bin/chromium`` through Playwright's ``executable_path``,
or ``$CHROMIUM``) and checks what a reader would notice:

- the page loads, with no console errors, no uncaught exceptions and no failed
  request;
- every request to a host other than localhost is blocked and counted: the count is
  0;
- every math element is typeset by the book's own MathJax, and no raw TeX is left;
- every image has loaded and has alt text that describes it;
- every link to the book itself resolves, anchors included;
- one ``#`` title per page and headings that do not skip a level;
- no widget controls without a kernel: each explorer has a static figure before it
  and a "launch to interact" note in its place;
- chapter pages: Binder (JupyterLab) and live-code (thebe) launch buttons pointing
  at the repository, branch and notebook of ``_config.yml``, and a download of the
  notebook;
- exercises are numbered and a solution opens when its dropdown is clicked.

A full-page screenshot of each page is written to ``_build/screenshots/`` for people
to look at. Run these tests alone with ``make browser`` (after ``make build``).

Without a browser or a built book the tests skip locally; under CI (``CI=true``)
they fail.
"""

from __future__ import annotations

import json
import posixpath
import re
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
from browser_support import (
    CHAPTERS,
    CONFIG,
    LOCAL_HOSTS,
    MIN_FIGURE_ALT_WORDS,
    PAGES,
    PHONE,
    ROOT,
    Book,
    Tab,
    _expected_launch_urls,
    _source_has_math,
)

pytestmark = pytest.mark.browser

# --------------------------------------------------------------------------- checks


def test_the_toc_lists_pages():
    assert len(PAGES) >= 2, f"_toc.yml lists too few pages: {PAGES}"
    assert CHAPTERS, "no chapter notebook is listed in _toc.yml"


@pytest.mark.parametrize("entry", PAGES)
def test_page_loads_without_errors(book: Book, entry: str):
    visit = book.visit(entry)
    assert visit.status == 200, f"{visit.url} answered HTTP {visit.status}"
    assert not visit.page_errors, (
        f"uncaught exceptions on {entry}: {visit.page_errors}"
    )
    assert not visit.console_errors, (
        f"console errors on {entry}: {visit.console_errors}"
    )
    assert not visit.failed_local, (
        f"requests to the book itself failed: {visit.failed_local}"
    )
    assert (
        visit.screenshot is not None and visit.screenshot.stat().st_size > 10_000
    ), f"no full-page screenshot of {entry}"


@pytest.mark.parametrize("entry", PAGES)
def test_page_requests_no_outside_host(book: Book, entry: str):
    visit = book.visit(entry)
    assert len(visit.blocked) == 0, (
        f"{entry} asked {len(visit.blocked)} outside host(s) while being read "
        f"(all blocked): {sorted(set(visit.blocked))}"
    )


@pytest.mark.parametrize("entry", PAGES)
def test_every_equation_is_typeset(book: Book, entry: str):
    visit = book.visit(entry)
    facts = visit.facts
    assert visit.mathjax != "never started", (
        f"{entry}: MathJax never started (blocked: {sorted(set(visit.blocked))})"
    )
    text = facts["text"]
    raw = []
    for pattern in (
        r"\$\$",
        r"\$[^$\n]{1,80}\$",
        r"\\\(",
        r"\\\[",
        r"\\begin\{",
        r"\\[a-zA-Z]{2,}",
    ):
        raw += [
            text[max(m.start() - 30, 0) : m.end() + 30]
            for m in re.finditer(pattern, text)
        ]
    assert not raw, f"raw TeX in the text of {entry}: {raw[:5]}"
    assert not facts["mathUntypeset"], (
        f"math left untypeset on {entry}: {facts['mathUntypeset']}"
    )
    assert not facts["mjxErrors"], (
        f"MathJax errors on {entry}: {facts['mjxErrors']}"
    )
    if _source_has_math(entry):
        assert facts["mathElements"] > 0, (
            f"{entry}'s source has math but the page has none"
        )
        assert facts["mjxContainers"] >= facts["mathElements"], (
            f"{entry}: {facts['mathElements']} math elements, "
            f"{facts['mjxContainers']} typeset (MathJax {facts['mathjaxVersion']})"
        )


@pytest.mark.parametrize("entry", PAGES)
def test_every_image_loads_and_has_alt_text(book: Book, entry: str):
    images = book.visit(entry).facts["images"]
    broken = [img["src"] for img in images if not img["naturalWidth"] > 0]
    assert not broken, f"images that did not load on {entry}: {broken}"
    no_alt = [img["src"] for img in images if not (img["alt"] or "").strip()]
    assert not no_alt, f"images without alt text on {entry}: {no_alt}"
    for img in images:
        alt = img["alt"].strip()
        name = posixpath.basename(urlsplit(img["src"]).path)
        assert alt not in img["src"] and alt != name, (
            f"{entry}: the alt text of {name} is its file name; give the figure "
            "cell "
            '{"mystnb": {"image": {"alt": "..."}}} metadata'
        )
        if img["inArticle"]:
            assert len(alt.split()) >= MIN_FIGURE_ALT_WORDS, (
                f"{entry}: alt text {alt!r} does not describe what {name} shows"
            )


@pytest.mark.parametrize("entry", PAGES)
def test_every_internal_link_and_anchor_resolves(book: Book, entry: str):
    visit = book.visit(entry)
    local = [u for u in visit.facts["links"] if urlsplit(u).hostname in LOCAL_HOSTS]
    assert local, f"{entry} has no links to the rest of the book"
    broken = []
    for url in sorted(set(local)):
        page, fragment = urldefrag(url)
        status, _ = book.fetch(page)
        if status != 200:
            broken.append(f"{url} (HTTP {status})")
        elif fragment and unquote(fragment) not in book.anchors(page):
            broken.append(f"{url} (no element with id {unquote(fragment)!r})")
    assert not broken, f"broken internal links on {entry}: {broken}"


@pytest.mark.parametrize("entry", PAGES)
def test_one_title_and_headings_in_order(book: Book, entry: str):
    headings = book.visit(entry).facts["headings"]
    levels = [level for level, _ in headings]
    assert levels.count(1) == 1, (
        f"{entry} has {levels.count(1)} h1 titles: {headings}"
    )
    assert levels[0] == 1, (
        f"{entry} does not start with its # title: {headings[:3]}"
    )
    skips = [
        f"{headings[i - 1][1]!r} (h{levels[i - 1]}) -> {headings[i][1]!r} "
        f"(h{levels[i]})"
        for i in range(1, len(levels))
        if levels[i] > levels[i - 1] + 1
    ]
    assert not skips, f"headings skip a level on {entry}: {skips}"


@pytest.mark.parametrize("entry", PAGES)
def test_no_dead_widget_controls(book: Book, entry: str):
    facts = book.visit(entry).facts
    assert facts["widgetScripts"] == 0, (
        f"{entry} embeds widget views that need a kernel"
    )
    assert facts["widgetElements"] == 0, (
        f"{entry} shows widget controls without a kernel"
    )
    assert not facts["widgetReprs"], (
        f"{entry} prints widget reprs: {facts['widgetReprs']}"
    )
    for explorer in facts["explorers"]:
        where = f"{entry}, explorer {explorer['code']!r}"
        assert not explorer["hasOutput"], f"{where}: tag the cell remove-output"
        assert explorer["note"], (
            f"{where}: no 'Interactive explorer' note just before it"
        )
        assert explorer["noteMentionsLaunch"], (
            f"{where}: the note does not say how to launch"
        )
        assert explorer["staticFigureBefore"], (
            f"{where}: no static figure of the same thing before it in its section "
            "(CONTRIBUTING.md: the figure, then the note, then the explorer)"
        )


@pytest.mark.parametrize("entry", CHAPTERS)
def test_launch_and_download_buttons(book: Book, entry: str):
    facts = book.visit(entry).facts
    want = _expected_launch_urls(entry)
    assert want["binder"] in facts["binder"], (
        f"{entry}: no Binder (JupyterLab) button to {want['binder']}; found "
        f"{facts['binder']}"
    )
    assert facts["thebeButton"], f"{entry}: no live-code (thebe) button"
    config = facts["thebeConfig"] or ""
    assert f'repo: "{want["owner_repo"]}"' in config, (
        f"{entry}: thebe repo wrong: {config}"
    )
    assert f'ref: "{want["branch"]}"' in config, (
        f"{entry}: thebe branch wrong: {config}"
    )
    assert f'path: "{want["kernel_path"]}"' in config, (
        f"{entry}: thebe path wrong: {config}"
    )
    assert facts["repository"] == [want["repository"]], facts["repository"]
    if CONFIG["launch_buttons"].get("colab_url"):
        assert facts["colab"], (
            f"{entry}: colab_url is set but there is no Colab button"
        )
    else:
        assert not facts["colab"], (
            f"{entry}: a Colab button, but Colab is not supported"
        )
    downloads = [
        u for u in facts["download"] if u.endswith(f"_sources/{entry}.ipynb")
    ]
    assert downloads, (
        f"{entry}: no .ipynb download button; found {facts['download']}"
    )
    status, body = book.fetch(downloads[0])
    assert status == 200, f"{downloads[0]} answered HTTP {status}"
    served = json.loads(body)
    source = json.loads((ROOT / f"{entry}.ipynb").read_text(encoding="utf-8"))
    assert [c["source"] for c in served["cells"]] == [
        c["source"] for c in source["cells"]
    ], f"{entry}: the downloadable notebook is not the one in the repository"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_chapter_has_numbered_exercises_with_solutions(book: Book, entry: str):
    facts = book.visit(entry).facts
    assert facts["exercises"], f"{entry} has no exercise"
    unnumbered = [
        t for t in facts["exercises"] if not re.match(r"Exercise \d+(\.\d+)*", t)
    ]
    assert not unnumbered, f"{entry}: exercises without a number: {unnumbered}"
    assert facts["solutions"] >= 1, f"{entry}: no solution in a dropdown"


@pytest.mark.parametrize("entry", CHAPTERS)
def test_a_solution_opens_when_its_dropdown_is_clicked(book: Book, entry: str):
    visit = book.visit(entry)
    if not visit.facts["solutions"]:
        pytest.fail(f"{entry} has no solution dropdown to open")
    opened = visit.solution
    assert opened["hiddenBefore"], (
        f"{entry}: the first solution is open before any click"
    )
    assert opened["visibleAfter"], (
        f"{entry}: the first solution did not open when clicked"
    )
    assert opened["height"] > 20, f"{entry}: the opened solution is empty"
    assert not opened["errors"], (
        f"{entry}: errors while opening a solution: {opened['errors']}"
    )
    assert not opened["blocked"], f"{entry}: opening a solution asked outside hosts"


def test_live_code_reaches_out_only_when_the_reader_asks(book: Book):
    """Live code (thebe) is the one feature that needs the network: only after a
    click."""
    entry = CHAPTERS[0]
    tab = Tab(book.browser, book.base)
    try:
        tab.open(entry, idle=True)
        assert not tab.blocked, (
            f"{entry} asked outside hosts before any click: {tab.blocked}"
        )
        thebe_js = tab.page.evaluate("THEBE_JS_URL")
        tab.page.locator(".dropdown-launch-buttons .dropdown-toggle").click()
        tab.page.locator(".btn-launch-thebe").click()
        tab.page.wait_for_function(
            "() => document.querySelector('.thebe-launch-button') !== null",
            timeout=5_000,
        )
        tab.page.wait_for_load_state("networkidle")
        assert tab.blocked == [thebe_js], (
            f"clicking Live Code should fetch thebe ({thebe_js}) and nothing else: "
            f"{tab.blocked}"
        )
        assert re.fullmatch(
            r"https://unpkg\.com/thebe@\d+\.\d+\.\d+/lib/index\.js", thebe_js
        ), f"thebe is not pinned to a version: {thebe_js}"
    finally:
        tab.close()


@pytest.mark.parametrize("side", ["primary", "secondary"])
def test_phone_menus_open_when_tapped(book: Book, side: str):
    """At phone width the header's menu and "Contents" buttons open their sidebars.

    pydata-sphinx-theme 0.17's persistent navbar search adds a second, hidden
    ``.primary-toggle`` and then neither dialog opens (its issue #2451); _config.yml
    turns the persistent search off.
    """
    entry = CHAPTERS[0]
    tab = Tab(book.browser, book.base, viewport=PHONE)
    try:
        tab.open(entry)
        toggles = tab.page.locator(f"button.{side}-toggle")
        shown = [i for i in range(toggles.count()) if toggles.nth(i).is_visible()]
        assert len(shown) == 1, f"{side} toggles visible at phone width: {shown}"
        assert toggles.count() == 1, f"{toggles.count()} {side} toggles in the page"
        dialog = tab.page.locator(f"dialog#pst-{side}-sidebar-modal")
        assert not dialog.evaluate("d => d.open")
        toggles.nth(shown[0]).click()
        tab.page.wait_for_function(
            f"() => document.querySelector('dialog#pst-{side}-sidebar-modal').open",
            timeout=5_000,
        )
        assert dialog.locator("a").count() > 0, "the sidebar opened empty"
        assert not tab.console_errors and not tab.page_errors
    finally:
        tab.close()


# WCAG 2.1 AA for normal text.
MIN_CONTRAST = 4.5
_CAPTION_CONTRAST_JS = """() => {
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lum = c => {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = el => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  return Array.from(document.querySelectorAll("caption")).map(cap => {
    const a = lum(rgb(getComputedStyle(cap).color)), b = lum(background(cap));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    return [cap.textContent.slice(0, 40), ratio];
  });
}"""


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("entry", CHAPTERS)
def test_table_captions_are_readable_in_both_modes(
    book: Book, entry: str, mode: str
):
    """Every table caption has at least WCAG AA contrast (4.5:1) against what is
    behind it, in light mode and after the reader switches to dark mode."""
    tab = Tab(book.browser, book.base)
    try:
        tab.open(entry)
        tab.page.evaluate(
            f"() => {{ document.documentElement.dataset.theme = '{mode}'; }}"
        )
        low = [
            (text, round(ratio, 2))
            for text, ratio in tab.page.evaluate(_CAPTION_CONTRAST_JS)
            if ratio < MIN_CONTRAST
        ]
        assert not low, (
            f"{entry}, {mode} mode: captions below {MIN_CONTRAST}:1: {low}"
        )
    finally:
        tab.close()
