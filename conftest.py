"""Loaded first by every pytest run from the repository root (the tests, and nbval over
``book/``), before any test imports torch or NumPy: it sets the variables of
``numerics.env`` that the environment does not already set, so that ``pytest`` run by
hand computes (and its notebook kernels print) exactly what ``make test`` does."""

from __future__ import annotations

import os

from scripts.numerics import numerics_env

for key, value in numerics_env().items():
    os.environ.setdefault(key, value)
