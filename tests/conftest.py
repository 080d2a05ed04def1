"""Shared test set-up: the conditions the notebooks run under.

Every chapter notebook calls ``course_lib.notebook.setup()``, which uses one thread
and deterministic kernels; the claim tests re-run the chapters' experiments, so they
run under the same conditions (on a busy 2-core machine, two threads per test
process is also several times slower).
"""

from __future__ import annotations

import pytest
import torch

# The browser tests' fixtures (a served book, one Chromium, the page visits), shared
# by every tests/test_browser*.py module.
from browser_support import book, browser, html_dir, screenshots, server  # noqa: F401


@pytest.fixture(autouse=True, scope="session")
def _one_thread_deterministic() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
