"""``setup()``: the first call of every chapter notebook.

It makes a fresh run print exactly what the stored outputs show: fixed seeds, one
thread (float sums change with the thread count), deterministic kernels, fixed print
precision, and figures as PNG (which nbval does not compare byte by byte).
"""

from __future__ import annotations

import random
import textwrap
import warnings
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import numpy as np
import torch

__all__ = ["LINE_LENGTH", "Table", "below", "check", "note_agrees", "setup", "wrap"]


def _use_deterministic_algorithms() -> None:
    """Make eager torch ops deterministic (or raise where they cannot be).

    ``torch.use_deterministic_algorithms(True)`` also sets a flag of
    ``torch.compile``'s inductor backend, and importing it costs about 1.3 s of CPU
    per kernel. Nothing in the course compiles, so set the eager flag directly when
    torch exposes it.
    """
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if set_flag is None:  # pragma: no cover - another torch version
        torch.use_deterministic_algorithms(True)
    else:
        set_flag(True, warn_only=False)


def setup(seed: int = 0) -> None:
    """Seed everything, use one thread, fix print options and the figure style.

    Call it first in a notebook, and again with a seed before an experiment that
    must not depend on what ran before it.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    torch.set_num_threads(1)
    _use_deterministic_algorithms()
    # Deterministic mode also fills every new uninitialized tensor with NaN, a
    # debugging aid for code that reads memory it never wrote. Nothing in the course
    # does (nbval would see a NaN), and the fill costs about 15% of a small training
    # run.
    torch.utils.deterministic.fill_uninitialized_memory = False
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - readers may use the legacy global RNG
    torch.manual_seed(seed)
    torch.set_printoptions(precision=4, sci_mode=False, linewidth=100)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    # Third-party deprecation chatter would land on stderr in the stored outputs.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)

    from .plotting import apply_style

    apply_style()


class Table:
    """A small table that renders as HTML in the book and as aligned text elsewhere.

    Numbers are printed with ``digits`` significant digits, so the stored output is
    the same on every run; floats with ``abs(value) <= zero_below`` (round-off, e.g.
    the mean of a column that was just centred) print as ``0``.
    """

    def __init__(
        self,
        rows: list[list[object]] | list[tuple[object, ...]],
        columns: list[str] | tuple[str, ...],
        *,
        digits: int = 4,
        caption: str = "",
        zero_below: float = 0.0,
    ) -> None:
        if not isinstance(columns, (list, tuple)) or not columns:
            raise ValueError("columns must be a non-empty list of column names")
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
            raise ValueError(f"digits must be a positive int, got {digits!r}")
        rows = [list(r) for r in rows]
        for i, row in enumerate(rows):
            if len(row) != len(columns):
                raise ValueError(
                    f"row {i} has {len(row)} cells for {len(columns)} columns"
                )
        self.columns = [str(c) for c in columns]
        self.rows = rows
        self.digits = digits
        self.caption = caption
        self.zero_below = float(zero_below)

    def _cell(self, value: object) -> str:
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or value is None:
            return str(value)
        if isinstance(value, float):
            if abs(value) <= self.zero_below:
                # never print "-0"; round-off below zero_below prints as 0
                return "0"
            text = f"{value:#.{self.digits}g}"  # '#' keeps trailing zeros: 2.000
            # but not a bare point: 231
            return text[:-1] if text.endswith(".") else text
        return str(value)

    def _cells(self) -> list[list[str]]:
        return [[self._cell(v) for v in row] for row in self.rows]

    def __repr__(self) -> str:
        cells = self._cells()
        widths = [
            max(len(c), *(len(r[j]) for r in cells))
            for j, c in enumerate(self.columns)
        ]
        lines = [self.caption] if self.caption else []
        lines.append(
            "  ".join(c.rjust(w) for c, w in zip(self.columns, widths, strict=True))
        )
        lines.append("  ".join("-" * w for w in widths))
        lines += [
            "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True))
            for r in cells
        ]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        # A column without a name (the row labels' column, usually) has an empty
        # corner cell: a <td>, since an empty <th> is a header that a screen reader
        # announces as nothing (axe-core's empty-table-header).
        head = "".join(
            f"<th>{escape(c)}</th>" if c.strip() else "<td></td>"
            for c in self.columns
        )
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(v)}</td>" for v in r) + "</tr>"
            for r in self._cells()
        )
        cap = f"<caption>{escape(self.caption)}</caption>" if self.caption else ""
        return (
            f'<table class="course-table">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )


#: The longest printed line, the code column's width at desktop width (CONTRIBUTING,
#: "The notebook", rule 8).
LINE_LENGTH = 84


def wrap(text: str, indent: int = 4) -> str:
    """``text`` with every line longer than ``LINE_LENGTH`` wrapped at spaces.

    A continuation line starts at the line's own indentation plus ``indent`` spaces,
    so a printed line fits the book's code column instead of scrolling sideways.
    Lines that fit, and words longer than a line, are left as they are.

    Example:
        >>> from course_lib.notebook import wrap
        >>> text = wrap("  M(" + ", ".join(f"arg{i}=1" for i in range(20)) + ")")
        >>> [(len(line), line[:9]) for line in text.splitlines()]
        [(83, '  M(arg0='), (77, '      arg'), (23, '      arg')]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if isinstance(indent, bool) or not isinstance(indent, int) or indent < 0:
        raise ValueError(f"indent must be a non-negative int, got {indent!r}")
    lines = []
    for line in text.split("\n"):
        if len(line) <= LINE_LENGTH:
            lines.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip(" "))]
        lines.append(
            textwrap.fill(
                line,
                width=LINE_LENGTH,
                subsequent_indent=lead + " " * indent,
                break_long_words=False,
                break_on_hyphens=False,
                replace_whitespace=False,
            )
        )
    return "\n".join(lines)


def check(label: str, passed: bool) -> None:
    """Print one self-check, ``PASS: ...`` or ``FAIL: ...``, instead of raising.

    A label too long for one line of ``LINE_LENGTH`` characters wraps at spaces, and
    its continuation lines are indented under the label's first word.
    """
    print(wrap(f"{'PASS' if passed else 'FAIL'}: {label}", indent=len("PASS: ")))


def below(value: float | torch.Tensor, bound: float) -> str:
    """``"< 1e-12"``: the claim that ``|value|`` is under ``bound``, never the value
    itself.

    Round-off (the difference between two ways of computing the same number) depends
    on the order in which a processor's kernels add, so its digits differ from
    machine to machine; the bound it stays under does not. A value at or above the
    bound prints as ``"1.2e-09 (NOT below 1e-12)"``, so a broken claim is visible in
    the output.

    Shape:
        ``value`` a float or a one-element tensor; returns a str.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"value must be a single number, got shape {tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"value must be a real number, got {type(value).__name__}")
    if (
        isinstance(bound, bool)
        or not isinstance(bound, (int, float))
        or not bound > 0
    ):
        raise ValueError(f"bound must be a positive number, got {bound!r}")
    if abs(value) < bound:
        return f"< {bound:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:.1e} (NOT below {bound:.0e})"


def note_agrees(note: str, value: float | torch.Tensor) -> bool:
    """The book's one rule for "the notes' number agrees": ``note``, as the notes
    print it, equals ``value`` rounded to the digits ``note`` shows.

    ``"1.09"`` agrees with 1.0854 and 1.0949 but not with 1.0954 (which rounds to
    1.10): being off by one in the last printed digit is a disagreement.

    Args:
        note (str): the number as printed, e.g. ``"2.60"`` (a float would lose the
            trailing zero that says how many digits were printed).
        value (float or Tensor): the computed value, a Python number or a
            one-element tensor.

    Shape:
        value: a number or a one-element tensor.

    Example:
        >>> from course_lib.notebook import note_agrees
        >>> note_agrees("1.09", 1.0954), note_agrees("1.10", 1.0954)
        (False, True)
    """
    if not isinstance(note, str):
        raise TypeError(f"note must be the number as printed, a str, got {note!r}")
    try:
        printed = Decimal(note.strip())
    except InvalidOperation:
        raise ValueError(f"note must be a decimal number, got {note!r}") from None
    if not printed.is_finite():
        raise ValueError(f"note must be a finite decimal number, got {note!r}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"value must be one number, got a tensor of shape "
                f"{tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"value must be a real number, got {type(value).__name__}")
    exact = Decimal(float(value))  # the float's exact binary value
    return exact.quantize(printed, rounding=ROUND_HALF_EVEN) == printed
