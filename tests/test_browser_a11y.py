"""The built book to a screen reader: axe-core on every page, light and dark; the
bibliography's labels against the citations; the "edit this page" links.

axe-core is the npm package pinned in ``package.json`` and ``package-lock.json``
(``make browser`` runs ``npm ci`` first); its ``axe.min.js`` is injected into each
page of the toc, in light and in dark mode, and run with its default rules. A page
passes with zero violations of impact "serious" or "critical".

Without axe-core (``npm ci``), a browser or a built book the tests skip locally;
under CI (``CI=true``) they fail.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field

import pytest
from browser_support import (
    CHAPTERS,
    CONFIG,
    PAGES,
    ROOT,
    Tab,
    _unavailable,
)

pytestmark = pytest.mark.browser

AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = {"serious", "critical"}
MODES = ["light", "dark"]
BIBLIOGRAPHY = "book/bibliography"

# pydata-sphinx-theme 0.17 keeps the reader's choice in localStorage ("mode",
# "theme") and shows it through <html data-mode data-theme>; its toggle sets all
# four. Switching in place, with every CSS transition run to its end, draws the page
# as a reload in that mode would.
_SET_MODE_JS = """
async mode => {
  localStorage.setItem("mode", mode);
  localStorage.setItem("theme", mode);
  document.documentElement.dataset.mode = mode;
  document.documentElement.dataset.theme = mode;
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  document.getAnimations().forEach(a => a.finish());
  return getComputedStyle(document.body).backgroundColor;
}
"""

_AXE_RUN_JS = """
async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map(v => ({
    id: v.id,
    impact: v.impact,
    count: v.nodes.length,
    targets: v.nodes.slice(0, 3).map(n => n.target.join(" ")),
  }));
}
"""

_EDIT_LINKS_JS = """
Array.from(document.querySelectorAll('a[href*="/edit/"]')).map(a => a.href)
"""

_LABELS_JS = """
Array.from(document.querySelectorAll(".citation .label")).map(l => l.textContent)
"""


@dataclass
class Audit:
    """What one visit to a page found."""

    violations: dict[str, list[dict]] = field(default_factory=dict)
    backgrounds: dict[str, str] = field(default_factory=dict)
    citations: list[dict] = field(default_factory=list)
    edit_links: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def audits(browser, server) -> dict[str, Audit]:
    """Each page of the toc, once, in its own context: axe in light and in dark
    mode, its citations and its edit links."""
    if not AXE_JS.is_file():
        _unavailable(f"no {AXE_JS.relative_to(ROOT)}: run `npm ci` (make browser)")
    out = {}
    for entry in PAGES:
        audit = out[entry] = Audit()
        tab = Tab(browser, server)
        try:
            tab.open(entry)
            tab.page.add_script_tag(path=str(AXE_JS))
            for mode in MODES:
                audit.backgrounds[mode] = tab.page.evaluate(_SET_MODE_JS, mode)
                audit.violations[mode] = tab.page.evaluate(_AXE_RUN_JS)
            bib = posixpath.relpath(BIBLIOGRAPHY, posixpath.dirname(entry))
            audit.citations = tab.page.evaluate(_CITATIONS_JS, bib + ".html")
            audit.edit_links = tab.page.evaluate(_EDIT_LINKS_JS)
            audit.labels = tab.page.evaluate(_LABELS_JS)
            audit.blocked = list(tab.blocked)
        finally:
            tab.close()
    return out


def test_axe_core_is_the_locked_version(audits):
    """node_modules holds the axe-core of package-lock.json (``npm ci``)."""
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    locked = lock["packages"]["node_modules/axe-core"]["version"]
    installed = json.loads(
        (AXE_JS.parent / "package.json").read_text(encoding="utf-8")
    )["version"]
    assert installed == locked, f"axe-core {installed} installed, {locked} locked"
    assert locked.startswith("4."), f"axe-core {locked}: the tests expect 4.x"


def _serious(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in SERIOUS]


def _describe(violations: list[dict]) -> str:
    return "; ".join(
        f"{v['id']} ({v['impact']}, {v['count']}x: {', '.join(v['targets'])})"
        for v in violations
    )


def test_dark_mode_is_dark(audits):
    """The switch to dark mode took: every page's background changed."""
    same = [e for e, a in audits.items() if len(set(a.backgrounds.values())) < 2]
    assert not same, f"the same background in light and dark mode: {same}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("entry", PAGES)
def test_no_serious_axe_violations(audits, entry, mode):
    serious = _serious(audits[entry].violations[mode])
    assert not serious, (
        f"{entry} ({mode}): {len(serious)} serious/critical axe rules fail: "
        + _describe(serious)
    )


def test_no_outside_requests(audits):
    blocked = {e: a.blocked for e, a in audits.items() if a.blocked}
    assert not blocked, f"outside requests: {blocked}"


# ----------------------------------------------------------------- bibliography

# Each citation link of a page: the text a reader sees for it (the link's own text,
# and for a textual citation, whose link is only the year, the authors written
# before it) and the label of the bibliography entry it points to.
_CITATIONS_JS = """
async (bibUrl) => {
  const bib = new DOMParser().parseFromString(
    await (await fetch(bibUrl)).text(), "text/html");
  const label = id => {
    const entry = bib.getElementById(id);
    if (!entry) return null;
    const lab = entry.querySelector(".label");
    return (lab || entry).textContent;
  };
  const out = [];
  for (const cite of document.querySelectorAll("span.bibtex-citation")) {
    let before = "";
    for (const node of cite.childNodes) {
      if (node.nodeName === "A") {
        const href = node.getAttribute("href") || "";
        out.push({
          before, text: node.textContent, href,
          label: label(href.split("#")[1] || ""),
        });
        before = "";
      } else {
        before += node.textContent;
      }
    }
  }
  return out;
}
"""


def _norm(text: str) -> str:
    """Authors and year as comparable text: no brackets, one separator."""
    text = re.sub(r"[\[\]]", " ", text)
    text = re.sub(r"\s*,\s*|\s+", " ", text)
    return text.strip()


def _cited_as(citation: dict) -> str:
    text = citation["text"]
    if re.fullmatch(r"\s*(\d{4}[a-z]?|n\.d\.)\s*", text):
        # a textual citation: "Ba et al. [2016]", only the year is linked; the
        # authors are the text since the previous link, less its separators
        authors = re.sub(r"^[\s,;\]]*(and\s+)?", "", citation["before"])
        text = f"{authors} {text}"
    return _norm(text)


def test_bibliography_labels_are_author_year(audits):
    labels = audits[BIBLIOGRAPHY].labels
    assert labels, "the bibliography has no labelled entries"
    # "[Ba et al., 2016]", "[Zhang and Sennrich, 2019]", "[Welford, 1962]"
    pattern = re.compile(r"\[[^\[\],]*\S, (\d{4}[a-z]?|n\.d\.)\]")
    wrong = [label for label in labels if not pattern.fullmatch(label.strip())]
    assert not wrong, f"labels not of the form [Authors, Year]: {wrong}"
    assert len(set(labels)) == len(labels), f"duplicate labels: {labels}"


def test_the_chapters_cite(audits):
    assert any(audits[e].citations for e in CHAPTERS), "no citation link found"


@pytest.mark.parametrize("entry", [e for e in PAGES if e != BIBLIOGRAPHY])
def test_citations_match_the_bibliography(audits, entry):
    citations = audits[entry].citations
    if not citations:
        pytest.skip(f"{entry} cites nothing")
    wrong = [
        f"{_cited_as(c)!r} -> {c['href']} labelled {c['label']!r}"
        for c in citations
        if c["label"] is None or _cited_as(c) != _norm(c["label"])
    ]
    assert not wrong, f"{entry}: citations that do not match their entry: {wrong}"


# ---------------------------------------------------------------- edit this page


@pytest.mark.parametrize("entry", CHAPTERS)
def test_edit_this_page_link(audits, entry):
    repo = CONFIG["repository"]
    source = posixpath.join(repo.get("path_to_book") or "", f"{entry}.ipynb")
    expected = (
        f"{repo['url'].rstrip('/')}/edit/{repo.get('branch', 'main')}/{source}"
    )
    links = audits[entry].edit_links
    assert expected in links, f"{entry}: no edit link to {expected} (found {links})"
    # a link is not a request: the page asked no outside host for anything
    assert not audits[entry].blocked, (
        f"{entry}: outside requests {audits[entry].blocked}"
    )
