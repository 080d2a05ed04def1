"""``make test``'s strict nbval run and ``make book``'s build, timed as commands.

* nbval: ``make nbval`` serially (``JOBS=0``) and with two workers (``JOBS=2``,
  ``--dist loadscope``). Budget: 90 s serially. A failing run is marked ``FAILED``
  and its last lines are noted under the table.
* the book: ``jupyter-book build . -n -W --keep-going`` into a temporary
  ``--path-output`` from a clean ``_build``, then again with nothing changed.
  Budget: 30 s for the rebuild. ``_config.yml`` sets ``execute_notebooks: "off"``,
  so the build publishes the outputs stored in the notebooks, which ``make test``'s
  nbval run proves equal to what the current code prints: fast, and never stale
  while the tests pass.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .processes import ANSI, BIN, time_command
from .table import Row, median, verdict

BUDGET_NBVAL_SERIAL_S = 90.0
BUDGET_REBUILD_S = 30.0


def bench_nbval(repeat: int, notes: list[str]) -> list[Row]:
    runs: dict[str, list[float]] = {"serial": [], "two": []}
    rcs: dict[str, set[int]] = {"serial": set(), "two": set()}
    commands = {
        "serial": ["make", "--no-print-directory", "nbval", "JOBS=0"],
        "two": ["make", "--no-print-directory", "nbval", "JOBS=2"],
    }
    for _ in range(repeat):
        for key, cmd in commands.items():
            seconds, rc, out = time_command(cmd)
            runs[key].append(seconds)
            rcs[key].add(rc)
            if rc != 0:
                tail = " | ".join(ANSI.sub("", out).strip().splitlines()[-3:])
                notes.append(f"nbval ({' '.join(cmd[2:])}) exited {rc}: {tail}")
    serial, two = median(runs["serial"]), median(runs["two"])
    failed = {k: "" if rcs[k] == {0} else " (FAILED)" for k in runs}
    return [
        Row(
            f"nbval strict, serial: make nbval JOBS=0{failed['serial']}",
            serial,
            len(runs["serial"]),
            budget=f"<= {BUDGET_NBVAL_SERIAL_S:.0f} s",
            verdict=verdict(serial <= BUDGET_NBVAL_SERIAL_S if serial else None),
        ),
        Row(
            f"nbval strict, 2 workers: make nbval JOBS=2{failed['two']}",
            two,
            len(runs["two"]),
            ratio=f"{two / serial:.2f}x serial" if serial and two else "",
        ),
    ]


def bench_build(repeat: int, notes: list[str]) -> list[Row]:
    clean_s: list[float] = []
    rebuild_s: list[float] = []
    rcs: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="bench_book_") as tmp:
        cmd = [
            str(BIN / "jupyter-book"),
            "build",
            ".",
            "-n",
            "-W",
            "--keep-going",
            "--path-output",
            tmp,
        ]
        for _ in range(repeat):
            shutil.rmtree(Path(tmp) / "_build", ignore_errors=True)
            for samples in (clean_s, rebuild_s):
                seconds, rc, out = time_command(cmd)
                samples.append(seconds)
                rcs.add(rc)
                if rc != 0:
                    lines = ANSI.sub("", out).splitlines()
                    warn = [ln for ln in lines if "WARNING" in ln or "ERROR" in ln]
                    notes.append(f"book build exited {rc}: " + " | ".join(warn[:3]))
    failed = "" if rcs == {0} else " (FAILED, see notes)"
    clean, rebuild = median(clean_s), median(rebuild_s)
    return [
        Row(
            f"book, clean _build: jupyter-book build . -n -W{failed}",
            clean,
            len(clean_s),
        ),
        Row(
            f"book, rebuild with nothing changed{failed}",
            rebuild,
            len(rebuild_s),
            ratio=f"{rebuild / clean:.2f}x clean" if clean and rebuild else "",
            budget=f"<= {BUDGET_REBUILD_S:.0f} s",
            verdict=verdict(rebuild <= BUDGET_REBUILD_S if rebuild else None),
        ),
    ]
