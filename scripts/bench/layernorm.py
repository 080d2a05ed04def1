r"""Four LayerNorms side by side, each at each shape in fresh processes.

At two training-like shapes, float32, one thread: (a) the notes' module as the notes
write it, ``mean``, ``var(unbiased=False)``, ``(x - mean) / sqrt(var + eps)``,
``scale * x + shift``, differentiated by autograd through those operations; (a') the
same with the variance written as ``((x - mean) ** 2).mean()``, to show how much of
(a)'s time is ``torch.var``'s CPU kernel; (b)
``course_lib.autograd.LayerNormFunction`` with the hand-derived backward; (c)
``torch.nn.functional.layer_norm``. Forward (inputs requiring grad, as in training)
and forward + backward (``torch.autograd.grad`` for the input, the weight and the
bias; nothing accumulates in ``.grad``).

Each implementation at each shape runs in a fresh process (a training script uses
one LayerNorm at one shape, and one implementation's freed tensors must not decide
where another's land), ``--processes`` times, the processes taking turns so that a
change of machine load hits all of them alike. The protocol: the bench runs

  python -m scripts.bench --layernorm-child NAME --shape B,T,C --rounds R --inner I

which prints one JSON line per direction (``kind``, ``seconds``, ``faults``).

Twice over, see ``MALLOC_MODES``: with the C library's malloc as it comes, and with
glibc told to keep freed memory for reuse. Budget, judged on the second: (b)'s
forward + backward at most 3x (c)'s, and at least 3x faster than (a)'s.

torch is imported inside the functions: it reads ``OMP_NUM_THREADS`` once, when it
is first imported, and the bench's ``main()`` sets ``scripts/kernel.env``'s pins
first.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from .passes import count_passes, fmt_passes
from .processes import ROOT, child_env
from .table import Row, median, verdict

BUDGET_LN_VS_NATIVE = 3.0  # course_lib fwd+bwd <= 3x F.layer_norm
BUDGET_LN_VS_NOTES = 3.0  # ... and >= 3x faster than the notes' module

LN_SHAPES = ((32, 128, 256), (8, 512, 1024))  # (B, T, C): training-like activations
LN_EPS = 1e-5
LN_LABELS = {
    "notes": "notes' module, autograd",
    "notes_sq": "notes' module, var as mean of squares",
    "course": "course_lib LayerNormFunction",
    "native": "F.layer_norm (native)",
}

# How the C library's malloc treats the memory of freed tensors, for the LayerNorm
# figures. "default": glibc as it comes, which hands large freed blocks back to the
# operating system whenever the memory freed together passes its trim threshold
# (about twice the largest block), so that a new (N, D) tensor costs a page fault
# per 4 KiB page on its first write, more or fewer of them from one call to the next
# depending on where the previous call's blocks lay: these rows measure the
# allocator's heuristic as much as the code, and the ``faults`` column (page faults
# per call) shows how much. "kept": the same glibc told through GLIBC_TUNABLES to
# keep freed memory for reuse (the largest tensors here are 16 MiB, under the 32 MiB
# threshold, so they all come from the reused heap), as jemalloc or tcmalloc would,
# or as PyTorch's own caching allocator does on a GPU: what is left is the cost of
# the code.
MALLOC_MODES = {
    "default": "",
    "kept": "glibc.malloc.mmap_threshold=33554432"
    ":glibc.malloc.trim_threshold=4294967295",
}
MALLOC_LABELS = {"default": "malloc as it comes", "kept": "freed memory kept"}
# The LayerNorm budget is a budget on the code's cost, so it is judged where page
# faults do not decide the figure; the "default" rows stay in the table, with their
# faults.
BUDGET_LN_MODE = "kept"


def notes_layer_norm_module(emb_dim: int, *, var_as_mean_of_squares: bool = False):
    """The notes' LayerNorm class, line for line; autograd differentiates its
    operations."""
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


def layernorm_calls(shape: tuple[int, ...]) -> tuple[dict, dict]:
    """(forward, forward + backward) callables of the four LayerNorms on one
    input."""
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


def child(name: str, shape: tuple[int, ...], rounds: int, inner: int) -> int:
    """Time one LayerNorm at one shape in this (fresh) process; print JSON lines.

    For each direction: the median over ``rounds`` of the mean time of ``inner``
    calls, after two warm-up calls, and the page faults per call. Exit status 1,
    with a line on stderr, if the process does not run one thread as kernel.env
    pins.
    """
    import torch

    if torch.get_num_threads() != 1:
        print(
            f"torch runs {torch.get_num_threads()} threads, not 1", file=sys.stderr
        )
        return 1
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
    return 0


def run_child(
    name: str, shape: tuple[int, ...], mode: str, rounds: int, inner: int
) -> list[dict] | str:
    """The records of one fresh child process, or why it failed."""
    env = child_env()
    env.pop("GLIBC_TUNABLES", None)
    if MALLOC_MODES[mode]:
        env["GLIBC_TUNABLES"] = MALLOC_MODES[mode]
    cmd = [sys.executable, "-m", __package__, "--layernorm-child", name]
    cmd += [
        "--shape",
        ",".join(map(str, shape)),
        "--rounds",
        str(rounds),
        "--inner",
        str(inner),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (
            proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        )[-1]
        return last
    return [
        json.loads(line)
        for line in proc.stdout.splitlines()
        if line.startswith("{")
    ]


def bench_layernorm(
    processes: int, rounds: int, inner: int, notes: list[str]
) -> list[Row]:
    """Each LayerNorm at each shape in ``processes`` fresh processes, taking turns.

    A fresh process per implementation and shape keeps one measurement's freed
    tensors from deciding where the next one's land (a training script uses one
    LayerNorm at one shape); taking turns spreads a change of machine load over all
    of them.
    """
    seconds: dict[tuple, list[float]] = {}
    faults: dict[tuple, list[float]] = {}
    for _ in range(processes):
        for shape in LN_SHAPES:
            for mode in MALLOC_MODES:
                for name in LN_LABELS:
                    records = run_child(name, shape, mode, rounds, inner)
                    if isinstance(records, str):
                        notes.append(
                            f"LayerNorm {name} {shape} ({mode}) failed: {records}"
                        )
                        continue
                    for r in records:
                        key = (mode, shape, r["kind"], name)
                        seconds.setdefault(key, []).append(r["seconds"])
                        faults.setdefault(key, []).append(r["faults"])
    rows: list[Row] = []
    for shape in LN_SHAPES:
        n_rows, features = math.prod(shape[:-1]), shape[-1]
        calls = dict(zip(("fwd", "fwd+bwd"), layernorm_calls(shape), strict=True))
        for kind, modes in (
            ("fwd", ("default",)),
            ("fwd+bwd", tuple(MALLOC_MODES)),
        ):
            passes = {
                n: count_passes(fn, n_rows, features)
                for n, fn in calls[kind].items()
            }
            for mode in modes:
                t = {
                    n: median(seconds.get((mode, shape, kind, n), []))
                    for n in LN_LABELS
                }
                for name in LN_LABELS:
                    ratio, budget, ok = "", "", None
                    if t[name] is not None and t["native"]:
                        ratio = f"{t[name] / t['native']:.2f}x native"
                    if (
                        name == "course"
                        and kind == "fwd+bwd"
                        and None not in t.values()
                    ):
                        speedup = t["notes"] / t["course"]
                        ratio += f"; notes'/this {speedup:.1f}x"
                    if (
                        name == "course"
                        and kind == "fwd+bwd"
                        and mode == BUDGET_LN_MODE
                    ):
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
                    what = (
                        f"LayerNorm {shape} {kind}, {MALLOC_LABELS[mode]}: "
                        f"{LN_LABELS[name]}"
                    )
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
