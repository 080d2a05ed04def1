"""The bench's processes: where they run, their environment, a timed command.

Every one of them (kernels, ``make nbval``, the book build, the LayerNorm children)
gets this process's environment with ``scripts/kernel.env``'s pins (one thread per
process) and without make's own variables, so that a ``make`` it starts is not a
sub-make of ``make bench``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..execute_notebooks import kernel_environment

ROOT = Path(__file__).resolve().parents[2]
# the .venv's bin: jupyter-book sits beside python
BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in pytest's and Sphinx's output
MAKE_VARIABLES = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}


def child_env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    return kernel_environment(base)


def time_command(cmd: Sequence[str]) -> tuple[float, int, str]:
    """(seconds, exit status, stdout and stderr together) of ``cmd`` run from the
    root."""
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return time.perf_counter() - start, proc.returncode, proc.stdout


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"
