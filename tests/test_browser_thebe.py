"""Live Code without a network, in a real browser.

Clicking "Live Code" makes sphinx-thebe fetch thebe from a CDN; offline (here:
every outside request blocked, as by ``Tab``) that script never arrives, and
sphinx-thebe alone would say "Loading thebe from CDN..." for ever.
``book/_static/thebe-offline.js`` replaces that with a message saying that live
code needs a network connection and what works instead.

Without a browser or a built book the tests skip locally; under CI (``CI=true``)
they fail.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import CHAPTERS, Tab

pytestmark = pytest.mark.browser

# The one console error a blocked script leaves (Chromium's own message).
BLOCKED_SCRIPT_ERROR = "net::ERR_BLOCKED_BY_CLIENT"


def test_live_code_offline_says_it_needs_a_network(book: Any):
    entry = CHAPTERS[0]
    tab = Tab(book.browser, book.base)
    try:
        tab.open(entry)
        thebe_js = tab.page.evaluate("THEBE_JS_URL")
        tab.page.locator(".dropdown-launch-buttons .dropdown-toggle").click()
        tab.page.locator(".btn-launch-thebe").click()
        status = tab.page.locator(".thebe-launch-button")
        status.wait_for(state="visible", timeout=5_000)
        # at most the few seconds thebe-offline.js waits, plus a margin
        tab.page.wait_for_function(
            "() => /network connection/i.test("
            "document.querySelector('.thebe-launch-button').textContent)",
            timeout=8_000,
        )
        text = status.text_content() or ""
        assert "Loading thebe" not in text, text
        assert "Binder" in text and "local Jupyter" in text, (
            f"the message does not say what works instead: {text!r}"
        )
        assert status.get_attribute("aria-live") == "polite", (
            "the message is not announced to screen readers"
        )
        assert tab.blocked == [thebe_js], (
            f"Live Code should ask for thebe and nothing else: {tab.blocked}"
        )
        other = [e for e in tab.console_errors if BLOCKED_SCRIPT_ERROR not in e]
        assert not other and not tab.page_errors, (
            f"errors besides the blocked thebe script: {other + tab.page_errors}"
        )
    finally:
        tab.close()
