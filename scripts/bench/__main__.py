"""``python -m scripts.bench`` (``make bench``): the command line, the table header.

    python -m scripts.bench [--repeat N] [--rounds N] [--inner N] [--processes N]
        [--only chapters,nbval,build,layernorm]

Runs the LayerNorm section first (it is the most sensitive to what ran before it),
then the others, and prints their rows in the order of ``SECTIONS``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence

from ..execute_notebooks import KERNEL
from . import __doc__ as package_doc
from .build import bench_build, bench_nbval
from .layernorm import LN_LABELS, bench_layernorm, child
from .notebooks import bench_notebooks
from .processes import load_average
from .table import Row, print_table

SECTIONS = ("chapters", "nbval", "build", "layernorm")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench", description=package_doc.splitlines()[0]
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per notebook, nbval run and build (3)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=15,
        help="timed rounds per LayerNorm figure (15)",
    )
    parser.add_argument(
        "--inner", type=int, default=3, help="calls per LayerNorm round (3)"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=5,
        help="fresh processes per LayerNorm, shape and malloc setting (5)",
    )
    # internal: time one LayerNorm at one shape in this process, print JSON lines
    parser.add_argument(
        "--layernorm-child", choices=sorted(LN_LABELS), help=argparse.SUPPRESS
    )
    parser.add_argument("--shape", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(
            f"--only: unknown section(s) {unknown}; choose from {list(SECTIONS)}"
        )
    if min(args.repeat, args.rounds, args.inner, args.processes) < 1:
        parser.error("--repeat, --rounds, --inner and --processes must be >= 1")
    # before torch is first imported: it reads them once
    os.environ.update(KERNEL.environment)
    if args.layernorm_child:
        shape = tuple(int(n) for n in args.shape.split(","))
        return child(args.layernorm_child, shape, args.rounds, args.inner)

    import torch

    start = time.perf_counter()
    load_before = load_average()
    notes: list[str] = []
    results: dict[str, list[Row]] = {}
    if "layernorm" in only:  # first: it is the most sensitive to what ran before it
        results["layernorm"] = bench_layernorm(
            args.processes, args.rounds, args.inner, notes
        )
    if "chapters" in only:
        results["chapters"] = bench_notebooks(args.repeat, notes)
    if "nbval" in only:
        results["nbval"] = bench_nbval(args.repeat, notes)
    if "build" in only:
        results["build"] = bench_build(args.repeat, notes)
    rows = [row for section in SECTIONS for row in results.get(section, [])]

    print(
        f"# make bench: {platform.node() or 'machine'}, {os.cpu_count()} CPUs, "
        "Python "
        f"{platform.python_version()}, torch {torch.__version__}, one thread per "
        "process; "
        f"load average before {load_before}"
    )
    print(
        f"# median of {args.repeat} runs per notebook, nbval run and build; "
        "LayerNorm: median "
        f"of {args.processes} fresh processes per implementation, each the median "
        "of "
        f"{args.rounds} rounds of {args.inner} calls, float32; faults: page faults "
        "per call"
    )
    print_table(rows)
    for note in notes:
        print(f"# note: {note}")
    elapsed = time.perf_counter() - start
    print(f"# load average after {load_average()}; bench ran for {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
