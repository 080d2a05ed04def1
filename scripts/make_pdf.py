"""`make pdf`: the whole book as one PDF, in the order of ``_toc.yml``.

Serves the built HTML (``_build/html``) on an ephemeral localhost port, has
Debian's Chromium (through Playwright) print each page of the toc on A4 with the
book's print stylesheet (``book/_static/print.css``), once MathJax has typeset the
page, and merges the pages with pypdf into ``_build/html/why-layernorm.pdf``,
published with the HTML and linked from the index page. One bookmark per page,
titled with the page's title.

Offline: every request to a host other than localhost is blocked, and any such
request fails the run (the book asks none; ``tests/test_browser.py`` checks it).
Without Chromium it builds nothing and says so; under CI (``CI=true``) that fails.

    python scripts/make_pdf.py [--html _build/html] [--out NAME.pdf]
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PDF_NAME = "why-layernorm.pdf"
OUTSIDE_URL = re.compile(
    r"^(https?|wss?)://(?!(127\.0\.0\.1|localhost)[:/])", re.IGNORECASE
)
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
TIMEOUT_MS = 30_000

# Waits until MathJax has typeset the page and every image has loaded (as the
# browser tests' _SETTLE_JS), then switches to print media and waits two frames, so
# that book/_static/print-fit.js has fitted the wide equations before printing.
_SETTLE_JS = """
async () => {
  if (document.querySelector('script[src*="mathjax" i]')) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
      if (Date.now() - t0 > 10000) throw new Error("MathJax never started");
      await new Promise(r => setTimeout(r, 50));
    }
    await MathJax.startup.promise;
  }
  await Promise.all(Array.from(document.images).map(img => {
    img.loading = "eager";
    return img.complete ? null
      : new Promise(r => { img.onload = r; img.onerror = r; });
  }));
  await document.fonts.ready;
}
"""
_NEXT_FRAMES_JS = (
    "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
)
_TITLE_JS = """() => {
  const h1 = document.querySelector("article.bd-article h1")
    || document.querySelector("h1");
  return (h1 ? h1.textContent : document.title).replace(/#\\s*$/, "").trim();
}"""


def a4_column_px() -> int:
    """The printed text column in CSS px: A4 (210 mm) less the left and right
    margins of print.css's ``@page { margin: <vertical>mm <horizontal>mm }``."""
    css = (ROOT / "book" / "_static" / "print.css").read_text(encoding="utf-8")
    page = re.search(r"@page\s*\{[^}]*?margin:\s*([\d.]+)mm\s+([\d.]+)mm", css)
    if not page:
        sys.exit("make_pdf: print.css has no '@page { margin: Vmm Hmm }' rule")
    return round((210.0 - 2 * float(page.group(2))) * 96 / 25.4)


def toc_entries() -> list[str]:
    """Every ``file`` entry of ``_toc.yml``, root first, in reading order, as
    written: the one reader of the toc (``tests/book_toc.py`` loads it from
    here)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    entries = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                entries.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc.get("parts", toc.get("chapters", [])))
    return entries


def toc_pages() -> list[str]:
    """Every page of ``_toc.yml``, root first, in reading order, without suffix."""
    return [e.removesuffix(".ipynb").removesuffix(".md") for e in toc_entries()]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _chromium() -> str | None:
    path = (
        os.environ.get("CHROMIUM")
        or shutil.which("chromium")
        or "/usr/bin/chromium"
    )
    return path if Path(path).is_file() else None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def print_pages(html: Path, pages: list[str]) -> list[tuple[str, bytes]]:
    """(title, PDF bytes) of each page, printed by Chromium on A4."""
    from playwright.sync_api import sync_playwright

    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_QuietHandler, directory=str(html))
    )
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    blocked: list[str] = []
    printed = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=_chromium(), args=CHROMIUM_ARGS
            )
            # The viewport is the printed column, so that what print-fit.js measures
            # before printing is what prints.
            context = browser.new_context(
                viewport={"width": a4_column_px(), "height": 1000},
                service_workers="block",
            )
            context.set_default_timeout(TIMEOUT_MS)

            def block(route: Any) -> None:
                blocked.append(route.request.url)
                route.abort("blockedbyclient")

            context.route(OUTSIDE_URL, block)

            # Two pages in flight: the next one loads while this one prints.
            def start(entry: str) -> tuple[Any, Any]:
                tab = context.new_page()
                return tab, tab.goto(base + f"{entry}.html", wait_until="commit")

            upcoming = start(pages[0])
            for i, entry in enumerate(pages):
                tab, response = upcoming
                if i + 1 < len(pages):
                    upcoming = start(pages[i + 1])
                if response is None or response.status != 200:
                    status = response.status if response else None
                    raise SystemExit(
                        f"make_pdf: {entry}.html answered HTTP {status}"
                    )
                tab.wait_for_load_state("load")
                tab.evaluate(_SETTLE_JS)
                tab.emulate_media(media="print")
                tab.evaluate(_NEXT_FRAMES_JS)
                title = tab.evaluate(_TITLE_JS)
                pdf = tab.pdf(
                    format="A4",
                    print_background=True,
                    prefer_css_page_size=True,
                    outline=True,
                )
                printed.append((title, pdf))
                tab.close()
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    if blocked:
        raise SystemExit(
            "make_pdf: the pages asked outside hosts (blocked): "
            f"{sorted(set(blocked))}"
        )
    return printed


def merge(printed: list[tuple[str, bytes]], out: Path) -> int:
    """One PDF of every page, a bookmark per page; returns the number of sheets."""
    from pypdf import PdfReader, PdfWriter

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    writer = PdfWriter()
    for title, pdf in printed:
        # The page's own headings (Chromium's outline) nest under its title.
        writer.append(PdfReader(io.BytesIO(pdf)), outline_item=title)
    writer.add_metadata(
        {"/Title": config.get("title", ""), "/Author": config.get("author", "")}
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".pdf.tmp")
    with tmp.open("wb") as f:
        writer.write(f)
    tmp.replace(out)
    return len(writer.pages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--out", type=Path, help=f"default: <html>/{PDF_NAME}")
    args = parser.parse_args(argv)
    html = args.html.resolve()
    if not (html / "index.html").is_file():
        sys.exit(f"make_pdf: no built book at {html}: run `make build` first")
    out = (args.out or html / PDF_NAME).resolve()
    if _chromium() is None:
        # As the browser tests: without a browser, skip locally, fail under CI.
        print(
            "make_pdf: no Chromium (apt-get install chromium, or set $CHROMIUM): "
            f"{out.name} is not built",
            file=sys.stderr,
        )
        return 1 if _in_ci() else 0
    t0 = time.perf_counter()
    pages = toc_pages()
    sheets = merge(print_pages(html, pages), out)
    print(
        f"make_pdf: {out} ({len(pages)} pages of the toc, {sheets} A4 sheets, "
        f"{out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
