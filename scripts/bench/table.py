"""The bench's table: one ``Row`` per figure, printed with aligned columns."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


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


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


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
    widths = [
        max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(columns)
    ]
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
