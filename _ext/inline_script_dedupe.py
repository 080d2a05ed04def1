"""Sphinx extension: write each inline ``<script>`` once per page.

Sphinx 7.4 (pinned by Jupyter Book 1) adds an inline script that an extension
registers after the HTML builder has started twice: once under the file name
``None`` and once under ``''`` (fixed upstream in sphinx-doc/sphinx#13402, Sphinx
8.2). sphinx-thebe registers ``const THEBE_JS_URL = ...`` that way, so every page
threw "Identifier 'THEBE_JS_URL' has already been declared" in the reader's browser.
This extension drops the second copy of any script (same file, same attributes, same
body) from the page context before the page is written. With a fixed Sphinx it
changes nothing.
"""

from __future__ import annotations

from typing import Any

from page_context import rewrite_each_page
from sphinx.application import Sphinx


def _dedupe_scripts(context: dict[str, Any]) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for script in scripts:
        filename = getattr(script, "filename", script) or ""
        attributes = getattr(script, "attributes", {}) or {}
        key = (
            str(filename),
            tuple(sorted((k, str(v)) for k, v in attributes.items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    # Late, so that every extension has added its scripts to the context first.
    return rewrite_each_page(app, _dedupe_scripts, priority=900)
