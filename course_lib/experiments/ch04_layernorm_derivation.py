r"""Chapter 4: LayerNorm derived row by row, and the measurements the chapter makes.

* :func:`layer_norm_std_eps`: the other widespread LayerNorm convention, unbiased
  standard deviation with ``eps`` added to it (the course notes' class, and the
  Annotated Transformer's), to set beside torch's biased variance with ``eps``
  inside the square root;
* :func:`invariance_table`: Table 1 of Ba et al. (2016), computed: which re-scalings
  and re-centerings of the weights or the data leave BatchNorm, LayerNorm and
  RMSNorm unchanged;
* :func:`correlated_tokens` / :func:`feature_correlation_stats`: does LayerNorm
  decorrelate features? (It does not, in general.)
* :func:`plot_row_steps`: a row through centering, scaling and the affine step, the
  figure behind the chapter's static picture and its interactive explorer;
* :func:`plot_normalized_geometry`: where normalized rows land, for D = 2 and D = 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import functional as CF
from .._checks import (
    check_choice,
    check_eps,
    check_float_tensor,
    check_int,
    check_real,
    check_seed,
)
from ..plotting import color, new_figure

__all__ = [
    "STEP_KINDS",
    "StepResult",
    "spread_after_one_step",
    "EXPECTED_INVARIANCE",
    "INVARIANCE_ALL",
    "INVARIANCE_NORMS",
    "INVARIANCE_TRANSFORMS",
    "CorrelationStats",
    "InvarianceResult",
    "correlated_tokens",
    "feature_correlation_stats",
    "invariance_table",
    "layer_norm_std_eps",
    "plot_normalized_geometry",
    "plot_row_steps",
]


# --------------------------------------------------------------------------- checks


# --------------------------------------------------------------------- conventions


def layer_norm_std_eps(input: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    r"""LayerNorm over the last dimension with the *unbiased* std and ``eps`` added
    to it.

    .. math::
        s = \sqrt{\frac{1}{D-1}\sum_j (x_j - \mu)^2},\qquad
        y_j = \frac{x_j - \mu}{s + \epsilon}

    This is the convention of the course notes' ``LayerNorm`` class (and of the
    Annotated Transformer), not torch's, which divides by
    :math:`\sqrt{\sigma^2
    + \epsilon}` with the biased :math:`\sigma^2` (divide by D).
    For rows whose spread is large next to ``eps`` the two differ by the constant
    factor
    :math:`\sqrt{D/(D-1)}`. No affine step: multiply by gamma and add beta yourself.

    Shape:
        input ``(*, D)`` with ``D >= 2`` (the unbiased std of one number is
        undefined); output as input.
    """
    x = check_float_tensor(input, "input")
    eps = check_eps(eps)
    if x.shape[-1] < 2:
        raise ValueError(
            "input must have at least 2 elements in its last dimension for an "
            "unbiased "
            f"std (divide by D - 1), got shape {tuple(x.shape)}"
        )
    mean = x.mean(dim=-1, keepdim=True)  # (*, 1)
    std = x.std(dim=-1, keepdim=True, unbiased=True)  # (*, 1), divides by D - 1
    return (x - mean) / (std + eps)


# ---------------------------------------------------------------------- invariance

#: The normalizations compared in the invariance table, in the table's order (names
#: of :data:`course_lib.norms.NORMS`; :data:`course_lib.norms.NORM_LABELS` prints
#: them).
INVARIANCE_NORMS: tuple[str, ...] = ("batch", "layer", "rms")
#: The columns of Table 1 of Ba et al. (2016), in their order.
INVARIANCE_TRANSFORMS: tuple[str, ...] = (
    "weight matrix re-scaling",
    "weight matrix re-centering",
    "weight vector re-scaling",
    "dataset re-scaling",
    "dataset re-centering",
    "single training case re-scaling",
)
#: What the papers state: Ba et al. (2016), Table 1, for BatchNorm and LayerNorm;
#: Zhang & Sennrich (2019), Table 1, for RMSNorm. True = invariant.
EXPECTED_INVARIANCE: dict[str, tuple[bool, ...]] = {
    "batch": (True, False, True, True, True, False),
    "layer": (True, True, False, True, False, True),
    "rms": (True, False, False, True, False, True),
    # Derived, not from a table of the paper: DyT (Zhu et al. 2025) squashes each
    # element on its own with a fixed slope, so no change of W or of X cancels.
    "dyt": (False, False, False, False, False, False),
}
#: Every normalization :func:`invariance_table` knows: chapter 9 adds DyT's column
#: (``alpha = 0.5``, the authors' default start) to the three of chapter 4.
INVARIANCE_ALL: tuple[str, ...] = (*INVARIANCE_NORMS, "dyt")


@dataclass(frozen=True)
class InvarianceResult:
    """One cell of the invariance table: how much the normalized output moved."""

    norm: str
    transform: str
    max_abs_diff: float  # max |output after - output before| over the whole batch
    invariant: bool  # max_abs_diff <= tol


def _normalizer(name: str, eps: float) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "batch":  # per hidden unit, over the cases of the batch
        return lambda a: CF.batch_norm(a, None, None, training=True, eps=eps)
    if name == "layer":  # per case, over the hidden units
        return lambda a: CF.layer_norm(a, a.shape[-1], eps=eps)
    if name == "rms":  # per case, no centering
        return lambda a: CF.rms_norm(a, a.shape[-1], eps=eps)
    if name == "dyt":  # per element, no statistics (eps unused)
        return lambda a: CF.dynamic_tanh(a, 0.5)
    raise ValueError(f"norms must name entries of {INVARIANCE_ALL}, got {name!r}")


def invariance_table(
    *,
    n_cases: int = 16,
    d_in: int = 8,
    d_hidden: int = 6,
    delta: float = 2.5,
    eps: float = 1e-10,
    tol: float = 1e-8,
    seed: int = 0,
    norms: tuple[str, ...] = INVARIANCE_NORMS,
) -> list[InvarianceResult]:
    r"""Compute Table 1 of Ba et al. (2016): which changes leave each normalization
    unchanged.

    A layer without bias computes the summed inputs :math:`a = X W^\top` of a batch
    :math:`X` (``n_cases`` x ``d_in``) through a weight matrix :math:`W`
    (``d_hidden`` x ``d_in``, one row per hidden unit), then normalizes :math:`a`.
    Each transform below changes :math:`W` or :math:`X`; the result records the
    largest change of the normalized output anywhere in the batch, and calls the
    normalization invariant when that change is at most ``tol`` (in float64, with
    ``eps`` small against the variances, an invariant output moves by rounding
    only):

    * weight matrix re-scaling: :math:`W' = \delta W`;
    * weight matrix re-centering: :math:`W' = W + \mathbf 1 c^\top` (the same vector
      added to every unit's incoming weights, so every unit's input moves by
      :math:`c^\top x`);
    * weight vector re-scaling: one unit's row of :math:`W` times :math:`\delta`;
    * dataset re-scaling: :math:`X' = \delta X`;
    * dataset re-centering: :math:`X' = X + \mathbf 1 c^\top` (every case moved by
      the same vector);
    * single training case re-scaling: one case (row of :math:`X`) times
      :math:`\delta`.

    ``delta`` must be positive: a negative factor flips the sign of every output.

    Shape:
        returns ``len(norms) * 6`` results, norms in the outer loop and the
        transforms in the order of :data:`INVARIANCE_TRANSFORMS`.
    """
    n_cases = check_int(n_cases, "n_cases", minimum=2)
    d_in = check_int(d_in, "d_in", minimum=1)
    d_hidden = check_int(d_hidden, "d_hidden", minimum=2)
    delta = check_real(delta, "delta", minimum=0.0)
    if delta == 1.0:
        raise ValueError("delta must differ from 1 (a factor of 1 changes nothing)")
    eps = check_eps(eps)
    tol = check_real(tol, "tol", minimum=0.0)
    seed = check_seed(seed)
    if not isinstance(norms, tuple) or not norms:
        raise TypeError(f"norms must be a non-empty tuple of names, got {norms!r}")
    fns = {name: _normalizer(name, eps) for name in norms}

    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    x = torch.randn(n_cases, d_in, generator=g, dtype=f64)  # (N, d_in)
    w = torch.randn(d_hidden, d_in, generator=g, dtype=f64)  # (H, d_in)
    c_w = torch.randn(d_in, generator=g, dtype=f64)  # re-centering vector for W
    c_x = torch.randn(d_in, generator=g, dtype=f64)  # re-centering vector for X

    def scale_row(m: torch.Tensor, i: int) -> torch.Tensor:
        m = m.clone()
        m[i] = delta * m[i]
        return m

    changed: dict[str, tuple[torch.Tensor, torch.Tensor]] = {
        "weight matrix re-scaling": (x, delta * w),
        # c_w broadcasts over the H rows
        "weight matrix re-centering": (x, w + c_w),
        "weight vector re-scaling": (x, scale_row(w, 0)),
        "dataset re-scaling": (delta * x, w),
        "dataset re-centering": (x + c_x, w),  # c_x broadcasts over the N cases
        "single training case re-scaling": (scale_row(x, 0), w),
    }
    results = []
    for name in norms:
        fn = fns[name]
        before = fn(x @ w.T)  # (N, H)
        for transform in INVARIANCE_TRANSFORMS:
            x2, w2 = changed[transform]
            diff = float((fn(x2 @ w2.T) - before).abs().max())
            results.append(InvarianceResult(name, transform, diff, diff <= tol))
    return results


# ------------------------------------------------------------- one gradient step

#: The updates :func:`spread_after_one_step` compares.
STEP_KINDS = ("sgd on x", "sgd + weight decay on x", "adam on x", "sgd on shared W")


@dataclass(frozen=True)
class StepResult:
    """What one update did to the rows that feed a LayerNorm."""

    rows: int  # rows updated
    shrunk: int  # rows whose centered norm |x - mean(x)| went down
    largest_mean_change: float  # over the rows, |mean(x_new) - mean(x)|


def spread_after_one_step(
    kind: str,
    *,
    lr: float = 0.5,
    weight_decay: float = 0.1,
    seed: int = 0,
) -> StepResult:
    r"""One update of what feeds ``F.layer_norm``, under the loss
    :math:`L = \sum g \odot \mathrm{LN}(x)` (``g`` a fixed random upstream
    gradient), and what it did to each row's spread.

    * ``"sgd on x"``: :math:`x \leftarrow x - \eta\nabla_x L`, 6 rows of 16 features
      (the chapter's case: the step is orthogonal to the centered row, so no row
      shrinks);
    * ``"sgd + weight decay on x"``: the same step plus ``weight_decay * x``;
    * ``"adam on x"``: one ``torch.optim.Adam`` step on ``x``, whose per-element
      normalization breaks the orthogonality;
    * ``"sgd on shared W"``: ``x = u W^T`` for 32 inputs ``u`` of 8 features and
      one matrix ``W`` (16, 8); one SGD step on ``W`` moves every row by a mixture
      of all rows' gradients.
    """
    kind = check_choice(kind, "kind", STEP_KINDS)
    lr = check_real(lr, "lr", minimum=0.0)
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0.0)
    g = torch.Generator().manual_seed(check_seed(seed))
    f64 = torch.float64
    if kind == "sgd on shared W":
        u = torch.randn(32, 8, generator=g, dtype=f64)
        w = torch.randn(16, 8, generator=g, dtype=f64).requires_grad_()
        upstream = torch.randn(32, 16, generator=g, dtype=f64)
        before = (u @ w.T).detach()
        (torch.nn.functional.layer_norm(u @ w.T, (16,)) * upstream).sum().backward()
        with torch.no_grad():
            w -= lr * w.grad
        after = (u @ w.T).detach()
    else:
        x = 3.0 * torch.randn(6, 16, generator=g, dtype=f64) + 2.0
        x.requires_grad_()
        upstream = torch.randn(6, 16, generator=g, dtype=f64)
        before = x.detach().clone()
        if kind == "adam on x":
            opt: torch.optim.Optimizer = torch.optim.Adam([x], lr=lr)
        else:
            decay = weight_decay if kind == "sgd + weight decay on x" else 0.0
            opt = torch.optim.SGD([x], lr=lr, weight_decay=decay)
        (torch.nn.functional.layer_norm(x, (16,)) * upstream).sum().backward()
        opt.step()
        after = x.detach()

    def spread(t: torch.Tensor) -> torch.Tensor:
        return (t - t.mean(-1, keepdim=True)).norm(dim=-1)

    return StepResult(
        rows=before.shape[0],
        shrunk=int((spread(after) < spread(before)).sum()),
        largest_mean_change=float((after.mean(-1) - before.mean(-1)).abs().max()),
    )


# --------------------------------------------------------------------- correlation


@dataclass(frozen=True)
class CorrelationStats:
    """Feature-by-feature statistics of a batch of tokens (features = columns)."""

    mean_abs_r: float  # mean |correlation| over the pairs of distinct features
    mean_r: float  # mean signed correlation over the same pairs
    # smallest per-feature standard deviation over the tokens
    feature_std_min: float
    feature_std_max: float  # largest one
    cov_eig_ratio: float  # smallest / largest eigenvalue of the feature covariance


def correlated_tokens(
    kind: Literal["common", "mixed", "offsets"],
    *,
    n_tokens: int = 2000,
    dim: int = 8,
    seed: int = 0,
) -> torch.Tensor:
    r"""A batch of tokens whose features are correlated, in float64.

    ``"common"``: every token is independent noise plus one shared offset,
    :math:`x = 3c\,\mathbf 1 + z` with :math:`c, z` standard normal, so all features
    move together. ``"mixed"``: :math:`x = zA` with a fixed random
    :math:`D \times D` matrix :math:`A`, so pairs of features are correlated in
    arbitrary directions. ``"offsets"``: :math:`x_j = a_j + b_j z_j` with fixed
    per-feature means :math:`a_j` from -4 to 4 and scales :math:`b_j` from 0.2 to 3,
    so the features differ in mean and scale across the tokens.

    Shape:
        output ``(n_tokens, dim)``.
    """
    n_tokens = check_int(n_tokens, "n_tokens", minimum=3)
    dim = check_int(dim, "dim", minimum=2)
    g = torch.Generator().manual_seed(check_seed(seed))
    z = torch.randn(n_tokens, dim, generator=g, dtype=torch.float64)
    if kind == "common":
        return 3.0 * torch.randn(n_tokens, 1, generator=g, dtype=torch.float64) + z
    if kind == "mixed":
        return z @ torch.randn(dim, dim, generator=g, dtype=torch.float64)
    if kind == "offsets":
        a = torch.linspace(-4.0, 4.0, dim, dtype=torch.float64)  # (dim,) means
        b = torch.linspace(0.2, 3.0, dim, dtype=torch.float64)  # (dim,) scales
        return a + b * z
    raise ValueError(f"kind must be 'common', 'mixed' or 'offsets', got {kind!r}")


def feature_correlation_stats(x: torch.Tensor) -> CorrelationStats:
    r"""Correlations between the features (columns) of a batch of tokens (rows).

    .. math:: r_{jk} = \frac{\operatorname{cov}(x_{:j}, x_{:k})}
        {\operatorname{std}(x_{:j})\operatorname{std}(x_{:k})},\quad j \ne k

    Shape:
        x ``(n_tokens, D)`` with ``n_tokens >= 3`` and ``D >= 2``.
    """
    x = check_float_tensor(x, "x", min_dim=2)
    if x.dim() != 2 or x.shape[0] < 3 or x.shape[1] < 2:
        raise ValueError(
            f"x must be (n_tokens >= 3, D >= 2), got shape {tuple(x.shape)}"
        )
    x = x.to(torch.float64)
    r = torch.corrcoef(x.T)  # (D, D)
    off = r[~torch.eye(x.shape[1], dtype=torch.bool)]
    std = x.std(dim=0, unbiased=False)
    eig = torch.linalg.eigvalsh(torch.cov(x.T))  # ascending
    return CorrelationStats(
        mean_abs_r=float(off.abs().mean()),
        mean_r=float(off.mean()),
        feature_std_min=float(std.min()),
        feature_std_max=float(std.max()),
        cov_eig_ratio=float(eig[0] / eig[-1]),
    )


# ------------------------------------------------------------------------- figures


def plot_row_steps(
    x: torch.Tensor,
    *,
    eps: float = 1e-5,
    gamma: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    labels: tuple[str, ...] | None = None,
) -> tuple[Figure, np.ndarray]:
    r"""One row through LayerNorm in four panels: input, centered, scaled, affine
    output.

    .. math:: x \;\to\; x - \mu \;\to\; \hat x = \frac{x
        - \mu}{\sqrt{\sigma^2+\epsilon}}
        \;\to\; y = \gamma\odot\hat x + \beta

    Each panel prints the numbers on the bars, and the mean and (biased) standard
    deviation of what it shows.

    Shape:
        x ``(D,)``; gamma and beta ``(D,)`` or None (1 and 0).
    """
    x = check_float_tensor(x, "x")
    if x.dim() != 1:
        raise ValueError(f"x must be one row, shape (D,), got {tuple(x.shape)}")
    d = x.shape[0]
    eps = check_eps(eps)
    x = x.to(torch.float64)
    gamma = (
        torch.ones(d, dtype=torch.float64)
        if gamma is None
        else gamma.to(torch.float64)
    )
    beta = (
        torch.zeros(d, dtype=torch.float64)
        if beta is None
        else beta.to(torch.float64)
    )
    if gamma.shape != (d,) or beta.shape != (d,):
        raise ValueError(f"gamma and beta must have shape ({d},) like x")
    if labels is None:
        labels = tuple(f"x{j + 1}" for j in range(d))
    if len(labels) != d:
        raise ValueError(
            f"labels must name the {d} elements of x, got {len(labels)}"
        )

    mu = x.mean()
    centered = x - mu
    var = (centered * centered).mean()
    x_hat = centered / torch.sqrt(var + eps)
    y = gamma * x_hat + beta
    steps = [
        ("1. input x", x, f"mean {mu.item():.3f}, std {var.sqrt().item():.3f}"),
        ("2. centered x - mean", centered, f"mean 0, std {var.sqrt().item():.3f}"),
        (
            "3. scaled: x_hat",
            x_hat,
            f"std sqrt(var/(var+eps)) = {x_hat.std(unbiased=False).item():.4f}",
        ),
        (
            "4. output gamma*x_hat + beta",
            y,
            f"mean {y.mean().item():.3f}, std {y.std(unbiased=False).item():.3f}",
        ),
    ]
    fig, axes = new_figure(ncols=2, nrows=2, width=7.0, height=5.4)
    pos = np.arange(d)
    for i, (ax, (title, values, note)) in enumerate(
        zip(axes.flat, steps, strict=True)
    ):
        vals = values.numpy()
        ax.bar(pos, vals, color=color(i), width=0.6)
        ax.axhline(0.0, color="black", linewidth=0.8)
        if i == 0:
            ax.axhline(
                mu.item(), color="grey", linestyle="--", linewidth=1.0, label="mean"
            )
            ax.legend(loc="lower right")
        for p, v in zip(pos, vals, strict=True):
            ax.annotate(
                f"{v:.2f}",
                (p, v),
                textcoords="offset points",
                xytext=(0, 3 if v >= 0 else -10),
                ha="center",
            )
        lo, hi = min(0.0, float(vals.min())), max(0.0, float(vals.max()))
        pad = 0.18 * max(hi - lo, 1e-12)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(pos, list(labels))
        ax.set_title(title)
        ax.set_xlabel(note)
    return fig, axes.ravel()  # the four steps in order, as a 2 x 2 grid


def plot_normalized_geometry(
    marked: dict[str, torch.Tensor] | None = None,
    *,
    n_random: int = 300,
    eps: float = 1e-5,
    seed: int = 5,
) -> tuple[Figure, np.ndarray]:
    r"""Where LayerNorm's outputs (before gamma and beta) land, for D = 2 and D = 3.

    Every normalized row has mean 0 and length
    :math:`\sqrt{D\sigma^2/(\sigma^2+\epsilon)} \approx \sqrt{D}`. Left:
    ``n_random``
    random two-feature inputs and their outputs, which fall on the two points
    :math:`(1, -1)` and :math:`(-1, 1)`; the notes' input :math:`[1, 2]` is marked.
    Right: ``n_random`` random three-feature rows, normalized and drawn in an
    orthonormal basis of the plane orthogonal to :math:`(1, 1, 1)`, where they lie
    on the circle of radius :math:`\sqrt 3`; each row of ``marked`` is drawn on it
    with its label.

    Shape:
        each value of ``marked`` ``(3,)``.
    """
    n_random = check_int(n_random, "n_random")
    eps = check_eps(eps)
    marked = {} if marked is None else marked
    if not isinstance(marked, dict):
        raise TypeError(
            f"marked must be a dict of label -> row, got {type(marked).__name__}"
        )
    for label, row in marked.items():
        row = check_float_tensor(row, f"marked[{label!r}]")
        if tuple(row.shape) != (3,):
            raise ValueError(
                f"marked[{label!r}] must have shape (3,), got {tuple(row.shape)}"
            )
    g = torch.Generator().manual_seed(check_seed(seed))
    f64 = torch.float64
    fig, (ax2, ax3) = new_figure(ncols=2, width=7.0, height=6.2)

    # D = 2: many inputs, two outputs
    x2 = 1.5 * torch.randn(n_random, 2, generator=g, dtype=f64)
    y2 = CF.layer_norm(x2, 2, eps=eps)  # (n_random, 2)
    # within 0.01 of (+-1, -+1)
    near = int(((y2.abs() - 1.0).abs() < 0.01).all(dim=1).sum())
    ax2.scatter(
        x2[:, 0], x2[:, 1], s=6, color="#AAAAAA", label=f"{n_random} random inputs"
    )
    ax2.plot([-4, 4], [4, -4], color=color(0), linewidth=1, label="zero-mean line")
    ax2.scatter(
        y2[:, 0],
        y2[:, 1],
        s=60,
        color=color(1),
        zorder=3,
        label=(
            f"their outputs ({near} of {n_random}\nwithin 0.01 of the two points)"
        ),
    )
    ax2.scatter(
        [1.0], [2.0], marker="s", color=color(3), zorder=3, label="input [1, 2]"
    )
    ax2.annotate(
        "[1, 2] and [100, 102]\nboth go here",
        (-1, 1),
        xytext=(-2.2, 3.2),
        arrowprops={"arrowstyle": "->", "color": "black"},
    )
    ax2.set_xlim(-4, 4)
    ax2.set_ylim(-4, 4)
    ax2.set_aspect("equal")
    ax2.set_xlabel("feature 1")
    ax2.set_ylabel("feature 2")
    ax2.set_title("D = 2: only (1, -1) and (-1, 1)")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16))

    # D = 3: a circle of radius sqrt(3) in the plane orthogonal to (1, 1, 1)
    basis = torch.tensor([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]], dtype=f64)
    basis = basis / basis.norm(dim=1, keepdim=True)  # (2, 3), orthonormal rows
    x3 = 2.0 * torch.randn(n_random, 3, generator=g, dtype=f64)
    # random offsets
    x3 = x3 + 5.0 * torch.randn(n_random, 1, generator=g, dtype=f64)
    p3 = CF.layer_norm(x3, 3, eps=eps) @ basis.T  # (n_random, 2)
    t = torch.linspace(0, 2 * math.pi, 200, dtype=f64)
    r3 = math.sqrt(3)
    ax3.plot(
        r3 * torch.cos(t),
        r3 * torch.sin(t),
        color=color(0),
        linewidth=1,
        label="radius sqrt(3)",
    )
    ax3.scatter(
        p3[:, 0], p3[:, 1], s=8, color="#888888", label=f"{n_random} random rows"
    )
    # distinct Okabe-Ito colours (orange, green, sky, purple, ...) and shapes
    colours, shapes = (1, 2, 4, 5, 3, 7), ("o", "s", "^", "D", "v", "P")
    for i, (label, row) in enumerate(marked.items()):
        p = CF.layer_norm(row.to(f64), 3, eps=eps) @ basis.T
        ax3.scatter(
            p[0],
            p[1],
            s=70,
            color=color(colours[i % 6]),
            marker=shapes[i % 6],
            edgecolors="black",
            linewidths=0.5,
            zorder=3,
            label=label,
        )
    ax3.set_aspect("equal")
    ax3.set_xlim(-2.6, 2.6)
    ax3.set_ylim(-2.6, 2.6)
    ax3.set_xlabel("coordinate along (1, -1, 0)/sqrt(2)")
    ax3.set_ylabel("coordinate along (1, 1, -2)/sqrt(6)")
    ax3.set_title("D = 3: a circle in the zero-mean plane")
    ax3.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16))
    return fig, np.array([ax2, ax3])
