"""``numerics.env`` reaches every process that computes a stored output.

The stored outputs are only reproducible on another machine if its kernels do the same
arithmetic; ``numerics.env`` pins that, and these tests check that each way in reads it:
the Makefile (every ``make`` command, CI included), Binder's ``start`` script, the
pytest run (``conftest.py``) and the scripts that start kernels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from numerics import numerics_env  # noqa: E402

EXPECTED = numerics_env()


def _env_lines(output: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in output.splitlines())
    return {k: v for k, sep, v in pairs if sep and k in EXPECTED}


def test_the_file_pins_torch_mkl_onednn_and_numpy():
    assert set(EXPECTED) == {
        "ATEN_CPU_CAPABILITY",
        "MKL_CBWR",
        "ONEDNN_MAX_CPU_ISA",
        "NPY_DISABLE_CPU_FEATURES",
    }


def _env_of(cmd: list[str]) -> dict[str, str]:
    """The numerics.env variables that ``cmd`` sees, started without any of them."""
    out = subprocess.run(
        cmd,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in EXPECTED},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return _env_lines(out)


def test_make_exports_every_variable():
    make = ["make", "-s", "--no-print-directory", "--eval", "print-env: ; @env", "print-env"]
    assert _env_of(make) == EXPECTED


def test_binder_start_sets_every_variable_then_runs_its_command():
    assert _env_of(["bash", str(ROOT / "binder" / "start"), "env"]) == EXPECTED


def test_this_test_process_runs_with_them():
    """conftest.py set them before torch was imported; torch uses the pinned kernels."""
    assert {k: os.environ.get(k) for k in EXPECTED} == EXPECTED
    assert torch.backends.cpu.get_cpu_capability() == EXPECTED["ATEN_CPU_CAPABILITY"].upper()
