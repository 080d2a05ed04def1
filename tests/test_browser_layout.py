"""The book's layout on a desktop and on a phone, in light and dark mode.

Every page of the toc, as a reader meets it:

- at desktop width (1280 px) no code cell, input or printed output, scrolls
  sideways: 84 characters, the notebooks' line length, fit the column;
- every figure has at least 1.5 image pixels per displayed pixel (sharp on a 2x
  screen);
- in dark mode a figure is not a white slab: it is shown dark, like the page;
- on a 390 px phone the page is no wider than the phone, whatever scrolls sideways
  inside its own box (a table, an equation, a code line) shows a cue that it does,
  and the menu opens and lists every page of the book.

Run with the other browser tests (``make browser``).
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from browser_support import PAGES, PHONE, VIEWPORT, Book, Tab

pytestmark = pytest.mark.browser

# Image pixels per CSS pixel below which a figure looks soft on a 2x screen.
MIN_PIXEL_DENSITY = 1.5
# Mean luminance (0 black .. 1 white) a figure may have in dark mode; the page
# itself is about 0.01, a white slab about 0.9.
MAX_DARK_FIGURE_LUMINANCE = 0.3

_DESKTOP_JS = """() => {
  const article = document.querySelector("article.bd-article");
  const pres = Array.from(article.querySelectorAll("pre"))
    .filter(p => p.scrollWidth > p.clientWidth + 1)
    .map(p => {
      const lines = p.textContent.split("\\n");
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
      return [p.scrollWidth, p.clientWidth, longest.length, longest.slice(0, 90)];
    });
  const figures = Array.from(article.querySelectorAll(".cell_output img"))
    .map(img => [img.getAttribute("src"), img.naturalWidth,
                 img.getBoundingClientRect().width]);
  return {pres, figures};
}"""

_PHONE_JS = """() => {
  const scrolls = el => {
    const s = getComputedStyle(el);
    return ["auto", "scroll"].includes(s.overflowX);
  };
  const clipped = el => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      if (p === document.body) return false;
      const s = getComputedStyle(p).overflowX;
      if (s !== "visible") return true;
    }
    return false;
  };
  const width = document.documentElement.clientWidth;
  const wide = Array.from(document.querySelectorAll("body *"))
    .filter(el => el.getBoundingClientRect().right > width + 1 && !clipped(el)
      && getComputedStyle(el).position !== "fixed"
      && el.getBoundingClientRect().width > 0)
    .map(el => el.tagName.toLowerCase() + "." + (el.className || "").toString()
      .split(" ")[0] + ": " + (el.textContent || "").trim().slice(0, 50));
  const article = document.querySelector("article.bd-article");
  const noCue = Array.from(article.querySelectorAll("*"))
    .filter(el => scrolls(el) && el.scrollWidth > el.clientWidth + 1)
    .filter(el => !getComputedStyle(el).backgroundImage.includes("radial-gradient"))
    .map(el => el.tagName.toLowerCase() + "." + (el.className || "").toString()
      .split(" ")[0] + ": " + (el.textContent || "").trim().slice(0, 50));
  return {scrollWidth: document.documentElement.scrollWidth, width, wide, noCue};
}"""


def _luminance(png: bytes) -> float:
    """Mean relative luminance (0..1) of a screenshot."""
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("L")
    return ImageStat.Stat(image).mean[0] / 255


class Layout:
    """What each page looks like at desktop and phone width (one visit each)."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self._facts: dict[str, dict[str, Any]] = {}

    def facts(self, entry: str) -> dict[str, Any]:
        if entry not in self._facts:
            self._facts[entry] = self._measure(entry)
        facts = self._facts[entry]
        if facts.get("error"):
            pytest.fail(f"{entry} could not be measured: {facts['error']}")
        return facts

    def _measure(self, entry: str) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        try:
            desktop = Tab(self.book.browser, self.book.base, viewport=VIEWPORT)
            try:
                desktop.open(entry)
                facts["desktop"] = desktop.page.evaluate(_DESKTOP_JS)
                desktop.page.evaluate(
                    "() => { document.documentElement.dataset.theme = 'dark'; }"
                )
                images = desktop.page.locator("article.bd-article .cell_output img")
                facts["dark"] = []
                for i in range(images.count()):
                    image = images.nth(i)
                    image.scroll_into_view_if_needed()
                    shot = image.screenshot(animations="disabled")
                    facts["dark"].append(
                        (image.get_attribute("src"), _luminance(shot))
                    )
            finally:
                desktop.close()
            phone = Tab(self.book.browser, self.book.base, viewport=PHONE)
            try:
                phone.open(entry)
                facts["phone"] = phone.page.evaluate(_PHONE_JS)
                phone.page.locator("button.primary-toggle").click()
                phone.page.wait_for_function(
                    "() => document.querySelector("
                    "'dialog#pst-primary-sidebar-modal').open",
                    timeout=5_000,
                )
                facts["menu"] = phone.page.evaluate(
                    """() => Array.from(document.querySelectorAll(
                        'dialog#pst-primary-sidebar-modal nav a[href]'))
                        .filter(a => a.getClientRects().length > 0)
                        .map(a => a.href)"""
                )
            finally:
                phone.close()
        except Exception as exc:  # reported by every check of the page
            facts["error"] = f"{type(exc).__name__}: {exc}"
        return facts


@pytest.fixture(scope="module")
def layout(book: Book) -> Layout:
    return Layout(book)


@pytest.mark.parametrize("entry", PAGES)
def test_no_code_cell_scrolls_sideways_at_desktop_width(layout: Layout, entry: str):
    wide = layout.facts(entry)["desktop"]["pres"]
    assert not wide, (
        f"{entry}: {len(wide)} code block(s) wider than the column at "
        f"{VIEWPORT['width']} px (scrollWidth, clientWidth, longest line length, "
        f"line): {wide[:5]}"
    )


@pytest.mark.parametrize("entry", PAGES)
def test_figures_are_sharp_on_a_2x_screen(layout: Layout, entry: str):
    soft = [
        (src, natural, round(shown))
        for src, natural, shown in layout.facts(entry)["desktop"]["figures"]
        if shown > 0 and natural / shown < MIN_PIXEL_DENSITY
    ]
    assert not soft, (
        f"{entry}: figures with fewer than {MIN_PIXEL_DENSITY} image pixels per "
        f"displayed pixel (src, natural width, displayed width): {soft}"
    )


@pytest.mark.parametrize("entry", PAGES)
def test_figures_are_dark_in_dark_mode(layout: Layout, entry: str):
    bright = [
        (src, round(lum, 2))
        for src, lum in layout.facts(entry)["dark"]
        if lum > MAX_DARK_FIGURE_LUMINANCE
    ]
    assert not bright, (
        f"{entry}: figures brighter than {MAX_DARK_FIGURE_LUMINANCE} (mean "
        f"luminance) on the dark page: {bright}"
    )


@pytest.mark.parametrize("entry", PAGES)
def test_no_page_is_wider_than_a_phone(layout: Layout, entry: str):
    phone = layout.facts(entry)["phone"]
    assert phone["scrollWidth"] <= PHONE["width"], (
        f"{entry} is {phone['scrollWidth']} px wide on a {PHONE['width']} px phone"
    )
    assert not phone["wide"], (
        f"{entry}: elements reaching past the phone's edge: {phone['wide'][:5]}"
    )


@pytest.mark.parametrize("entry", PAGES)
def test_what_scrolls_sideways_on_a_phone_shows_a_cue(layout: Layout, entry: str):
    missing = layout.facts(entry)["phone"]["noCue"]
    assert not missing, (
        f"{entry}: boxes that scroll sideways on a phone without a scroll cue: "
        f"{missing[:5]}"
    )


@pytest.mark.parametrize("entry", PAGES)
def test_the_phone_menu_lists_every_page(layout: Layout, book: Book, entry: str):
    listed = {
        href.split("#")[0].removeprefix(book.base).removesuffix(".html")
        for href in layout.facts(entry)["menu"]
    }
    missing = [page for page in PAGES if page not in listed]
    assert not missing, (
        f"{entry}: the phone menu does not list {missing} "
        f"(it lists {sorted(listed)})"
    )
