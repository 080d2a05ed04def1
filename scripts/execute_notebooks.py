"""Re-run notebooks in place: their stored outputs become what a fresh run prints.

    python scripts/execute_notebooks.py book/02_batchnorm_arithmetic.ipynb [...]

Each notebook runs in a fresh kernel from its own folder, with the environment,
kernel start-up timeout and per-cell timeout of ``scripts/kernel.env`` (a kernel
start can hang once in a while). Widget state is not stored: the HTML book shows a
"launch to interact" note instead of dead controls. ``make bench`` times notebooks
with the same client.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

KERNEL_ENV_FILE = Path(__file__).resolve().parent / "kernel.env"
_LINE = re.compile(r"(export )?([A-Z][A-Z0-9_]*)=(\S+)")
_TIMEOUTS = {
    "KERNEL_START_TIMEOUT_S": "start_timeout_s",
    "CELL_TIMEOUT_S": "cell_timeout_s",
    "TEST_TIMEOUT_S": "test_timeout_s",
}


@dataclass(frozen=True)
class KernelEnv:
    """``scripts/kernel.env``: the pinned environment and the timeouts, in
    seconds."""

    environment: Mapping[str, str]  # the `export` lines: every kernel's environment
    start_timeout_s: int  # a kernel start
    cell_timeout_s: int  # one cell
    test_timeout_s: int  # one pytest item (make unit, make nbval)


def read_kernel_env(path: Path = KERNEL_ENV_FILE) -> KernelEnv:
    """Parse ``kernel.env``; a line that make or the shell would read otherwise is
    an error."""
    environment: dict[str, str] = {}
    timeouts: dict[str, int] = {}
    for number, line in enumerate(
        path.read_text(encoding="utf-8").splitlines(), start=1
    ):
        if not line.strip() or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise ValueError(
                f"{path.name}:{number}: expected NAME=value, got {line!r}"
            )
        exported, name, value = match.groups()
        if exported:
            environment[name] = value
        elif name in _TIMEOUTS and value.isdigit() and int(value) > 0:
            timeouts[_TIMEOUTS[name]] = int(value)
        else:
            raise ValueError(
                f"{path.name}:{number}: {name}={value!r} is neither an `export` "
                "line nor "
                f"one of the timeouts {sorted(_TIMEOUTS)} with a positive whole "
                "number"
            )
    missing = sorted(
        name for name, field in _TIMEOUTS.items() if field not in timeouts
    )
    if missing:
        raise ValueError(f"{path.name}: missing {', '.join(missing)}")
    return KernelEnv(environment, **timeouts)


KERNEL = read_kernel_env()


def kernel_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with kernel.env's variables
    set."""
    env = dict(os.environ if base is None else base)
    env.update(KERNEL.environment)
    return env


def notebook_client(
    nb: nbformat.NotebookNode, folder: Path, **hooks: object
) -> NotebookClient:
    """The client every notebook run uses: kernel.env's timeouts, run from
    ``folder``.

    ``hooks`` are further NotebookClient options (``make bench`` passes its timers).
    Run it with ``client.execute(env=kernel_environment())``.
    """
    return NotebookClient(
        nb,
        timeout=KERNEL.cell_timeout_s,
        startup_timeout=KERNEL.start_timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
        # False trips an nbclient KeyError on Output widgets; the state is dropped
        # below
        store_widget_state=True,
        record_timing=False,
        **hooks,
    )


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    client = notebook_client(nb, path.parent)
    start = time.perf_counter()
    client.execute(env=kernel_environment())
    elapsed = time.perf_counter() - start
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks:
        if not path.is_file():
            print(f"no such notebook: {path}", file=sys.stderr)
            return 2
        elapsed = execute(path)
        print(f"{path}: executed in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
