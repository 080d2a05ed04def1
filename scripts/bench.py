r"""Time what a learner and a maintainer wait for, and three LayerNorms side by side.

    make bench                                   # what docs/DEVELOPMENT.md quotes
    .venv/bin/python scripts/bench.py --repeat 5 --only chapters,layernorm

Prints one table to stdout; every figure is the median of several runs (the ``runs``
column says how many). It is a command, not a test: it exits 0 whatever the timings, and
the ``budget`` column only reports whether each budget of docs/DEVELOPMENT.md's "Development:
speed budgets" section is held. Nothing in the repository is modified: notebooks are
executed from an in-memory copy, and the book is built into a temporary folder.

Rows, from top to bottom:

* ``floor``: a fresh kernel that only runs the import statements of the chapters (the
  union of every top-level ``import`` in ``book/NN_*.ipynb``) and ``setup()``, from
  kernel start to the end of that cell. No chapter can be faster than this.
* one row per chapter notebook ``book/[0-9][0-9]_*.ipynb``: a fresh kernel runs a copy
  of it, kernel start included (what ``scripts/execute_notebooks.py`` and nbval pay), and
  its ratio to the floor. Budget: 20 s.
* the strict nbval run of ``make test`` (``make nbval``), serially (``JOBS=0``) and with
  two workers (``JOBS=2``, ``--dist loadscope``). Budget: 90 s serially.
* ``make book``'s build command, ``jupyter-book build . -n -W --keep-going``, into a
  temporary ``--path-output`` from a clean ``_build``, then again with nothing changed.
  Budget: 30 s for the rebuild. ``_config.yml`` sets ``execute_notebooks: "off"``, so the
  build publishes the outputs stored in the notebooks, which ``make test``'s nbval run
  proves equal to what the current code prints: fast, and never stale while the tests
  pass.
* LayerNorm at two training-like shapes, float32, one thread: (a) the notes' module as
  the notes write it, ``mean``, ``var(unbiased=False)``, ``(x - mean) / sqrt(var +
  eps)``, ``scale * x + shift``, differentiated by autograd through those operations;
  (a') the same with the variance written as ``((x - mean) ** 2).mean()``, to show how
  much of (a)'s time is ``torch.var``'s CPU kernel; (b) ``course_lib.autograd.
  LayerNormFunction`` with the hand-derived backward; (c) ``torch.nn.functional.
  layer_norm``. Forward (inputs requiring grad, as in training) and forward + backward
  (``torch.autograd.grad`` for the input, the weight and the bias; nothing accumulates
  in ``.grad``). Each implementation at each shape runs in a fresh process (a training
  script uses one LayerNorm at one shape, and one implementation's freed tensors must
  not decide where another's land), ``--processes`` times, the processes taking turns so
  that a change of machine load hits all of them alike.

  Twice over: with the C library's malloc as it comes, and with glibc told through
  ``GLIBC_TUNABLES`` to keep freed memory for reuse. As it comes, glibc hands large
  freed blocks back to the operating system whenever the memory freed together passes
  its trim threshold (about twice the largest block), and every new ``(N, D)`` tensor
  then costs a page fault per 4 KiB page on its first write; whether a call crosses the
  threshold depends on a megabyte more or less, so these rows measure the allocator's
  heuristic as much as the code, and the ``faults`` column (page faults per call) shows
  how much. With freed memory kept (as jemalloc, tcmalloc or PyTorch's own GPU caching
  allocator keep it) the faults are gone and the time is the code's. Budget, judged on
  those rows: (b)'s forward + backward at most 3x (c)'s, and at least 3x faster than
  (a)'s.

Passes over memory. A "pass" is one kernel that streams ``(N, D)``-sized data (``N`` rows
of ``D`` features) through memory: an elementwise operation (``x - mean``, ``scale * x``,
``grad * x_hat``), a reduction over it (``mean``, ``sum``, a norm, a matrix-vector
product), or a copy. Operations on ``(N, 1)`` or ``(D,)`` tensors and views cost nothing
and are not counted. The script counts passes by profiling one forward and one
forward + backward of each implementation with ``torch.profiler`` (``count_passes``),
so the count follows the code and includes what autograd adds (gradients of broadcasts
summed back to ``(N, 1)`` or ``(D,)``, gradients of a tensor used twice added together).
An operation on a block of rows counts its share of a pass, so an implementation that
goes through the rows in blocks (``course_lib``'s does) counts the same passes as one
that does not; its passes after the first over each block find the block in the cache,
where an unblocked pass over a 16 MiB tensor goes to main memory every time. torch's
native LayerNorm is one fused kernel each way: it visits every row two or three times
too, but while the row sits in the L1 cache, so from memory it reads ``x`` (and
``dL/dy``) once and writes once; that is what a pass count of 1 means and why it is the
yardstick.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the .venv's bin: jupyter-book sits beside python
CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in pytest's and Sphinx's output
CELL_TIMEOUT_S = 120
START_TIMEOUT_S = 90

BUDGET_CHAPTER_S = 20.0
BUDGET_NBVAL_SERIAL_S = 90.0
BUDGET_REBUILD_S = 30.0
BUDGET_LN_VS_NATIVE = 3.0  # course_lib fwd+bwd <= 3x F.layer_norm
BUDGET_LN_VS_NOTES = 3.0  # ... and >= 3x faster than the notes' module

LN_SHAPES = ((32, 128, 256), (8, 512, 1024))  # (B, T, C): training-like activations
LN_EPS = 1e-5
SECTIONS = ("chapters", "nbval", "build", "layernorm")

# Single-threaded everywhere, as in the Makefile and in setup(): float results and
# timings must not depend on the core count, and kernels must not fight over cores.
ENV_DEFAULTS = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
}


# --- the table ----------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    seconds: float | None  # the median; None when the measurement failed
    runs: int
    ratio: str = ""
    passes: str = ""
    budget: str = ""
    verdict: str = ""
    faults: str = ""  # page faults per call (LayerNorm rows)


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "failed"
    if seconds >= 1.0:
        return f"{seconds:.1f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "OVER")


def print_table(rows: Sequence[Row]) -> None:
    columns = ("what", "median", "runs", "ratio", "passes", "faults", "budget", "")
    cells = [
        (
            r.what,
            fmt_time(r.seconds),
            str(r.runs),
            r.ratio,
            r.passes,
            r.faults,
            r.budget,
            r.verdict,
        )
        for r in rows
    ]
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(columns)]
    right = {1, 2, 4, 5}  # numbers right-aligned

    def line(values: Sequence[str]) -> str:
        out = [
            v.rjust(w) if j in right else v.ljust(w)
            for j, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    print(line(columns))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


# --- fresh-kernel notebook timings --------------------------------------------------------


def chapters() -> list[Path]:
    return sorted((ROOT / "book").glob(CHAPTER_GLOB))


def chapter_imports(paths: Sequence[Path]) -> list[str]:
    """Every top-level import statement of the chapters, deduplicated, in first-seen order."""
    import nbformat

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


def floor_notebook(imports: Sequence[str]):
    import nbformat

    source = "\n".join([*imports, "from course_lib.notebook import setup", "", "setup()"])
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
    kernel_start: float  # seconds from asking for a kernel to the kernel being ready
    total: float  # seconds from asking for a kernel to the end of the last cell
    cells: dict[int, float]  # code cell index -> seconds that cell took


def time_notebook(nb) -> NotebookRun:
    """Execute ``nb`` (in memory, nothing is written) in a fresh kernel and time it.

    Kernel shutdown, which nobody waits for, is excluded. Raises nbclient's
    CellExecutionError if a cell fails.
    """
    from nbclient import NotebookClient

    marks: dict[str, float] = {}
    cells: dict[int, float] = {}

    def on_start(**_: object) -> None:
        marks["ready"] = marks["last"] = time.perf_counter()

    def on_cell(cell_index: int, **_: object) -> None:
        now = time.perf_counter()
        cells[cell_index] = now - marks["last"]
        marks["last"] = now

    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        startup_timeout=START_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "book")}},
        store_widget_state=True,  # as scripts/execute_notebooks.py (False trips nbclient)
        record_timing=False,
        on_notebook_start=on_start,
        on_cell_executed=on_cell,
    )
    start = time.perf_counter()
    client.execute(stderr=subprocess.DEVNULL)  # the kernel's start-up chatter; errors still raise
    return NotebookRun(marks["ready"] - start, marks["last"] - start, cells)


def slowest_cells(nb, runs: Sequence[NotebookRun], k: int = 3) -> str:
    """The ``k`` slowest code cells (median over runs), as '#index 1.2 s: first line'."""
    seconds = {i: statistics.median(r.cells[i] for r in runs) for i in runs[0].cells}
    top = sorted(seconds, key=seconds.get, reverse=True)[:k]
    parts = []
    for i in top:
        first = next((ln for ln in nb.cells[i].source.splitlines() if ln.strip()), "")
        parts.append(f"cell {i} {seconds[i]:.1f} s: {first[:50]}")
    return "; ".join(parts)


def bench_notebooks(repeat: int, notes: list[str]) -> list[Row]:
    import nbformat

    paths = chapters()
    floor_nb = floor_notebook(chapter_imports(paths))
    floor_runs: list[NotebookRun] = []
    runs: dict[Path, list[NotebookRun]] = {p: [] for p in paths}
    failed: dict[Path, str] = {}
    for _ in range(repeat):  # interleaved, so that load changes hit every notebook alike
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
            notes.append(f"{path.stem} over budget; slowest cells: {slowest_cells(nb, runs[path])}")
    return rows


# --- nbval and the book build -------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env.update(ENV_DEFAULTS)
    return env


def time_command(cmd: Sequence[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return time.perf_counter() - start, proc.returncode, proc.stdout


def bench_nbval(repeat: int, notes: list[str]) -> list[Row]:
    runs = {"serial": [], "two": []}
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
        Row(f"book, clean _build: jupyter-book build . -n -W{failed}", clean, len(clean_s)),
        Row(
            f"book, rebuild with nothing changed{failed}",
            rebuild,
            len(rebuild_s),
            ratio=f"{rebuild / clean:.2f}x clean" if clean and rebuild else "",
            budget=f"<= {BUDGET_REBUILD_S:.0f} s",
            verdict=verdict(rebuild <= BUDGET_REBUILD_S if rebuild else None),
        ),
    ]


# --- three LayerNorms ---------------------------------------------------------------------


def notes_layer_norm_module(emb_dim: int, *, var_as_mean_of_squares: bool = False):
    """The notes' LayerNorm class, line for line; autograd differentiates its operations."""
    import torch
    from torch import nn

    class LayerNorm(nn.Module):
        def __init__(self, emb_dim: int) -> None:
            super().__init__()
            self.eps = 1e-5
            self.scale = nn.Parameter(torch.ones(emb_dim))
            self.shift = nn.Parameter(torch.zeros(emb_dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mean = x.mean(dim=-1, keepdim=True)
            if var_as_mean_of_squares:
                var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
            else:
                var = x.var(dim=-1, keepdim=True, unbiased=False)
            norm_x = (x - mean) / torch.sqrt(var + self.eps)
            return self.scale * norm_x + self.shift

    return LayerNorm(emb_dim)


# Innermost profiler events that take an (N, D)-sized tensor but move no data.
NO_DATA_OPS = {
    "aten::alias", "aten::as_strided", "aten::chunk", "aten::contiguous", "aten::detach",
    "aten::empty", "aten::empty_like", "aten::empty_strided", "aten::expand",
    "aten::expand_as", "aten::flatten", "aten::lift_fresh", "aten::mT", "aten::narrow",
    "aten::new_empty", "aten::new_empty_strided", "aten::new_full", "aten::new_ones",
    "aten::new_zeros", "aten::numpy_T", "aten::permute",
    "aten::reshape", "aten::resize_", "aten::resolve_conj", "aten::resolve_neg",
    "aten::result_type", "aten::select", "aten::slice", "aten::split",
    "aten::split_with_sizes", "aten::squeeze", "aten::sum_to_size", "aten::t",
    "aten::transpose", "aten::unbind", "aten::unsqueeze", "aten::view", "aten::view_as",
    "aten::_reshape_alias", "aten::_unsafe_view", "aten::to", "aten::numel", "aten::size",
    "aten::stride",
}  # fmt: skip


def count_passes(fn: Callable[[], object], rows: int, features: int) -> float:
    """Passes over ``(rows, features)``-sized data in one call of ``fn``, from a profile.

    Each ATen operation that moves data (not a view, not an allocation) counts
    the size of the largest tensor it takes, as a fraction of ``rows * features``:
    1 for an operation on the whole ``(N, D)`` tensor, 1/4 for one on a quarter of its
    rows, so that an implementation that goes through the rows in blocks counts the same
    passes as one that does not. A tensor counts when one of its dimensions is the
    feature dimension ``D`` and it holds more than ``D`` numbers: one number per row,
    ``(N, 1)``, or per feature, ``(D,)``, is free. An operation that calls others counts
    what they count, or its own input if that is more, so that ``mean`` calling ``sum``
    counts once and ``F.layer_norm``'s fused kernel counts once however it allocates.
    """
    from torch.profiler import ProfilerActivity, profile

    # The profiler's C++ side prints "profiler_start/stop" lines on stderr; keep the
    # table clean by pointing file descriptor 2 at /dev/null while it runs.
    sys.stderr.flush()
    saved_fd = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            fn()
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        os.close(devnull)
    full = rows * features

    def data_moved(event) -> float:
        if not event.name.startswith("aten::") or event.name in NO_DATA_OPS:
            return 0.0
        sizes = [
            math.prod(s)
            for s in event.input_shapes
            if s and all(isinstance(d, int) for d in s) and features in s
        ]
        sizes = [size for size in sizes if size > features]
        return max(sizes, default=0) / full

    def passes(event) -> float:  # a wrapper counts what it calls, at least its own input
        return max(data_moved(event), sum(passes(child) for child in event.cpu_children))

    return round(sum(passes(e) for e in prof.events() if e.cpu_parent is None), 2)


def fmt_passes(p: float) -> str:
    return f"{p:.0f}" if p == round(p) else f"{p:.1f}"


LN_LABELS = {
    "notes": "notes' module, autograd",
    "notes_sq": "notes' module, var as mean of squares",
    "course": "course_lib LayerNormFunction",
    "native": "F.layer_norm (native)",
}

# How the C library's malloc treats the memory of freed tensors, for the LayerNorm
# figures. "default": glibc as it comes, which hands large freed blocks back to the
# operating system, so that a new (N, D) tensor costs a page fault per 4 KiB page on its
# first write, more or fewer of them from one call to the next depending on where the
# previous call's blocks lay. "kept": the same glibc told through GLIBC_TUNABLES to keep
# freed memory for reuse (the largest tensors here are 16 MiB, under the 32 MiB
# threshold, so they all come from the reused heap), as jemalloc or tcmalloc would, or
# as PyTorch's own caching allocator does on a GPU: what is left is the cost of the code.
MALLOC_MODES = {
    "default": "",
    "kept": "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295",
}
MALLOC_LABELS = {"default": "malloc as it comes", "kept": "freed memory kept"}
# The LayerNorm budget is a budget on the code's cost, so it is judged where page faults
# do not decide the figure; the "default" rows stay in the table, with their faults.
BUDGET_LN_MODE = "kept"


def layernorm_calls(shape: tuple[int, ...]) -> tuple[dict, dict]:
    """(forward, forward + backward) callables of the four LayerNorms on one input."""
    import torch
    import torch.nn.functional as F

    from course_lib.autograd import LayerNormFunction

    d = shape[-1]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).requires_grad_()  # (B, T, C)
    grad_y = torch.randn(shape, generator=gen)  # the gradient arriving from above
    weight = (1 + 0.1 * torch.randn(d, generator=gen)).requires_grad_()
    bias = (0.1 * torch.randn(d, generator=gen)).requires_grad_()
    notes = notes_layer_norm_module(d)
    notes_sq = notes_layer_norm_module(d, var_as_mean_of_squares=True)
    forward = {
        "notes": lambda: notes(x),
        "notes_sq": lambda: notes_sq(x),
        "course": lambda: LayerNormFunction.apply(x, (d,), weight, bias, LN_EPS),
        "native": lambda: F.layer_norm(x, (d,), weight, bias, LN_EPS),
    }
    wrt = {
        "notes": (x, notes.scale, notes.shift),
        "notes_sq": (x, notes_sq.scale, notes_sq.shift),
        "course": (x, weight, bias),
        "native": (x, weight, bias),
    }

    def with_backward(name: str) -> Callable[[], object]:
        return lambda: torch.autograd.grad(forward[name](), wrt[name], grad_y)

    return forward, {name: with_backward(name) for name in forward}


def layernorm_child(name: str, shape: tuple[int, ...], rounds: int, inner: int) -> None:
    """Time one LayerNorm at one shape in this (fresh) process; print JSON lines.

    For each direction: the median over ``rounds`` of the mean time of ``inner`` calls,
    after two warm-up calls, and the page faults per call.
    """
    import json
    import resource

    import torch

    torch.set_num_threads(1)
    for kind, fns in zip(("fwd", "fwd+bwd"), layernorm_calls(shape), strict=True):
        fn = fns[name]
        for _ in range(2):
            fn()
        samples = []
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - start) / inner)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        record = {
            "kind": kind,
            "seconds": statistics.median(samples),
            "faults": faults / (rounds * inner),
        }
        print(json.dumps(record), flush=True)


def run_layernorm_child(
    name: str, shape: tuple[int, ...], mode: str, rounds: int, inner: int
) -> list[dict] | None:
    import json

    env = child_env()
    env.pop("GLIBC_TUNABLES", None)
    if MALLOC_MODES[mode]:
        env["GLIBC_TUNABLES"] = MALLOC_MODES[mode]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--layernorm-child", name]
    cmd += ["--shape", ",".join(map(str, shape)), "--rounds", str(rounds), "--inner", str(inner)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def bench_layernorm(processes: int, rounds: int, inner: int, notes: list[str]) -> list[Row]:
    """Each LayerNorm at each shape in ``processes`` fresh processes, taking turns.

    A fresh process per implementation and shape keeps one measurement's freed tensors
    from deciding where the next one's land (a training script uses one LayerNorm at one
    shape); taking turns spreads a change of machine load over all of them.
    """
    import torch

    torch.set_num_threads(1)
    seconds: dict[tuple, list[float]] = {}
    faults: dict[tuple, list[float]] = {}
    for _ in range(processes):
        for shape in LN_SHAPES:
            for mode in MALLOC_MODES:
                for name in LN_LABELS:
                    records = run_layernorm_child(name, shape, mode, rounds, inner)
                    if records is None:
                        notes.append(f"LayerNorm {name} {shape} ({mode}) failed to run")
                        continue
                    for r in records:
                        key = (mode, shape, r["kind"], name)
                        seconds.setdefault(key, []).append(r["seconds"])
                        faults.setdefault(key, []).append(r["faults"])
    rows: list[Row] = []
    for shape in LN_SHAPES:
        n_rows, features = math.prod(shape[:-1]), shape[-1]
        calls = dict(zip(("fwd", "fwd+bwd"), layernorm_calls(shape), strict=True))
        for kind, modes in (("fwd", ("default",)), ("fwd+bwd", tuple(MALLOC_MODES))):
            passes = {n: count_passes(fn, n_rows, features) for n, fn in calls[kind].items()}
            for mode in modes:
                t = {n: median(seconds.get((mode, shape, kind, n), [])) for n in LN_LABELS}
                for name in LN_LABELS:
                    ratio, budget, ok = "", "", None
                    if t[name] is not None and t["native"]:
                        ratio = f"{t[name] / t['native']:.2f}x native"
                    if name == "course" and kind == "fwd+bwd" and None not in t.values():
                        speedup = t["notes"] / t["course"]
                        ratio += f"; notes'/this {speedup:.1f}x"
                    if name == "course" and kind == "fwd+bwd" and mode == BUDGET_LN_MODE:
                        budget = (
                            f"<= {BUDGET_LN_VS_NATIVE:.0f}x native; "
                            f"notes'/this >= {BUDGET_LN_VS_NOTES:.0f}x"
                        )
                        ok = (
                            None not in t.values()
                            and t["course"] <= BUDGET_LN_VS_NATIVE * t["native"]
                            and t["notes"] / t["course"] >= BUDGET_LN_VS_NOTES
                        )
                    per_call = median(faults.get((mode, shape, kind, name), []))
                    what = f"LayerNorm {shape} {kind}, {MALLOC_LABELS[mode]}: {LN_LABELS[name]}"
                    rows.append(
                        Row(
                            what,
                            t[name],
                            len(seconds.get((mode, shape, kind, name), [])),
                            ratio,
                            fmt_passes(passes[name]),
                            budget,
                            verdict(ok),
                            faults="" if per_call is None else f"{per_call:.0f}",
                        )
                    )
    return rows


# --- main ---------------------------------------------------------------------------------


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per notebook, nbval run and build (3)"
    )
    parser.add_argument(
        "--rounds", type=int, default=15, help="timed rounds per LayerNorm figure (15)"
    )
    parser.add_argument("--inner", type=int, default=3, help="calls per LayerNorm round (3)")
    parser.add_argument(
        "--processes",
        type=int,
        default=5,
        help="fresh processes per LayerNorm, shape and malloc setting (5)",
    )
    # internal: time one LayerNorm at one shape in this process, print JSON lines
    parser.add_argument("--layernorm-child", choices=sorted(LN_LABELS), help=argparse.SUPPRESS)
    parser.add_argument("--shape", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    if min(args.repeat, args.rounds, args.inner, args.processes) < 1:
        parser.error("--repeat, --rounds, --inner and --processes must be >= 1")
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if args.layernorm_child:
        shape = tuple(int(n) for n in args.shape.split(","))
        layernorm_child(args.layernorm_child, shape, args.rounds, args.inner)
        return 0

    import torch

    start = time.perf_counter()
    load_before = load_average()
    notes: list[str] = []
    results: dict[str, list[Row]] = {}
    if "layernorm" in only:  # first: it is the most sensitive to what ran before it
        results["layernorm"] = bench_layernorm(args.processes, args.rounds, args.inner, notes)
    if "chapters" in only:
        results["chapters"] = bench_notebooks(args.repeat, notes)
    if "nbval" in only:
        results["nbval"] = bench_nbval(args.repeat, notes)
    if "build" in only:
        results["build"] = bench_build(args.repeat, notes)
    rows = [row for section in SECTIONS for row in results.get(section, [])]

    print(
        f"# make bench: {platform.node() or 'machine'}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__}, one thread per process; "
        f"load average before {load_before}"
    )
    print(
        f"# median of {args.repeat} runs per notebook, nbval run and build; LayerNorm: median "
        f"of {args.processes} fresh processes per implementation, each the median of "
        f"{args.rounds} rounds of {args.inner} calls, float32; faults: page faults per call"
    )
    print_table(rows)
    for note in notes:
        print(f"# note: {note}")
    elapsed = time.perf_counter() - start
    print(f"# load average after {load_average()}; bench ran for {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
