"""Sphinx extension: ship only the part of MathJax 3 that the book can load.

sphinx-mathjax-offline copies all of MathJax 3.2 (24 MB: every combined
component, both input languages, both output fonts, the speech rules in twelve
languages) into ``_static/mathjax`` when the build finishes. A page loads
``tex-chtml.js`` (TeX in, HTML-CSS out, the right-click menu and the hidden
MathML for screen readers, in one file) and its web fonts; everything else is
loaded only when the reader or the math asks for it. This extension runs after
that copy and deletes every file outside ``KEEP``: what a page loads, and what
MathJax may load lazily there:

- the TeX extensions that ``autoload`` fetches when an equation uses one of their
  macros (``\\boldsymbol``, ``\\cancel``, ...) or ``\\require``s one;
- from the menu's Accessibility items: the explorer, speech and Braille
  (``a11y/*``, the speech rule engine and its rules in every language its
  Language menu offers, and the MathML input it parses the enriched math with),
  collapsible math (``a11y/complexity``);
- from Math Settings > Math Renderer: the SVG output and its font.

``tests/test_browser_weight.py`` opens the menu and switches each of these on with
every request counted: a file this list lacks is a 404 there. The build fails if
something on the list is missing from the copy (a new MathJax lays it out anew).
"""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

# Paths under _static/mathjax, as glob patterns (``*`` matches across ``/``).
KEEP = (
    "tex-chtml.js",
    "output/chtml/fonts/woff-v2/*.woff",
    "input/tex/extensions/*",
    "input/mml.js",
    "a11y/*.js",
    "sre/*",
    "output/svg.js",
    "output/svg/fonts/tex.js",
)


def kept(path: str) -> bool:
    return any(fnmatch(path, pattern) for pattern in KEEP)


def _trim(app: Sphinx, exc: Exception | None) -> None:
    if exc is not None or app.builder.format != "html":
        return
    root = Path(app.outdir) / "_static" / "mathjax"
    if not root.is_dir():
        raise ExtensionError(f"mathjax_trim: no MathJax at {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    paths = [p.relative_to(root).as_posix() for p in files]
    unmatched = [
        pattern for pattern in KEEP if not any(fnmatch(p, pattern) for p in paths)
    ]
    if unmatched:
        raise ExtensionError(
            f"mathjax_trim: {root} has nothing matching {unmatched}; MathJax's "
            "layout changed, update KEEP"
        )
    for file, path in zip(files, paths, strict=True):
        if not kept(path):
            file.unlink()
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def setup(app: Sphinx) -> dict[str, bool]:
    # After sphinx-mathjax-offline's own build-finished handler (priority 500),
    # which copies the whole of MathJax in.
    app.connect("build-finished", _trim, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
