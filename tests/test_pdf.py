"""The PDF of the whole book that `make pdf` prints (``scripts/make_pdf.py``).

Reads ``why-layernorm.pdf`` next to the built HTML (``_build/html``, or
``$BOOK_HTML``) with pypdf and checks what its reader meets: one bookmark per page
of ``_toc.yml``, in toc order, titled with the page's title; every chapter's title
in its text; no button label ("Click to hide"); and code that is not cut at the
right margin (the longest code line of chapter 4 is all there, wrapped or not).

Marked ``browser``: it runs with the browser tests, after `make pdf`. Without the
PDF it skips locally; under CI (``CI=true``) it fails.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from browser_support import CHAPTERS, PAGES, ROOT, _unavailable

pytestmark = pytest.mark.browser

PDF_NAME = "why-layernorm.pdf"
# The chapter whose printout the issue reported cut at the right margin.
WIDE_CHAPTER = "book/04_layernorm_derivation"


def _title(entry: str) -> str:
    """A page's ``# Title``, as its source writes it."""
    nb = ROOT / f"{entry}.ipynb"
    if nb.is_file():
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        text = "".join(cells[0]["source"])
    else:
        text = (ROOT / f"{entry}.md").read_text(encoding="utf-8")
    heading = re.search(r"^# (.+)$", text, re.M)
    assert heading, f"{entry} has no # title"
    # as rendered: markdown emphasis and code marks are not text
    return heading.group(1).replace("`", "").replace("**", "").strip()


def _bookmarked(title: str, bookmark: str) -> bool:
    """A bookmark is the page's title, after the chapter number the book adds."""
    return re.fullmatch(r"(\d+\.\s+)?" + re.escape(title), bookmark) is not None


def _squash(text: str) -> str:
    """Text without whitespace, ligatures unfolded ("fl" is one glyph in the PDF):
    a line wrapped anywhere still matches itself."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


@pytest.fixture(scope="module")
def pdf(html_dir: Path) -> Any:
    path = html_dir / PDF_NAME
    if not path.is_file():
        _unavailable(f"no {path}: run `make pdf` first")
    from pypdf import PdfReader

    return PdfReader(path)


@pytest.fixture(scope="module")
def sections(pdf: Any) -> list[tuple[str, str]]:
    """(bookmark title, text of its pages) for each top-level bookmark."""
    tops = [item for item in pdf.outline if not isinstance(item, list)]
    starts = [pdf.get_destination_page_number(item) for item in tops]
    ends = starts[1:] + [len(pdf.pages)]
    return [
        (
            item.title,
            "\n".join(pdf.pages[i].extract_text() or "" for i in range(a, b)),
        )
        for item, a, b in zip(tops, starts, ends, strict=True)
    ]


def test_one_bookmark_per_page_in_toc_order(pdf: Any, sections):
    titles = [title for title, _ in sections]
    want = [_title(entry) for entry in PAGES]
    assert len(titles) == len(want) and all(
        _bookmarked(t, b) for t, b in zip(want, titles, strict=True)
    ), f"the PDF's bookmarks are not the toc's pages {want}: {titles}"
    starts = [
        pdf.get_destination_page_number(item)
        for item in pdf.outline
        if not isinstance(item, list)
    ]
    assert starts == sorted(set(starts)), f"bookmarks out of order: {starts}"


def test_every_chapter_title_is_in_the_text(sections):
    text = _squash("\n".join(body for _, body in sections))
    missing = [e for e in CHAPTERS if _squash(_title(e)) not in text]
    assert not missing, f"chapter titles not in the PDF's text: {missing}"


def test_no_button_label_is_printed(sections):
    labels = [
        (title, m.group(0))
        for title, body in sections
        for m in re.finditer(r"Click\s*to\s*(hide|show)", body, re.I)
    ]
    assert not labels, f"button labels in the PDF: {labels[:5]}"


def test_the_longest_code_line_of_chapter_4_prints_whole(sections):
    cells = json.loads(
        (ROOT / f"{WIDE_CHAPTER}.ipynb").read_text(encoding="utf-8")
    )["cells"]
    lines = [
        line
        for cell in cells
        if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
    ]
    longest = max(lines, key=len)
    (body,) = [b for t, b in sections if _bookmarked(_title(WIDE_CHAPTER), t)]
    assert _squash(longest) in _squash(body), (
        f"the longest code line of {WIDE_CHAPTER} ({len(longest)} characters) is "
        f"not whole in the PDF (cut at the margin?): {longest.strip()!r}"
    )
