"""What the extensions that rewrite a page before it is written share.

Sphinx calls an ``html-page-context`` handler with ``(app, pagename, templatename,
context, doctree)``; the extensions here only change ``context``, so each writes a
function of the context and connects it with :func:`rewrite_each_page`. Not an
extension itself: Jupyter Book puts ``_ext`` on ``sys.path`` for the ones that
``_config.yml`` names, and they import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sphinx.application import Sphinx


def rewrite_each_page(
    app: Sphinx,
    rewrite: Callable[[dict[str, Any]], None],
    *,
    priority: int = 500,
) -> dict[str, Any]:
    """Run ``rewrite(context)`` on every HTML page's context before the page is
    written (``priority`` as in ``app.connect``: larger runs later); return the
    extension's metadata for ``setup`` to return."""

    def handler(
        app: Sphinx,
        pagename: str,
        templatename: str,
        context: dict[str, Any],
        doctree: Any,
    ) -> None:
        rewrite(context)

    app.connect("html-page-context", handler, priority=priority)
    # no state kept between pages: Sphinx may read and write in parallel
    return {"parallel_read_safe": True, "parallel_write_safe": True}
