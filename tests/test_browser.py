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
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
import yaml
from book_toc import toc_entries

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Any http(s) or websocket URL whose host is not the local server: matched inside
# the browser driver, so the book's own requests are not slowed down by a Python
# round trip.
OUTSIDE_URL = re.compile(
    r"^(https?|wss?)://(?!(127\.0\.0\.1|localhost)[:/])", re.IGNORECASE
)
VIEWPORT = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

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

    def open(self, entry: str) -> tuple[int | None, str]:
        """Load a page as a reader does: (HTTP status, what happened to MathJax)."""
        response = self.page.goto(self.base + f"{entry}.html", wait_until="load")
        self.page.wait_for_load_state("networkidle")
        mathjax = self.page.evaluate(_SETTLE_JS)
        return (response.status if response else None), mathjax

    def close(self) -> None:
        self.context.close()


# Waits until the book's MathJax has typeset the page and every image has loaded.
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
            visit.status, visit.mathjax = tab.open(entry)
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
        tab.open(entry)
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
