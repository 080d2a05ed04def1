"""Chapters in fresh kernels: the kernel start, the floor, and each chapter.

* ``kernel start``: from asking for a kernel to the kernel being ready, nothing run.
* ``floor``: a fresh kernel that only runs the import statements of the chapters
  (the union of every top-level ``import`` in ``book/NN_*.ipynb``) and ``setup()``,
  from kernel start to the end of that cell. No chapter can be faster than this.
* one row per chapter or appendix notebook (``book/[0-9][0-9]_*.ipynb``, then
  ``book/appendix_*.ipynb``): a fresh kernel runs a
  copy of it, kernel start included, with the client of
  ``scripts/execute_notebooks.py`` (what it and nbval pay; kernel shutdown, which
  nobody waits for, excluded), and its ratio to the floor. Budget: 20 s. A chapter
  over budget gets a note naming its slowest cells.
"""

from __future__ import annotations

import ast
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..execute_notebooks import notebook_client
from .processes import ROOT, child_env
from .table import Row, median, verdict

# chapters, then appendices: each has the same 20 s budget
CHAPTER_GLOBS = ("[0-9][0-9]_*.ipynb", "appendix_*.ipynb")
BUDGET_CHAPTER_S = 20.0


def chapters() -> list[Path]:
    return [p for g in CHAPTER_GLOBS for p in sorted((ROOT / "book").glob(g))]


def chapter_imports(paths: Sequence[Path]) -> list[str]:
    """Every top-level import statement of the chapters, deduplicated, in first-seen
    order."""
    seen: dict[str, None] = {}
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:  # IPython magics: not Python, and not imports
                continue
            for node in tree.body:
                if isinstance(node, ast.Import | ast.ImportFrom):
                    seen.setdefault(ast.unparse(node), None)
    return list(seen)


def floor_notebook(imports: Sequence[str]) -> nbformat.NotebookNode:
    source = "\n".join(
        [*imports, "from course_lib.notebook import setup", "", "setup()"]
    )
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source))
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    return nb


@dataclass
class NotebookRun:
    # seconds from asking for a kernel to the kernel being ready
    kernel_start: float
    total: float  # seconds from asking for a kernel to the end of the last cell
    cells: dict[int, float]  # code cell index -> seconds that cell took


def time_notebook(nb: nbformat.NotebookNode) -> NotebookRun:
    """Execute ``nb`` (in memory, nothing is written) in a fresh kernel and time it.

    Kernel shutdown, which nobody waits for, is excluded. Raises nbclient's
    CellExecutionError if a cell fails.
    """
    marks: dict[str, float] = {}
    cells: dict[int, float] = {}

    def on_start(**_: object) -> None:
        marks["ready"] = marks["last"] = time.perf_counter()

    def on_cell(cell_index: int, **_: object) -> None:
        now = time.perf_counter()
        cells[cell_index] = now - marks["last"]
        marks["last"] = now

    client = notebook_client(
        nb, ROOT / "book", on_notebook_start=on_start, on_cell_executed=on_cell
    )
    start = time.perf_counter()
    # stderr: the kernel's start-up chatter; errors still raise
    client.execute(env=child_env(), stderr=subprocess.DEVNULL)
    return NotebookRun(marks["ready"] - start, marks["last"] - start, cells)


def slowest_cells(
    nb: nbformat.NotebookNode, runs: Sequence[NotebookRun], k: int = 3
) -> str:
    """The ``k`` slowest code cells (median over runs), as 'cell 12 1.2 s: first
    line'."""
    seconds = {
        i: statistics.median(r.cells[i] for r in runs) for i in runs[0].cells
    }
    top = sorted(seconds, key=seconds.get, reverse=True)[:k]
    parts = []
    for i in top:
        first = next(
            (ln for ln in nb.cells[i].source.splitlines() if ln.strip()), ""
        )
        parts.append(f"cell {i} {seconds[i]:.1f} s: {first[:50]}")
    return "; ".join(parts)


def bench_notebooks(repeat: int, notes: list[str]) -> list[Row]:
    paths = chapters()
    floor_nb = floor_notebook(chapter_imports(paths))
    floor_runs: list[NotebookRun] = []
    runs: dict[Path, list[NotebookRun]] = {p: [] for p in paths}
    failed: dict[Path, str] = {}
    # interleaved, so that load changes hit every notebook alike
    for _ in range(repeat):
        floor_runs.append(time_notebook(nbformat.from_dict(floor_nb)))
        for path in paths:
            if path in failed:
                continue
            try:
                runs[path].append(time_notebook(nbformat.read(path, as_version=4)))
            except Exception as exc:  # a failing chapter is reported, not timed
                failed[path] = type(exc).__name__
                notes.append(f"{path.name} failed to execute: {type(exc).__name__}")
    floor = median([r.total for r in floor_runs])
    rows = [
        Row(
            "kernel start (ipykernel, nothing run)",
            median([r.kernel_start for r in floor_runs]),
            len(floor_runs),
        ),
        Row(
            "floor: fresh kernel, the chapters' imports, setup()",
            floor,
            len(floor_runs),
            "1.00x floor",
        ),
    ]
    for path in paths:
        t = median([r.total for r in runs[path]])
        ratio = f"{t / floor:.2f}x floor" if t is not None and floor else ""
        ok = None if t is None else t <= BUDGET_CHAPTER_S
        label = f"chapter {path.stem}" + (" (FAILED)" if path in failed else "")
        rows.append(
            Row(
                label,
                t,
                len(runs[path]),
                ratio,
                budget=f"<= {BUDGET_CHAPTER_S:.0f} s",
                verdict=verdict(ok),
            )
        )
        if ok is False:  # where to start profiling
            nb = nbformat.read(path, as_version=4)
            notes.append(
                f"{path.stem} over budget; slowest cells: "
                f"{slowest_cells(nb, runs[path])}"
            )
    return rows
