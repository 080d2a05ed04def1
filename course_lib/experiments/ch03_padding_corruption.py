r"""Chapter 3: how PAD rows change batch statistics, and what keeps padding out.

The chapter's measurements are small enough to run in well under a second each; this
module holds what the notebook, its explorer and the claim tests share:

* :func:`shared_statistic` / :func:`reduction_axes_figure` - which elements of a
  ``(B, T, C)`` batch share one statistic under BatchNorm, masked BatchNorm,
  LayerNorm and RMSNorm, and the figure of it (after Wu & He, 2018, Fig. 2);
* :func:`feature_moments` - per-feature mean and biased variance over real
  positions;
* :func:`padding_law` - the closed form of those moments when a fraction ``p`` of
  the rows are all-zero PAD rows;
* :func:`pad_sequences` - stack sentences of different lengths into ``(B, T, C)``
  plus the padding mask;
* :func:`lengths_with_total` - sentence lengths with a given longest and total (the
  notes' 960 real tokens among 3,200 positions);
* :func:`sinusoidal_positions` - the positional encodings of Vaswani et al. (2017);
* :func:`token_outputs` / :func:`plot_token_outputs` - one token of the notes' batch
  through BatchNorm, masked BatchNorm and LayerNorm, for the static figure and the
  explorer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from .. import data
from .. import functional as CF
from .._checks import (
    check_choice,
    check_dtype,
    check_float_tensor,
    check_int,
    check_mask,
)
from ..plotting import bar_groups, color, new_figure

__all__ = [
    "NORM_KINDS",
    "TRACKED_SENTENCE",
    "feature_moments",
    "lengths_with_total",
    "other_sentence",
    "pad_sequences",
    "padding_law",
    "plot_token_outputs",
    "reduction_axes_figure",
    "shared_statistic",
    "sinusoidal_positions",
    "token_outputs",
]

#: The sentence the chapter follows through batches of different padding: the notes'
#: contextual vectors of "How are you today" (the second sentence of their batch).
TRACKED_SENTENCE: tuple[str, ...] = data.PADDED_TOKENS[1]

_POOL_SIZE = 64  # longest "other sentence" the explorer can build

#: The four norms of the reduction-axes figure, in its panel order.
NORM_KINDS: tuple[str, ...] = (
    "batchnorm",
    "masked_batchnorm",
    "layernorm",
    "rmsnorm",
)
_KIND_TITLES = {
    "batchnorm": "BatchNorm: mean and variance\n"
    "per feature, over all B x T (PAD too)",
    "masked_batchnorm": "masked BatchNorm: mean and variance\n"
    "per feature, over real tokens only",
    "layernorm": "LayerNorm: mean and variance\nper token, over C",
    "rmsnorm": "RMSNorm: mean of squares (no centering)\nper token, over C",
}


def shared_statistic(
    kind: str,
    mask: torch.Tensor,
    channels: int,
    *,
    token: tuple[int, int] = (0, 0),
    channel: int = 0,
) -> torch.Tensor:
    r"""Which elements of a ``(B, T, C)`` batch one statistic of a norm is taken
    over.

    BatchNorm reduces over the batch and position axes, one statistic per channel
    (``channel`` picks which); masked BatchNorm does the same over the real
    positions only; LayerNorm and RMSNorm reduce over the channel axis, one
    statistic per token (``token`` = ``(b, t)`` picks which):

    .. math::
        \text{BN: } \{(b, t, c_0)\},\quad
        \text{masked BN: } \{(b, t, c_0) : \mathrm{mask}_{b,t}\},\quad
        \text{LN, RMS: } \{(b_0, t_0, c)\}

    Shape:
        mask ``(B, T)`` bool (True = real token); returns ``(B, T, channels)``
        bool.
    """
    kind = check_choice(kind, "kind", NORM_KINDS)
    mask = check_dtype(mask, "mask", torch.bool, "True = real token")
    if mask.dim() != 2 or mask.numel() == 0:
        raise ValueError(f"mask must have shape (B, T), got {tuple(mask.shape)}")
    channels = check_int(channels, "channels", minimum=1)
    n_b, n_t = mask.shape
    if not isinstance(token, tuple) or len(token) != 2:
        raise TypeError(f"token must be a (b, t) tuple, got {token!r}")
    b0 = check_int(token[0], "token[0]", minimum=0, maximum=n_b - 1)
    t0 = check_int(token[1], "token[1]", minimum=0, maximum=n_t - 1)
    c0 = check_int(channel, "channel", minimum=0, maximum=channels - 1)
    group = torch.zeros(n_b, n_t, channels, dtype=torch.bool)  # (B, T, C)
    if kind == "batchnorm":
        group[:, :, c0] = True  # reduce over dims (0, 1)
    elif kind == "masked_batchnorm":
        group[:, :, c0] = mask  # reduce over dims (0, 1), real positions only
    else:
        group[b0, t0, :] = True  # reduce over dim 2
    return group


def _lighten(hex_color: str, amount: float) -> tuple[float, float, float]:
    """``hex_color`` mixed with white (``amount`` of white), so that black text
    and hatching stay readable on it."""
    rgb = np.array(to_rgb(hex_color))
    return tuple((1 - amount) * rgb + amount)


def _cell_polygons(
    n_b: int, n_t: int, n_c: int, depth: tuple[float, float]
) -> list[tuple[str, tuple[int, int, int], np.ndarray]]:
    """The visible faces of a B x T x C block of cells, drawn in oblique
    projection: T to the right, B downwards, C into the page (up and right).

    Returns (face, (b, t, c), corners) for the front face (c = 0), the top face
    (b = 0) and the side face (t = T - 1)."""
    dx, dy = depth
    cells = []
    for b in range(n_b):
        y = n_b - 1 - b
        for t in range(n_t):
            corners = [(t, y), (t + 1, y), (t + 1, y + 1), (t, y + 1)]
            cells.append(("front", (b, t, 0), np.array(corners, dtype=float)))
    for t in range(n_t):
        for c in range(n_c):
            x0, y0 = t + c * dx, n_b + c * dy
            corners = [
                (x0, y0),
                (x0 + 1, y0),
                (x0 + 1 + dx, y0 + dy),
                (x0 + dx, y0 + dy),
            ]
            cells.append(("top", (0, t, c), np.array(corners, dtype=float)))
    for b in range(n_b):
        for c in range(n_c):
            x0, y0 = n_t + c * dx, n_b - 1 - b + c * dy
            corners = [
                (x0, y0),
                (x0 + dx, y0 + dy),
                (x0 + dx, y0 + 1 + dy),
                (x0, y0 + 1),
            ]
            cells.append(("side", (b, n_t - 1, c), np.array(corners, dtype=float)))
    return cells


def reduction_axes_figure(
    mask: torch.Tensor | None = None,
    channels: int = 3,
    *,
    token: tuple[int, int] = (0, 0),
    channel: int = 0,
) -> tuple[Figure, np.ndarray]:
    r"""Four panels, in the manner of Wu & He (2018), Fig. 2: which elements of a
    ``(B, T, C)`` batch share one statistic under each of :data:`NORM_KINDS`.

    Each panel draws the batch as a block of cells (T across, B down, C into the
    page); the cells of :func:`shared_statistic` are filled with the panel's
    colour, the others left white, and PAD positions (``mask`` False) are hatched.
    Each patch carries ``gid = "face:b,t,c"`` so a test can read the drawing back.
    ``mask=None`` draws the notes' two-sentence batch, labelled with its tokens.

    Shape:
        mask ``(B, T)`` bool; returns the figure and a ``(2, 2)`` array of axes.
    """
    words = None
    if mask is None:
        mask = CF.padding_mask(data.PADDED_LENGTHS, len(data.PADDED_TOKENS[0]))
        words = data.PADDED_TOKENS
    channels = check_int(channels, "channels", minimum=1, maximum=12)
    groups = {
        kind: shared_statistic(kind, mask, channels, token=token, channel=channel)
        for kind in NORM_KINDS
    }
    n_b, n_t = mask.shape
    if n_b > 12 or n_t > 12:
        raise ValueError(
            f"mask must be at most 12 x 12 to be drawn, got {tuple(mask.shape)}"
        )
    depth = (0.45, 0.38)
    fig, axes = new_figure(ncols=2, nrows=2, width=7.0, height=5.6)
    fig.set_facecolor("white")  # an opaque page, also in the book's dark mode
    for i, (ax, kind) in enumerate(zip(axes.flat, NORM_KINDS, strict=True)):
        shade = _lighten(color(i), 0.35)
        for face, (b, t, c), corners in _cell_polygons(n_b, n_t, channels, depth):
            filled = bool(groups[kind][b, t, c])
            ax.add_patch(
                Polygon(
                    corners,
                    closed=True,
                    facecolor=shade if filled else "white",
                    alpha=None,
                    edgecolor="black",
                    linewidth=0.8,
                    gid=f"{face}:{b},{t},{c}",
                )
            )
            if not bool(mask[b, t]):  # PAD: hatch on top, whether filled or not
                ax.add_patch(
                    Polygon(
                        corners,
                        closed=True,
                        facecolor="none",
                        edgecolor="black",
                        linewidth=0.0,
                        hatch="///",
                    )
                )
            if face == "front":
                label = "PAD" if not bool(mask[b, t]) else ""
                if words is not None and bool(mask[b, t]):
                    label = words[b][t]
                ax.text(
                    t + 0.5,
                    n_b - 0.5 - b,
                    label,
                    ha="center",
                    va="center",
                    color="black",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},
                )
        ax.text(n_t / 2, -0.35, "T (position)", ha="center", va="top")
        ax.text(
            -0.2,
            n_b / 2,
            "B (sentence)",
            ha="right",
            va="center",
            rotation=90,
        )
        ax.text(
            n_t + channels * depth[0] + 0.1,
            n_b + channels * depth[1] / 2,
            "C (feature)",
            ha="left",
            va="center",
        )
        ax.set_title(_KIND_TITLES[kind])
        ax.set_xlim(-0.9, n_t + channels * depth[0] + 1.6)
        ax.set_ylim(-0.9, n_b + channels * depth[1] + 0.2)
        ax.set_aspect("equal")
        ax.set_axis_off()
    b0, t0 = token
    which = f'"{words[b0][t0]}"' if words is not None else f"(b, t) = {token}"
    fig.text(
        0.5,
        0.01,
        f"Filled: the cells one statistic is computed from (feature {channel + 1} "
        f"for the BatchNorms, the token {which} for LayerNorm and RMSNorm); "
        "every other feature or token gets its own. Hatched: PAD.",
        ha="center",
        va="bottom",
        wrap=True,
    )
    return fig, axes


def feature_moments(
    x: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-feature mean and biased variance over all positions, or the real ones
    only.

    .. math::
        \mu_c = \frac{1}{n}\sum_{i} x_{ic},\qquad
        \sigma_c^2 = \frac{1}{n}\sum_{i} (x_{ic} - \mu_c)^2

    where ``i`` runs over every leading position, or over those where ``mask`` is
    True (``n`` of them). These are the statistics ``batch_norm`` normalizes with in
    training mode; the variance subtracts the mean first.

    Shape:
        x ``(*, C)``; mask ``x.shape[:-1]`` bool; returns two ``(C,)`` tensors.
    """
    x = check_float_tensor(x, "x", min_dim=2)
    rows = x.reshape(-1, x.shape[-1])  # (n_positions, C)
    if mask is not None:
        mask = check_mask(mask, "mask", tuple(x.shape[:-1]))
        rows = rows[mask.reshape(-1)]
    if rows.shape[0] == 0:
        raise ValueError(
            "feature_moments needs at least one position (mask selects none)"
        )
    return CF.moments(rows, 0)  # (C,) each


def padding_law(
    mean: torch.Tensor | float, var: torch.Tensor | float, p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Batch mean and variance after a fraction ``p`` of all-zero PAD rows is
    added.

    With real rows of mean :math:`\mu` and (biased) variance :math:`\sigma^2`:

    .. math::
        \mu_{\text{pad}} = (1-p)\,\mu,\qquad
        \sigma^2_{\text{pad}} = (1-p)\,\sigma^2 + p(1-p)\,\mu^2

    (the within-group plus the between-group variance of a two-group mixture). The
    law is exact for the empirical statistics when ``p`` is the exact fraction of
    PAD rows.

    Shape:
        mean and var scalars or ``(C,)`` (same shape); returns two tensors of that
        shape.
    """
    if (
        isinstance(p, bool)
        or not isinstance(p, (int, float))
        or not math.isfinite(p)
    ):
        raise TypeError(f"p must be a real number in [0, 1), got {p!r}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must be in [0, 1) (some rows must be real), got {p}")
    mean_t = (
        torch.as_tensor(mean, dtype=torch.float64)
        if not torch.is_tensor(mean)
        else mean
    )
    var_t = (
        torch.as_tensor(var, dtype=torch.float64)
        if not torch.is_tensor(var)
        else var
    )
    mean_t = check_float_tensor(mean_t, "mean", min_dim=0)
    var_t = check_float_tensor(var_t, "var", min_dim=0)
    if mean_t.shape != var_t.shape:
        raise ValueError(
            f"mean and var must have the same shape, got {tuple(mean_t.shape)} and "
            f"{tuple(var_t.shape)}"
        )
    if bool((var_t < 0).any()):
        raise ValueError("var must be >= 0")
    q = 1.0 - p
    return q * mean_t, q * var_t + p * q * mean_t * mean_t


def pad_sequences(
    sequences: Sequence[torch.Tensor], max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Stack sentences of different lengths into one zero-padded batch and its
    mask.

    .. math::
        x_{b,t} = s_{b,t} \text{ if } t < L_b \text{ else } 0,\qquad
        \mathrm{mask}_{b,t} = [t < L_b]

    ``max_len=None`` pads to the longest sentence; a larger ``max_len`` pads further
    (as a tokenizer with a fixed ``max_length`` does).

    Shape:
        each sequence ``(L_b, C)`` (same C and dtype); returns batch ``(B, T, C)``
        and mask ``(B, T)`` bool, with ``T = max_len`` or ``max(L_b)``.
    """
    if isinstance(sequences, torch.Tensor) or not isinstance(sequences, Sequence):
        raise TypeError(
            "sequences must be a list of (L, C) tensors, got "
            f"{type(sequences).__name__}"
        )
    if len(sequences) == 0:
        raise ValueError("sequences must hold at least one sentence")
    seqs = [
        check_float_tensor(s, f"sequences[{i}]", min_dim=2)
        for i, s in enumerate(sequences)
    ]
    first = seqs[0]
    for i, s in enumerate(seqs):
        if s.dim() != 2 or s.shape[1] != first.shape[1] or s.dtype != first.dtype:
            raise ValueError(
                f"sequences[{i}] must have shape (L, {first.shape[1]}) and dtype "
                f"{first.dtype}, got {tuple(s.shape)} {s.dtype}"
            )
    lengths = [s.shape[0] for s in seqs]
    longest = max(lengths)
    if max_len is None:
        max_len = longest
    else:
        check_int(max_len, "max_len", minimum=longest)
    batch = first.new_zeros(len(seqs), max_len, first.shape[1])  # (B, T, C)
    for b, s in enumerate(seqs):
        batch[b, : s.shape[0]] = s
    return batch, CF.padding_mask(lengths, max_len)


def lengths_with_total(
    batch_size: int, max_len: int, total: int, generator: torch.Generator
) -> list[int]:
    r"""Random sentence lengths in ``[1, max_len]`` whose longest is ``max_len``.

    .. math:: \max_b L_b = T,\qquad \sum_b L_b = \text{total}

    The first length is ``max_len`` (the sentence that sets the padded length); the
    others are drawn uniform on ``[1, 2m - 1]`` (clipped to ``max_len``), with ``m``
    their required mean, then nudged one token at a time, in a random order, until
    the total matches. Deterministic for a seeded ``generator``.

    Shape:
        returns a list of ``batch_size`` ints.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    max_len = check_int(max_len, "max_len", minimum=1)
    total = check_int(
        total,
        "total",
        minimum=max_len + (batch_size - 1),
        maximum=batch_size * max_len,
    )
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator, got {type(generator).__name__}"
        )
    if batch_size == 1:
        return [max_len]
    mean_rest = (total - max_len) / (batch_size - 1)
    high = min(max_len, max(1, round(2 * mean_rest - 1)))
    rest = torch.randint(
        1, high + 1, (batch_size - 1,), generator=generator
    ).tolist()
    lengths = [max_len, *rest]
    gap = total - sum(lengths)
    while gap != 0:
        step = 1 if gap > 0 else -1
        for b in torch.randperm(batch_size - 1, generator=generator).tolist():
            if gap != 0 and 1 <= lengths[b + 1] + step <= max_len:
                lengths[b + 1] += step
                gap -= step
    return lengths


def sinusoidal_positions(
    max_len: int, d_model: int, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    r"""Sinusoidal positional encodings (Vaswani et al., 2017).

    .. math::
        PE_{t, 2i} = \sin\!\left(t / 10000^{2i/d}\right),\qquad
        PE_{t, 2i+1} = \cos\!\left(t / 10000^{2i/d}\right)

    They are added at every position, PAD positions included.

    Shape:
        returns ``(max_len, d_model)``; ``d_model`` must be even.
    """
    max_len = check_int(max_len, "max_len", minimum=1)
    d_model = check_int(d_model, "d_model", minimum=2)
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    t = torch.arange(max_len, dtype=dtype)[:, None]  # (T, 1)
    # (d/2,)
    freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=dtype) / d_model)
    pe = torch.empty(max_len, d_model, dtype=dtype)
    pe[:, 0::2] = torch.sin(t * freq)
    pe[:, 1::2] = torch.cos(t * freq)
    return pe


def other_sentence(length: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Contextual vectors of a batch-mate sentence of ``length`` tokens.

    The first two tokens are the notes' "Hi", "Nitish"; later tokens are
    illustrative vectors drawn once from a fixed seed, uniform on [0, 10] and
    rounded to one decimal like the notes' values,

    .. math:: x_{t,c} \sim \mathrm{round}(U[0, 10], 1) \quad (t \ge 2).

    Shape:
        returns ``(length, 3)``, ``1 <= length <= 64``.
    """
    length = check_int(length, "length", minimum=1, maximum=_POOL_SIZE)
    real = data.contextual_batch(dtype)[0, :2]  # Hi, Nitish
    g = torch.Generator().manual_seed(3)
    extra = (
        torch.round(torch.rand(_POOL_SIZE - 2, 3, generator=g, dtype=dtype) * 100)
        / 10
    )
    return torch.cat([real, extra])[:length]


def token_outputs(
    len_other: int = 2, max_len: int = 4, token: int = 2, eps: float = 1e-5
) -> dict[str, torch.Tensor | float]:
    r"""One token of "How are you today" through three normalizations.

    The batch holds :func:`other_sentence` of ``len_other`` tokens and the tracked
    sentence, both zero-padded to ``max_len``. Returned: the token's output under
    BatchNorm over every row (PAD included), BatchNorm over real rows only
    (``mask=``), and LayerNorm, all without the affine step, plus the padding
    fraction ``p``:

    .. math::
        \text{BN: } \frac{x
        - \mu_{\text{all}}}{\sqrt{\sigma^2_{\text{all}}+\epsilon}},\quad
        \text{masked BN: } \frac{x
        - \mu_{\text{real}}}{\sqrt{\sigma^2_{\text{real}}+\epsilon}},
        \quad
        \text{LN: } \frac{x - \bar{x}}{\sqrt{\operatorname{var}(x)+\epsilon}}

    Shape:
        each output ``(3,)``; ``p`` a float.
    """
    len_other = check_int(len_other, "len_other", minimum=1, maximum=_POOL_SIZE)
    tracked = data.contextual_batch()[1]  # (4, 3)
    token = check_int(token, "token", minimum=0, maximum=tracked.shape[0] - 1)
    max_len = check_int(
        max_len, "max_len", minimum=max(len_other, tracked.shape[0])
    )
    # (2, T, 3)
    x, mask = pad_sequences([other_sentence(len_other), tracked], max_len)
    bn = CF.batch_norm(x, None, None, training=True, eps=eps)
    masked = CF.batch_norm(x, None, None, training=True, eps=eps, mask=mask)
    ln = CF.layer_norm(x, 3, eps=eps)
    return {
        "batchnorm": bn[1, token],
        "masked_batchnorm": masked[1, token],
        "layernorm": ln[1, token],
        "p": 1.0 - float(mask.sum()) / mask.numel(),
    }


def plot_token_outputs(
    len_other: int = 2, max_len: int = 4, token: int = 2, ax: Axes | None = None
) -> tuple[Figure, Axes]:
    r"""Grouped bars of :func:`token_outputs` for the three features of one token.

    ``max_len`` smaller than the longest sentence is raised to it (the explorer's
    sliders can ask for that), and the title says so.

    Shape:
        draws 3 groups (features) x 3 bars (normalizations).
    """
    len_other = check_int(len_other, "len_other", minimum=1, maximum=_POOL_SIZE)
    max_len = check_int(max_len, "max_len", minimum=1)
    padded_to = max(max_len, len_other, len(TRACKED_SENTENCE))
    out = token_outputs(len_other, padded_to, token)
    if ax is None:
        _, ax = new_figure(width=6.5, height=3.4)
    series = {
        "BatchNorm, PAD rows counted": out["batchnorm"].tolist(),
        "BatchNorm, mask= (real rows only)": out["masked_batchnorm"].tolist(),
        "LayerNorm": out["layernorm"].tolist(),
    }
    fig, ax = bar_groups(
        ax,
        ["feature 1", "feature 2", "feature 3"],
        series,
        ylabel="normalized value",
        title=(
            f'"{TRACKED_SENTENCE[token]}": other sentence {len_other} tokens, '
            "padded to "
            f"{padded_to} (p = {out['p']:.2f})"
            + ("" if padded_to == max_len else f" [raised from {max_len}]")
        ),
    )
    ax.axhline(0.0, color="black", linewidth=0.8)
    values = [v for vals in series.values() for v in vals]
    ax.set_ylim(min(-2.5, min(values) - 0.3), max(3.0, max(values) + 0.3))
    ax.legend(loc="lower left")
    return fig, ax
