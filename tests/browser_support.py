"""What every browser test shares: the built book served on localhost, one
Chromium for the session, a ``Tab`` that blocks and counts outside requests, and
the ``Book`` that visits each page of the toc once.

The fixtures are registered for every test module by ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from book_toc import make_pdf, toc_entries

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000

# One set of outside hosts and of Chromium's flags for the tests and for
# scripts/make_pdf.py, which prints the book with the same browser. OUTSIDE_URL:
# any http(s) or websocket URL whose host is not the local server, matched inside
# the browser driver, so the book's own requests are not slowed down by a Python
# round trip.
OUTSIDE_URL = make_pdf.OUTSIDE_URL
CHROMIUM_ARGS = make_pdf.CHROMIUM_ARGS

# Console messages a reader may see without anything being wrong, each with its
# reason. Matched as substrings of the message text. Empty: every console error
# fails the page.
ALLOWED_CONSOLE_ERRORS: dict[str, str] = {}

# Alt text shorter than this many words does not describe a figure ("plot", "Figure
# 1").
MIN_FIGURE_ALT_WORDS = 4


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    """Skip locally; under CI a browser test that cannot run is a failure."""
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


def _toc_entries() -> list[str]:
    """Every page of the book, in the order of ``_toc.yml`` (root first), without
    suffix."""
    return [e.removesuffix(".ipynb").removesuffix(".md") for e in toc_entries()]


PAGES = _toc_entries()
CHAPTERS = [e for e in PAGES if (ROOT / f"{e}.ipynb").is_file()]


def _source_text(entry: str) -> str:
    """The markdown a page is written in (markdown cells only, for a notebook)."""
    nb = ROOT / f"{entry}.ipynb"
    if nb.is_file():
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        return "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
        )
    md = ROOT / f"{entry}.md"
    return md.read_text(encoding="utf-8") if md.is_file() else ""


def _source_has_math(entry: str) -> bool:
    # not code blocks
    text = re.sub(r"```(?!\{).*?```", "", _source_text(entry), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)  # nor inline code
    return bool(re.search(r"\$[^$\n]+\$|\$\$|\{math\}|\\begin\{", text))


def _expected_launch_urls(entry: str) -> dict[str, str]:
    """The URLs the launch buttons of a chapter page must carry, from
    ``_config.yml``."""
    repo = CONFIG["repository"]
    launch = CONFIG["launch_buttons"]
    url = repo["url"].rstrip("/")
    owner_repo = urlsplit(url).path.strip("/")
    branch = repo.get("branch", "master")
    notebook = posixpath.join(repo.get("path_to_book") or "", f"{entry}.ipynb")
    interface = {"jupyterlab": "lab/tree", "classic": "tree"}[
        launch["notebook_interface"]
    ]
    binder = launch["binderhub_url"].rstrip("/")
    return {
        "repository": url,
        "owner_repo": owner_repo,
        "branch": branch,
        "notebook": notebook,
        "binder": f"{binder}/v2/gh/{owner_repo}/{branch}"
        f"?urlpath={interface}/{notebook}",
        "kernel_path": "./" + posixpath.dirname(notebook)
        if posixpath.dirname(notebook)
        else ".",
    }


# ------------------------------------------------------------------------- fixtures


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def html_dir() -> Path:
    path = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()
    if not (path / "index.html").is_file():
        _unavailable(f"no built book at {path}: run `make build` first")
    return path


@pytest.fixture(scope="session")
def server(html_dir: Path):
    """The built book on http://127.0.0.1:<ephemeral port>/, as `make serve` serves
    it."""
    handler = partial(_QuietHandler, directory=str(html_dir))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (its own browser download fails here).

    ``launch`` gives the browser a fresh, temporary user-data-dir every session.
    """
    executable = (
        os.environ.get("CHROMIUM")
        or shutil.which("chromium")
        or "/usr/bin/chromium"
    )
    if not Path(executable).is_file():
        _unavailable(
            "no Chromium found (apt-get install chromium, or set $CHROMIUM)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except (
        ImportError
    ):  # pragma: no cover - playwright is pinned in requirements.txt
        _unavailable(
            "playwright is not installed (pip install -r requirements.txt)"
        )
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots(html_dir: Path) -> Path:
    out = html_dir.parent / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------- one visit per page


class _Ids(HTMLParser):
    """Collects every ``id`` and ``<a name>`` of a page: the anchors a link may
    target."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(
        self, tag: str, attrs: list[tuple[str, str | None]]
    ) -> None:
        for key, value in attrs:
            if value is not None and (
                key == "id" or (tag == "a" and key == "name")
            ):
                self.ids.add(value)


@dataclass
class Visit:
    """What a reader's browser met on one page."""

    entry: str
    url: str
    status: int | None = None
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed_local: list[str] = field(default_factory=list)
    mathjax: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    screenshot: Path | None = None
    solution: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Tab:
    """A browser context with every outside request blocked and counted."""

    def __init__(
        self, browser: Any, base: str, viewport: dict[str, int] | None = None
    ) -> None:
        self.base = base
        self.blocked: list[str] = []
        self.failed_local: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.context = browser.new_context(
            viewport=viewport or VIEWPORT, service_workers="block"
        )
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.route(OUTSIDE_URL, self._block)
        self.page = self.context.new_page()
        self.page.on("request", self._request)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        self.page.on("requestfailed", self._request_failed)
        self.page.on("response", self._response)

    def _block(self, route: Any) -> None:
        self.blocked.append(route.request.url)
        route.abort("blockedbyclient")

    def _request(self, request: Any) -> None:
        # A second count, of every request the page makes: one to an outside host
        # that the route above did not match would be counted here (and it would
        # have gone out).
        parts = urlsplit(request.url)
        if (
            parts.scheme not in {"data", "blob", "about"}
            and parts.hostname not in LOCAL_HOSTS
        ):
            if not OUTSIDE_URL.match(request.url):
                self.blocked.append(f"NOT BLOCKED: {request.url}")

    def _console(self, msg: Any) -> None:
        if msg.type == "error" and not any(
            a in msg.text for a in ALLOWED_CONSOLE_ERRORS
        ):
            self.console_errors.append(msg.text)

    def _is_local(self, url: str) -> bool:
        return urlsplit(url).hostname in LOCAL_HOSTS

    def _request_failed(self, request: Any) -> None:
        if self._is_local(request.url):
            self.failed_local.append(f"{request.url}: {request.failure}")

    def _response(self, response: Any) -> None:
        if self._is_local(response.url) and response.status >= 400:
            self.failed_local.append(f"{response.url}: HTTP {response.status}")

    def open(self, entry: str, *, idle: bool = False) -> tuple[int | None, str]:
        """Load a page as a reader does: (HTTP status, what happened to MathJax).

        The page is settled when MathJax has typeset it, its images have loaded and
        its fonts are ready. With ``idle=True`` it is then also left until the
        network has been quiet for 500 ms (Playwright's "networkidle"), so that
        every request the page makes is counted: tests of requests and bytes ask
        for it, tests of layout do not need it (it costs about 0.6 s a page)."""
        response = self.page.goto(self.base + f"{entry}.html", wait_until="load")
        mathjax = self.page.evaluate(_SETTLE_JS)
        if idle:
            self.page.wait_for_load_state("networkidle")
        return (response.status if response else None), mathjax

    def close(self) -> None:
        self.context.close()


# Waits until the book's MathJax has typeset the page, every image has loaded and
# the fonts are ready.
# Returns what happened to MathJax: "none" (no math on the page), "typeset", or
# "never started" (its script did not load; the math checks then fail with the
# reason).
_SETTLE_JS = """
async () => {
  let mathjax = "none";
  if (document.querySelector('script[src*="mathjax" i]')) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      if (Date.now() - t0 > 8000) break;
      await new Promise(r => setTimeout(r, 50));
    }
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      await MathJax.startup.promise;
      mathjax = "typeset";
    } else {
      mathjax = "never started";
    }
  }
  await Promise.all(Array.from(document.images).map(img => {
    img.loading = "eager";
    return img.complete ? null
      : new Promise(r => { img.onload = r; img.onerror = r; });
  }));
  await document.fonts.ready;
  return mathjax;
}
"""

# For the screenshot only, after every check of the page has run.
_UNSTICK_SIDEBARS_CSS = (
    ".bd-sidebar-primary, .bd-sidebar-secondary "
    "{ position: static !important; max-height: none !important; "
    "height: auto !important; }"
)

# Everything the checks need from the rendered page, in one pass over the DOM.
_FACTS_JS = r"""
() => {
  const article = document.querySelector("article.bd-article") || document.body;
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
  const texts = [];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.parentElement.closest(skip)) texts.push(node.textContent);
  }
  const mathEls = Array.from(article.querySelectorAll(".math"));
  const heads = Array.from(document.querySelectorAll("h1, h2, h3, h4, h5, h6"))
    // the page's own headings: not the sidebars, header, footer or the print-only
    // title
    .filter(h => !h.closest(
      ".bd-sidebar-primary, .bd-sidebar-secondary, .bd-header, footer, nav, "
      + ".onlyprint"))
    .map(h => [Number(h.tagName[1]), h.textContent.replace("#", "").trim()]);
  const precedes = (a, b) =>
    Boolean(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
  const explorerNote = el => /interactive explorer/i.test(
    (el.querySelector(".admonition-title") || {}).textContent || "");
  const notes = Array.from(article.querySelectorAll(".admonition"))
    .filter(explorerNote);
  const cells = Array.from(article.querySelectorAll("div.cell"));
  const explorers = cells
    .filter(c => /\b(explorer|interact|interactive)\(/.test(
      (c.querySelector(".cell_input pre") || {}).textContent || ""))
    .map(cell => {
      const before = notes.filter(n => precedes(n, cell));
      const note = before[before.length - 1];
      const cellBetween = note && cells.some(
        c => c !== cell && precedes(note, c) && precedes(c, cell));
      const section = cell.closest("section") || article;
      const figure = Array.from(section.querySelectorAll(".cell_output img"))
        .some(img => precedes(img, note || cell));
      return {
        code: (cell.querySelector(".cell_input pre") || {}).textContent
          .slice(0, 80),
        hasOutput: Boolean(cell.querySelector(".cell_output")),
        note: Boolean(note) && !cellBetween,
        noteMentionsLaunch: Boolean(note)
          && /binder|launch|run the notebook/i.test(note.textContent),
        staticFigureBefore: figure,
      };
    });
  const launch = document.querySelector(".dropdown-launch-buttons");
  const thebeConfig = document.querySelector('script[type="text/x-thebe-config"]');
  return {
    text: texts.join(""),
    mathElements: mathEls.length,
    mathUntypeset: mathEls.filter(m => !m.querySelector("mjx-container"))
      .map(m => m.textContent.slice(0, 80)),
    mjxContainers: document.querySelectorAll("mjx-container").length,
    mjxErrors: Array.from(document.querySelectorAll("mjx-merror, [data-mjx-error]"))
      .map(e => e.getAttribute("data-mjx-error") || e.textContent.slice(0, 80)),
    mathjaxVersion: window.MathJax && MathJax.version || null,
    images: Array.from(document.images).map(img => ({
      src: img.currentSrc || img.src,
      alt: img.getAttribute("alt"),
      naturalWidth: img.naturalWidth,
      inArticle: article.contains(img),
    })),
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
    headings: heads,
    widgetScripts: document.querySelectorAll(
      'script[type^="application/vnd.jupyter.widget"]').length,
    widgetElements: document.querySelectorAll(
      ".jupyter-widgets, .widget-area, .jupyter-widgets-view, "
      + ".widget-subarea").length,
    widgetReprs: Array.from(article.querySelectorAll(".cell_output"))
      .map(o => o.textContent)
      .filter(t => /\b(VBox|HBox|interactive)\(children=/.test(t)
        || /\b\w+Slider\(value=|Loading widget/.test(t))
      .map(t => t.slice(0, 80)),
    explorers: explorers,
    binder: launch
      ? Array.from(launch.querySelectorAll("a[href]")).map(a => a.href) : [],
    thebeButton: Boolean(document.querySelector(".btn-launch-thebe")),
    thebeConfig: thebeConfig ? thebeConfig.textContent : null,
    thebeJsUrl: typeof THEBE_JS_URL === "undefined" ? null : THEBE_JS_URL,
    download: Array.from(document.querySelectorAll("a.btn-download-source-button"))
      .map(a => a.href),
    repository: Array.from(
      document.querySelectorAll("a.btn-source-repository-button"))
      .map(a => a.href),
    colab: Array.from(
      document.querySelectorAll('a[href*="colab.research.google.com"]'))
      .map(a => a.href),
    exercises: Array.from(article.querySelectorAll(".exercise")).map(e =>
      ((e.querySelector(".caption-number")
        || e.querySelector(".admonition-title") || {})
        .textContent || "").trim()),
    solutions: article.querySelectorAll(".solution.dropdown").length,
  };
}
"""


class Book:
    """Visits each page once (cached), so that each check below is its own test."""

    def __init__(
        self, browser: Any, base: str, html_dir: Path, screenshots: Path
    ) -> None:
        self.browser = browser
        self.base = base
        self.html_dir = html_dir
        self.screenshots = screenshots
        self._visits: dict[str, Visit] = {}
        self._fetched: dict[str, tuple[int, bytes]] = {}
        self._anchors: dict[str, set[str]] = {}

    def visit(self, entry: str) -> Visit:
        """Open a page once; every later check of it reads what this visit
        recorded."""
        if entry not in self._visits:
            self._visits[entry] = self._visit(entry)
        visit = self._visits[entry]
        if visit.error:
            pytest.fail(f"{entry} could not be read in the browser: {visit.error}")
        return visit

    def _visit(self, entry: str) -> Visit:
        tab = Tab(self.browser, self.base)
        visit = Visit(entry=entry, url=self.base + f"{entry}.html")
        try:
            visit.status, visit.mathjax = tab.open(entry, idle=True)
            if visit.status != 200:
                raise FileNotFoundError(
                    f"{visit.url} answered HTTP {visit.status}: the page is in "
                    "_toc.yml but "
                    "not in the built book (rebuild it)"
                )
            visit.facts = tab.page.evaluate(_FACTS_JS)
            shot = self.screenshots / f"{entry.replace('/', '__')}.png"
            # A full-page capture clips the sticky sidebars to a sliver, which no
            # reader sees: the screenshot shows them whole at the top, as at the top
            # of the page.
            tab.page.add_style_tag(content=_UNSTICK_SIDEBARS_CSS)
            tab.page.screenshot(
                path=str(shot), full_page=True, animations="disabled"
            )
            visit.screenshot = shot
            # after the screenshot: every solution closed there
            if visit.facts["solutions"]:
                visit.solution = _open_first_solution(tab)
        # recorded once, reported by every check of the page
        except Exception as exc:
            visit.error = f"{type(exc).__name__}: {exc}"
        finally:
            visit.console_errors = list(tab.console_errors)
            visit.page_errors = list(tab.page_errors)
            visit.blocked = list(tab.blocked)
            visit.failed_local = list(tab.failed_local)
            tab.close()
        return visit

    def fetch(self, url: str) -> tuple[int, bytes]:
        """GET a URL of the local server (cached): (status, body)."""
        if url not in self._fetched:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    self._fetched[url] = (response.status, response.read())
            except urllib.error.HTTPError as err:
                self._fetched[url] = (err.code, b"")
        return self._fetched[url]

    def anchors(self, url: str) -> set[str]:
        """The ids a link to ``url#id`` may target (cached)."""
        if url not in self._anchors:
            parser = _Ids()
            parser.feed(self.fetch(url)[1].decode("utf-8", errors="replace"))
            self._anchors[url] = parser.ids
        return self._anchors[url]


def _open_first_solution(tab: Tab) -> dict[str, Any]:
    """Click the title of the page's first solution dropdown, as a reader does."""
    errors_before = len(tab.console_errors) + len(tab.page_errors)
    blocked_before = len(tab.blocked)
    solution = tab.page.locator(".solution.dropdown").first
    body = solution.locator("section").first
    solution.scroll_into_view_if_needed()
    hidden_before = not body.is_visible()
    solution.locator(".admonition-title").first.click()
    try:
        body.wait_for(state="visible", timeout=5_000)
    except Exception:  # reported below as "did not open"
        pass
    box = body.bounding_box() if body.is_visible() else None
    return {
        "hiddenBefore": hidden_before,
        "visibleAfter": body.is_visible(),
        "height": box["height"] if box else 0.0,
        "errors": (tab.console_errors + tab.page_errors)[errors_before:]
        if errors_before < len(tab.console_errors) + len(tab.page_errors)
        else [],
        "blocked": tab.blocked[blocked_before:],
    }


@pytest.fixture(scope="session")
def book(browser: Any, server: str, html_dir: Path, screenshots: Path) -> Book:
    return Book(browser, server, html_dir, screenshots)
