"""The book's pages, read from ``_toc.yml`` (for the hygiene and browser tests).

The reader is ``scripts/make_pdf.py``'s, which prints the pages in this order;
the script is loaded from its file (``scripts`` is not installed), as
``test_hygiene`` loads ``prose_words``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location(
    "_make_pdf", ROOT / "scripts" / "make_pdf.py"
)
assert _spec is not None and _spec.loader is not None
make_pdf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_pdf)

#: Every ``file`` entry of ``_toc.yml``, root first, in reading order, as written.
toc_entries = make_pdf.toc_entries
