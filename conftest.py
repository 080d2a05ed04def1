"""Loaded first by every pytest run from the repository root (the tests, and nbval over
``book/``), before any test imports torch or NumPy: it sets the variables of
``numerics.env`` that the environment does not already set, so that ``pytest`` run by
hand computes (and its notebook kernels print) exactly what ``make test`` does."""

from __future__ import annotations

import os
from pathlib import Path

for line in (Path(__file__).parent / "numerics.env").read_text(encoding="utf-8").splitlines():
    key, sep, value = line.partition("=")
    if sep and not line.lstrip().startswith("#"):
        os.environ.setdefault(key.strip(), value.strip())
