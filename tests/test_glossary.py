"""The glossary: every term the reader issue asks for is defined there, and the
chapters link to it.

``book/glossary.md`` holds one MyST ``{glossary}`` block; a chapter links a term
with ``{term}`word``` or ``{term}`text <Term>```, matched without regard to case, as
Sphinx matches them. The build (``-n -W``) fails on a link to a term that is not
defined; these tests fail when a term is missing from the glossary or no chapter
links to it.
"""

from __future__ import annotations

import json
import re

import pytest
from book_toc import ROOT, toc_entries

GLOSSARY = ROOT / "book" / "glossary.md"
# The terms a reader meets in several chapters (the reader issue's list, with
# BatchNorm and LayerNorm themselves).
REQUIRED = [
    "BatchNorm",
    "LayerNorm",
    "internal covariate shift",
    "running statistics",
    "PAD",
    "eps",
    "gamma and beta",
    "Pre-LN",
    "Post-LN",
    "RMSNorm",
    "QK-norm",
]
_ROLE = re.compile(r"\{term\}`([^`<]*?)(?:\s*<([^>`]+)>)?`")


def glossary_terms() -> list[str]:
    """The terms defined in the glossary block, as written."""
    text = GLOSSARY.read_text(encoding="utf-8")
    block = re.search(r"```\{glossary\}\n(.*?)\n```", text, re.DOTALL)
    assert block, f"{GLOSSARY} has no {{glossary}} block"
    return [
        line.strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.startswith((" ", "\t"))
    ]


def linked_terms() -> dict[str, set[str]]:
    """For each chapter notebook of the toc, the terms its markdown links to
    (lower case)."""
    links: dict[str, set[str]] = {}
    for entry in toc_entries():
        path = ROOT / f"{entry.removesuffix('.ipynb')}.ipynb"
        if not path.is_file():
            continue
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        text = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
        )
        found = _ROLE.findall(text)
        links[path.stem] = {(to or shown).strip().lower() for shown, to in found}
    return links


def test_the_glossary_is_in_the_toc():
    assert "book/glossary" in [e.removesuffix(".md") for e in toc_entries()]


@pytest.mark.parametrize("term", REQUIRED)
def test_the_term_is_defined(term: str):
    defined = [t.lower() for t in glossary_terms()]
    assert term.lower() in defined, f"{term!r} is not in the glossary: {defined}"


@pytest.mark.parametrize("term", REQUIRED)
def test_a_chapter_links_to_the_term(term: str):
    linking = [c for c, terms in linked_terms().items() if term.lower() in terms]
    assert linking, f"no chapter links to the glossary's {term!r}"


def test_every_term_link_names_a_defined_term():
    defined = {t.lower() for t in glossary_terms()}
    unknown = {
        chapter: sorted(terms - defined)
        for chapter, terms in linked_terms().items()
        if terms - defined
    }
    assert not unknown, f"links to terms the glossary does not define: {unknown}"


def test_the_role_pattern_reads_both_forms():
    text = "see {term}`eps` and {term}`the shift <gamma and beta>`."
    assert _ROLE.findall(text) == [("eps", ""), ("the shift", "gamma and beta")]
