r"""Appendix A: LayerNorm in floating point, and the measurements it makes.

* :func:`variance_naive`, :func:`variance_two_pass`, :func:`variance_welford`: three
  ways to compute a row's variance;
* :func:`offset_rows` / :func:`variance_errors`: rows with a large offset, and how
  many digits each variance method keeps on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import functional as CF
from .._checks import check_int, check_real, check_rows, check_seed

__all__ = [
    "STABLE_MARGIN",
    "VarianceErrors",
    "offset_rows",
    "variance_errors",
    "variance_naive",
    "variance_two_pass",
    "variance_welford",
]


# ------------------------------------------------------------------------ variance


def variance_naive(x: torch.Tensor) -> torch.Tensor:
    r"""Row variance by the one-pass textbook shortcut, in ``x``'s dtype.

    .. math:: \sigma^2 = \overline{x^2} - \bar x^{\,2}

    Two large, nearly equal numbers are subtracted: when the row's offset is large
    next to its spread, the digits that hold the variance cancel, and the result can
    even be negative. Shown for the lesson, not for use.

    Shape:
        x ``(*, D)``; output ``(*)``.
    """
    x = check_rows(x, "x")
    mean = x.mean(dim=-1)  # (*)
    return (x * x).mean(dim=-1) - mean * mean


def variance_two_pass(x: torch.Tensor) -> torch.Tensor:
    r"""Row variance by subtracting the mean first (two passes), in ``x``'s dtype.

    .. math:: \bar x = \frac{1}{D}\sum_j x_j,\qquad
        \sigma^2 = \frac{1}{D}\sum_j (x_j - \bar x)^2

    This is how ``course_lib.functional.layer_norm`` computes it.

    Shape:
        x ``(*, D)``; output ``(*)``.
    """
    return CF.moments(check_rows(x, "x"), -1)[1]  # functional's own statistics


def variance_welford(x: torch.Tensor) -> torch.Tensor:
    r"""Row variance by Welford's one-pass update (Welford, 1962), in ``x``'s dtype.

    One element at a time, for :math:`k = 1, \dots, D`:

    .. math::
        \delta = x_k - m_{k-1},\quad m_k = m_{k-1} + \frac{\delta}{k},\quad
        M_k = M_{k-1} + \delta\,(x_k - m_k),\qquad \sigma^2 = M_D / D

    Every quantity it adds up is a deviation from the running mean, so nothing large
    cancels. The running mean and sum are kept in ``x``'s dtype (a Python loop over
    the D columns, vectorized over the rows); fast kernels do the same in float32
    blocks.

    Shape:
        x ``(*, D)``; output ``(*)``.
    """
    x = check_rows(x, "x")
    n = x.shape[-1]
    mean = torch.zeros(x.shape[:-1], dtype=x.dtype)  # (*)
    m2 = torch.zeros_like(mean)
    for k in range(n):
        value = x[..., k]
        delta = value - mean
        mean = mean + delta / (k + 1)
        m2 = m2 + delta * (value - mean)
    return m2 / n


def offset_rows(
    offset: float,
    *,
    spread: float = 1.0,
    rows: int = 64,
    dim: int = 768,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> torch.Tensor:
    r"""Rows ``offset + spread * z``, ``z`` standard normal, drawn in float64,
    stored in ``dtype``.

    Storing is the first rounding: in a 16-bit dtype a large offset leaves too few
    digits for the spread (see the appendix).

    Shape:
        output ``(rows, dim)``.
    """
    offset = check_real(offset, "offset")
    spread = check_real(spread, "spread", minimum=0.0)
    rows = check_int(rows, "rows")
    dim = check_int(dim, "dim", minimum=2)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a floating-point torch.dtype, got {dtype!r}"
        )
    g = torch.Generator().manual_seed(check_seed(seed))
    z = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    return (offset + spread * z).to(dtype)


#: The appendix's claim: on float32 rows with offset 1e4 and spread 1, both stable
#: methods have a median relative error at least this many times smaller than the
#: naive formula's.
STABLE_MARGIN: float = 1e4


@dataclass(frozen=True)
class VarianceErrors:
    """Median relative error of each method against float64 on the same stored
    rows."""

    naive: float
    two_pass: float
    welford: float
    naive_negative: float  # fraction of rows whose naive variance is below zero


def variance_errors(x: torch.Tensor) -> VarianceErrors:
    r"""Relative errors of the three variance methods, computed in ``x``'s dtype.

    The reference is the two-pass variance of the *same stored values* in float64,
    so the errors measure the method, not the rounding of the data into ``x``'s
    dtype:

    .. math:: \mathrm{err} = \operatorname{median}_{\text{rows}}
        \frac{|\hat\sigma^2 - \sigma^2_{64}|}{\sigma^2_{64}}

    Shape:
        x ``(rows, D)``, no constant row (its relative error is undefined).
    """
    x = check_rows(x, "x")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D (rows, D), got shape {tuple(x.shape)}")
    ref = variance_two_pass(x.to(torch.float64))  # (rows,)
    if bool((ref == 0).any()):
        raise ValueError(
            f"x has a constant row once stored in {x.dtype}: its variance is 0 and "
            "a "
            "relative error is undefined"
        )

    def err(v: torch.Tensor) -> float:
        return float(((v.to(torch.float64) - ref).abs() / ref).median())

    naive = variance_naive(x)
    return VarianceErrors(
        naive=err(naive),
        two_pass=err(variance_two_pass(x)),
        welford=err(variance_welford(x)),
        naive_negative=float((naive < 0).double().mean()),
    )
