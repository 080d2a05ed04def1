"""Sphinx extension: give the bibliography's entries a role a list may hold.

docutils 0.21 writes a run of citations (sphinxcontrib-bibtex's bibliography) as

    <div role="list" class="citation-list">
    <div class="citation" id="id2" role="doc-biblioentry"> ... </div>

``doc-biblioentry`` is deprecated in DPUB-ARIA 1.1 (entries of a bibliography are
plain list items) and is not a ``listitem``, so to a screen reader the list has no
items (axe: ``aria-required-children``, critical; ``aria-deprecated-role`` and
``aria-allowed-role`` on every entry). This extension rewrites exactly that
attribute of the ``div.citation`` elements (docutils writes it there only, and
each sits in a ``citation-list``) to ``role="listitem"`` in the page body before
the page is written. Nothing else in the page changes.
"""

from __future__ import annotations

import re
from typing import Any

from page_context import rewrite_each_page
from sphinx.application import Sphinx

_ENTRY = re.compile(r'(<div class="citation"[^>]*?) role="doc-biblioentry"')


def _rewrite(context: dict[str, Any]) -> None:
    body = context.get("body")
    if body and 'role="doc-biblioentry"' in body:
        context["body"] = _ENTRY.sub(r'\1 role="listitem"', body)


def setup(app: Sphinx) -> dict[str, Any]:
    return rewrite_each_page(app, _rewrite)
