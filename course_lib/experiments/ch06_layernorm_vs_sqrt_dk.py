r"""Chapter 6: dividing by sqrt(d_k) against normalizing with LayerNorm, measured.

Scaled dot-product attention divides its logits by a constant, :math:`\sqrt{d_k}`;
LayerNorm divides a vector by its own spread. This module holds the measurements the
chapter makes of that difference:

* the variance of a dot product of random vectors (:func:`dot_product_variance`),
  which grows like :math:`d_k` (Vaswani et al., 2017, footnote 4);
* how saturated a softmax is (:func:`softmax_entropy`, :func:`softmax_jacobian`,
  :func:`softmax_jacobian_norm`, :func:`saturation_metrics`), and the gradient that
  reaches each query through it (:func:`query_gradients`, summarized over queries by
  :func:`spread`);
* four ways of turning queries and keys into attention logits
  (:func:`attention_logits`): no scaling, :math:`1/\sqrt{d_k}`, LayerNorm applied to
  the logits of each query, and QK-norm (LayerNorm applied to every query and key
  first);
* the logit variance of a freshly initialized Transformer block with and without the
  LayerNorm in front of its attention (:func:`block_logit_stats`), and the largest
  logit as its query and key weights grow (:func:`max_logit_under_weight_growth`);
* the chapter's figures (:func:`plot_saturation`, :func:`plot_attention_example`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .. import functional as CF
from .._checks import (
    check_choice,
    check_eps,
    check_float_tensor,
    check_int,
    check_query_key,
    check_real,
    check_rows,
    check_seed,
    check_sequence,
)
from ..plotting import color, new_figure
from ..transformer import TransformerBlock

__all__ = [
    "SCALINGS",
    "SCALING_LABELS",
    "BlockLogitStats",
    "SaturationMetrics",
    "Scaling",
    "Spread",
    "attention_example",
    "attention_logits",
    "block_logit_stats",
    "block_queries_keys",
    "dot_product_variance",
    "layernorm_logit_ceiling",
    "matched_query_weight",
    "max_logit_under_weight_growth",
    "plot_attention_example",
    "plot_saturation",
    "qk_norm_logit_bound",
    "qk_norm_weight_ceiling",
    "query_gradients",
    "query_scale_entropy",
    "sample_dot_products",
    "saturation_metrics",
    "softmax_entropy",
    "softmax_jacobian",
    "softmax_jacobian_norm",
    "spread",
]

#: The ways of turning queries and keys into attention logits that the chapter
#: compares.
Scaling = Literal["none", "sqrt_dk", "layernorm_logits", "qk_norm"]
#: All of them, in the order the chapter introduces them.
SCALINGS: tuple[str, ...] = get_args(Scaling)
#: How figures and tables name them.
SCALING_LABELS: dict[str, str] = {
    "none": "no scaling",
    "sqrt_dk": "divide by sqrt(d_k)",
    "layernorm_logits": "LayerNorm on the logits",
    "qk_norm": "QK-norm",
}


# --------------------------------------------------------------------------- checks


# ------------------------------------------------------------ dot-product variance


def sample_dot_products(
    d_k: int, n_samples: int = 20_000, *, seed: int = 0
) -> torch.Tensor:
    r"""Dot products :math:`q \cdot k` of independent standard-normal vectors.

    .. math::
        q, k \sim \mathcal N(0, I_{d_k})\ \text{independent},\qquad
        s = q \cdot k = \sum_{i=1}^{d_k} q_i k_i

    The vectors are drawn in float32 (what a model computes in) in chunks, so memory
    stays small for large ``d_k``; the dot products are returned in float64.

    Shape:
        output ``(n_samples,)``.
    """
    d_k = check_int(d_k, "d_k")
    n_samples = check_int(n_samples, "n_samples")
    gen = torch.Generator().manual_seed(check_seed(seed))
    chunk = max(1, 2**22 // d_k)  # about 16 MB of float32 per drawn matrix
    out = []
    for start in range(0, n_samples, chunk):
        n = min(chunk, n_samples - start)
        q = torch.randn(n, d_k, generator=gen)  # (n, d_k)
        k = torch.randn(n, d_k, generator=gen)  # (n, d_k)
        out.append((q * k).sum(dim=-1).double())  # (n,)
    return torch.cat(out)


def dot_product_variance(
    d_k: int, n_samples: int = 20_000, *, seed: int = 0
) -> float:
    r"""Sample variance of :math:`q \cdot k` for standard-normal ``q``, ``k`` in
    ``d_k`` dims.

    .. math::
        \widehat{\mathrm{Var}} = \frac{1}{n-1}\sum_{j=1}^{n} (s_j - \bar s)^2
        \;\approx\; \mathrm{Var}(q\cdot k) = d_k

    The estimate's relative standard error is about :math:`\sqrt{(2 + 6/d_k)/n}`
    (1.3 % at ``d_k = 4`` and 1.0 % for large ``d_k`` with the default ``n``).

    Shape:
        output: a Python float.
    """
    n_samples = check_int(n_samples, "n_samples")
    if n_samples < 2:
        raise ValueError(
            f"n_samples must be at least 2 to estimate a variance, got {n_samples}"
        )
    s = sample_dot_products(d_k, n_samples, seed=seed)
    centered = s - s.mean()
    return float((centered * centered).sum() / (n_samples - 1))


# ------------------------------------------------------------- softmax saturation


def softmax_entropy(weights: torch.Tensor) -> torch.Tensor:
    r"""Entropy of each attention distribution, in nats, with :math:`0 \log 0 = 0`.

    .. math:: H(p) = -\sum_j p_j \log p_j,\qquad 0 \le H \le \log L

    Shape:
        weights ``(*, L)`` (rows summing to 1); output ``(*,)``.
    """
    p = check_rows(weights, "weights")
    return -torch.special.xlogy(p, p).sum(dim=-1)


def softmax_jacobian(weights: torch.Tensor) -> torch.Tensor:
    r"""Jacobian of the softmax at the point where it outputs ``weights``.

    .. math::
        \frac{\partial p_i}{\partial s_j} = p_i(\delta_{ij} - p_j),\qquad
        J = \mathrm{diag}(p) - p p^\top

    Shape:
        weights ``(*, L)``; output ``(*, L, L)`` (symmetric).
    """
    p = check_rows(weights, "weights")
    return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


def softmax_jacobian_norm(weights: torch.Tensor) -> torch.Tensor:
    r"""Spectral norm of the softmax Jacobian: how much a logit change can move the
    weights.

    :math:`J = \mathrm{diag}(p) - pp^\top` is symmetric positive semi-definite,
    so its
    spectral norm is its largest eigenvalue. It is :math:`1/L` for the uniform
    distribution over ``L`` keys, at most :math:`1/2` (two keys sharing the weight)
    and goes to 0 as :math:`p` approaches a one-hot vector: a saturated softmax
    passes almost no gradient back to its logits.

    .. math:: \|J\|_2 = \lambda_{\max}\big(\mathrm{diag}(p) - pp^\top\big)

    Computed in float64.

    Shape:
        weights ``(*, L)``; output ``(*,)`` in the dtype of ``weights``.
    """
    p = check_rows(weights, "weights")
    jac = softmax_jacobian(p.double())  # (*, L, L)
    return torch.linalg.eigvalsh(jac)[..., -1].to(p.dtype)


# ---------------------------------------------------------- four kinds of logits


def attention_logits(
    query: torch.Tensor,
    key: torch.Tensor,
    scaling: Scaling = "sqrt_dk",
    *,
    eps: float = 1e-5,
) -> torch.Tensor:
    r"""The logits that go into the softmax, for one of the four ``scaling``
    choices.

    .. math::
        \texttt{"none"}:\; S = QK^\top \qquad
        \texttt{"sqrt\_dk"}:\; S = \frac{QK^\top}{\sqrt{d_k}}

        \texttt{"layernorm\_logits"}:\; S = \mathrm{LN}_{\text{keys}}\!\left(
            \frac{QK^\top}{\sqrt{d_k}}\right) \qquad
        \texttt{"qk\_norm"}:\; S
        = \frac{\mathrm{LN}(Q)\,\mathrm{LN}(K)^\top}{\sqrt{d_k}}

    ``"layernorm_logits"`` normalizes each query's row of logits over the keys (no
    learnable gain or bias), so every row has mean 0 and variance 1; ``"qk_norm"``
    normalizes every query and key vector over its ``d_k`` features first (Dehghani
    et al., 2023), without a learnable gain. ``eps`` is LayerNorm's.

    Shape:
        query ``(*, L_q, d_k)``, key ``(*, L_k, d_k)``; output ``(*, L_q, L_k)``.
    """
    scaling = check_choice(scaling, "scaling", SCALINGS)
    q, k = check_query_key(query, key)
    eps = check_eps(eps)
    d_k = q.shape[-1]
    if scaling == "qk_norm":
        q = CF.layer_norm(q, d_k, eps=eps)
        k = CF.layer_norm(k, d_k, eps=eps)
    scores = torch.matmul(q, k.transpose(-2, -1))  # (*, L_q, L_k)
    if scaling == "none":
        return scores
    scores = scores / math.sqrt(d_k)
    if scaling == "layernorm_logits":
        return CF.layer_norm(scores, scores.shape[-1], eps=eps)
    return scores


def qk_norm_logit_bound(d_k: int, gain: float = 1.0) -> float:
    r"""Cauchy-Schwarz bound on a QK-norm logit.

    A LayerNorm'd vector of ``d_k`` features has mean 0 and mean square at most 1,
    so its Euclidean norm is at most :math:`\sqrt{d_k}`; with a gain :math:`g` on
    each side,

    .. math::
        |s| = \frac{|\hat q \cdot \hat k|}{\sqrt{d_k}}
        \le \frac{\|\hat q\|\,\|\hat k\|}{\sqrt{d_k}} \le g^2 \sqrt{d_k}

    however large the raw queries and keys are.

    Shape:
        output: a Python float.
    """
    d_k = check_int(d_k, "d_k")
    gain = check_real(gain, "gain", minimum=0.0)
    return gain * gain * math.sqrt(d_k)


def qk_norm_weight_ceiling(d_k: int, n_keys: int, gain: float = 1.0) -> float:
    r"""Largest attention weight QK-norm logits allow over ``n_keys`` keys.

    With every logit in :math:`[-B, B]`, :math:`B` = :func:`qk_norm_logit_bound`,
    the weight of one key is largest when its logit is :math:`B` and all others are
    :math:`-B`:

    .. math:: p_{\max} \le \frac{1}{1 + (L - 1)\,e^{-2B}}

    Shape:
        output: a Python float.
    """
    n_keys = check_int(n_keys, "n_keys")
    bound = qk_norm_logit_bound(d_k, gain)
    return 1.0 / (1.0 + (n_keys - 1) * math.exp(-2.0 * bound))


def layernorm_logit_ceiling(n_keys: int) -> float:
    r"""Largest attention weight possible when each row of logits is LayerNorm'd.

    A row of ``L`` logits with mean 0 and (biased) variance 1 has
    :math:`\sum_j s_j^2 = L`, so its top logit :math:`t` is at most
    :math:`\sqrt{L-1}`. The other :math:`L-1` logits have mean :math:`-t/(L-1)`, so
    by Jensen's inequality their exponentials add up to at least
    :math:`(L-1)e^{-t/(L-1)}` and :math:`p_{\max} \le 1/(1 + (L-1)e^{-tL/(L-1)})`.
    That bound grows with :math:`t`, so :math:`t = \sqrt{L-1}` gives the ceiling

    .. math::
        p_{\max} \le \frac{1}{1 + (L-1)\,e^{-L/\sqrt{L-1}}}

    whatever the query and keys are (LayerNorm's ``eps`` only lowers it).

    Shape:
        output: a Python float.
    """
    n_keys = check_int(n_keys, "n_keys")
    if n_keys == 1:
        return 1.0
    return 1.0 / (1.0 + (n_keys - 1) * math.exp(-n_keys / math.sqrt(n_keys - 1)))


@dataclass(frozen=True)
class SaturationMetrics:
    r"""Means over queries of three measures of how saturated attention is.

    .. math::
        H = -\sum_j p_j \log p_j,\qquad \max_j p_j,\qquad
        \|\mathrm{diag}(p) - pp^\top\|_2

    Shape:
        three Python floats.
    """

    entropy: float  # nats; log(n_keys) for uniform attention, 0 for one-hot
    max_weight: float  # largest attention weight; 1/n_keys uniform, 1 one-hot
    jacobian_norm: float  # spectral norm of the softmax Jacobian; 0 when saturated


def _random_qk(
    d_k: int, n_queries: int, n_keys: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """The arguments checked, then ``n_queries`` standard-normal queries, each with
    its own ``n_keys`` keys, drawn under ``seed``; and the generator, for whatever a
    caller draws next."""
    d_k = check_int(d_k, "d_k")
    n_queries = check_int(n_queries, "n_queries")
    n_keys = check_int(n_keys, "n_keys")
    gen = torch.Generator().manual_seed(check_seed(seed))
    # (N, 1, d_k): one query each
    query = torch.randn(n_queries, 1, d_k, generator=gen)
    # (N, L, d_k): its own keys
    key = torch.randn(n_queries, n_keys, d_k, generator=gen)
    return query, key, gen


def saturation_metrics(
    d_k: int,
    scaling: Scaling = "sqrt_dk",
    *,
    n_queries: int = 512,
    n_keys: int = 16,
    query_scale: float = 1.0,
    seed: int = 0,
) -> SaturationMetrics:
    r"""Entropy, largest weight and Jacobian norm of attention over random keys.

    Each of ``n_queries`` queries attends over its own ``n_keys`` keys; queries and
    keys have independent standard-normal components, and the query is multiplied by
    ``query_scale``. The same ``seed`` gives the same queries and keys for every
    ``scaling``, so the choices are compared on identical inputs.

    .. math::
        p = \mathrm{softmax}(s),\quad H = -\sum_j p_j\log p_j,\quad
        \max_j p_j,\quad \|\mathrm{diag}(p) - pp^\top\|_2

    Shape:
        output: three floats (means over the queries).
    """
    query_scale = check_real(query_scale, "query_scale", minimum=0.0)
    query, key, _ = _random_qk(d_k, n_queries, n_keys, seed)
    # (N, L)
    logits = attention_logits(query * query_scale, key, scaling).squeeze(-2)
    weights = torch.softmax(logits, dim=-1)
    return SaturationMetrics(
        entropy=float(softmax_entropy(weights).mean()),
        max_weight=float(weights.max(dim=-1).values.mean()),
        jacobian_norm=float(softmax_jacobian_norm(weights).mean()),
    )


def query_gradients(
    d_k: int,
    scaling: Scaling = "sqrt_dk",
    *,
    n_queries: int = 512,
    n_keys: int = 16,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per query: the softmax Jacobian's norm and the norm of the gradient that
    reaches the query.

    The queries and keys are those of :func:`saturation_metrics` with the same
    ``seed`` (drawn in float32, then used in float64). A random upstream gradient
    :math:`g = \partial\mathcal L/\partial p` with standard-normal components,
    drawn next from the same generator, stands in for what the loss sends back,
    :math:`\mathcal L = \sum_j g_j p_j`. With :math:`s_j = q\cdot k_j / c`
    (:math:`c = \sqrt{d_k}`, or 1 without scaling) the chain rule gives

    .. math::
        \frac{\partial \mathcal L}{\partial q}
        = \Big(\frac{\partial s}{\partial q}\Big)^{\!\top} J^\top g
        = \frac{1}{c}\,K^\top J g,\qquad J = \mathrm{diag}(p) - pp^\top,

    so both :math:`\|J\|_2` and :math:`\partial s/\partial q = K/c` matter. The
    gradient is taken by autograd.

    Shape:
        returns ``(jacobian_norm, grad_norm)``, each ``(n_queries,)``, float64.
    """
    scaling = check_choice(scaling, "scaling", SCALINGS)
    query, key, gen = _random_qk(d_k, n_queries, n_keys, seed)
    # the upstream gradient, drawn next from the same generator
    upstream = torch.randn(n_queries, 1, n_keys, generator=gen, dtype=torch.float64)
    query = query.double().requires_grad_(True)
    with torch.enable_grad():
        # (N, 1, L)
        weights = torch.softmax(attention_logits(query, key.double(), scaling), -1)
        (grad,) = torch.autograd.grad((weights * upstream).sum(), query)
    jac_norm = softmax_jacobian_norm(weights.detach().squeeze(-2))  # (N,)
    return jac_norm, grad.squeeze(-2).norm(dim=-1)  # (N,), (N,)


@dataclass(frozen=True)
class Spread:
    r"""How a quantity is spread over queries: mean, quantiles, and the share that
    is tiny.

    .. math::
        \bar x,\quad \min_i x_i,\quad Q_{0.1},\quad Q_{0.5},\quad Q_{0.9},\quad
        \max_i x_i,\quad \tfrac{1}{N}\#\{i : x_i < \text{tiny}\}

    Shape:
        seven Python floats.
    """

    mean: float
    min: float
    p10: float  # 10 % of the values lie below
    median: float
    p90: float  # 90 % of the values lie below
    max: float
    share_tiny: float  # fraction of the values below ``tiny``


def spread(values: torch.Tensor, *, tiny: float = 1e-3) -> Spread:
    r"""Mean, minimum, 10 % / 50 % / 90 % quantiles (linear interpolation, as
    ``torch.quantile``), maximum, and the share of ``values`` below ``tiny``.

    A mean alone hides a spread in which most values are near 0 and a few are large.

    Shape:
        values ``(N,)``; output seven floats.
    """
    x = check_float_tensor(values, "values", dim=1)
    if x.numel() == 0:
        raise ValueError("values must not be empty")
    tiny = check_real(tiny, "tiny", minimum=0.0)
    x = x.double()
    p10, median, p90 = torch.quantile(
        x, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    ).tolist()
    return Spread(
        mean=float(x.mean()),
        min=float(x.min()),
        p10=p10,
        median=median,
        p90=p90,
        max=float(x.max()),
        share_tiny=float((x < tiny).double().mean()),
    )


def query_scale_entropy(
    query_scales: Sequence[float],
    scaling: Scaling,
    *,
    d_k: int = 64,
    n_queries: int = 512,
    n_keys: int = 16,
    seed: int = 0,
) -> list[float]:
    r"""Mean attention entropy when every query is multiplied by each of
    ``query_scales``.

    With :math:`1/\sqrt{d_k}` the logits scale with the query,
    :math:`s(\alpha q) = \alpha\,s(q)`, so the entropy falls as :math:`\alpha`
    grows: the query's magnitude is a confidence. LayerNorm on the logits removes
    :math:`\alpha` (for :math:`\alpha > 0`):

    .. math:: \mathrm{LN}(\alpha s) = \mathrm{LN}(s)\quad(\text{up to } \epsilon)

    Shape:
        output: one float per entry of ``query_scales``.
    """
    query_scales = check_sequence(query_scales, "query_scales", "numbers")
    scales = [
        check_real(a, "query_scales entry", minimum=0.0) for a in query_scales
    ]
    return [
        saturation_metrics(
            d_k,
            scaling,
            n_queries=n_queries,
            n_keys=n_keys,
            query_scale=a,
            seed=seed,
        ).entropy
        for a in scales
    ]


def matched_query_weight(
    d_k: int,
    scaling: Scaling,
    *,
    query_scale: float = 1.0,
    n_queries: int = 512,
    n_keys: int = 16,
    seed: int = 0,
) -> float:
    r"""Mean attention weight on key 0 when the query points exactly at key 0.

    The query is :math:`q = \alpha\, k_0` (``alpha = query_scale``), a perfect match
    for the first of ``n_keys`` random standard-normal keys; the result is the mean
    over ``n_queries`` independent draws of the keys of

    .. math:: p_0 = \mathrm{softmax}\big(s(\alpha k_0, K)\big)_0

    Shape:
        output: a Python float.
    """
    query_scale = check_real(query_scale, "query_scale", minimum=0.0)
    _, key, _ = _random_qk(d_k, n_queries, n_keys, seed)  # (N, L, d_k)
    query = query_scale * key[:, :1, :]  # (N, 1, d_k)
    # (N, 1, L)
    weights = torch.softmax(attention_logits(query, key, scaling), dim=-1)
    return float(weights[:, 0, 0].mean())


# ------------------------------------------------------ a freshly initialized block


@dataclass(frozen=True)
class BlockLogitStats:
    r"""Second moments of one block's queries, keys and dot products.

    .. math::
        \mathrm{Var}(q_i),\qquad \mathrm{Var}(k_i),\qquad
        \frac{\mathrm{Var}(q_t \cdot k_s)}{d_k}\ (t \ne s)

    Shape:
        three Python floats.
    """

    q_var: float  # mean over heads and dims of the variance of a query component
    k_var: float  # the same for keys
    # Var(q_t . k_s) / d_head over pairs of distinct positions
    dot_var_over_dk: float


def block_queries_keys(
    block: TransformerBlock, x: torch.Tensor, input_norm: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The queries and keys ``block.self_attn`` computes from ``x``, split into
    heads.

    .. math:: [Q\ K\ V] = h\, W_{\text{in}}^\top + b_{\text{in}},\qquad
        h = \mathrm{norm1}(x) \text{ if input\_norm else } x

    Shape:
        x ``(B, T, d_model)``, ``T >= 2``; returns q and k, each
        ``(B, H, T, d_head)``.
    """
    if not isinstance(block, TransformerBlock):
        raise TypeError(
            f"block must be a TransformerBlock, got {type(block).__name__}"
        )
    if not isinstance(input_norm, bool):
        raise TypeError(
            f"input_norm must be a bool, got {type(input_norm).__name__}"
        )
    x = check_float_tensor(x, "x", min_dim=3)
    d_model = block.config.d_model
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(
            f"x must have shape (B, T, {d_model}), got {tuple(x.shape)}"
        )
    if x.shape[1] < 2:
        raise ValueError(
            f"x needs at least 2 positions (T >= 2), got shape {tuple(x.shape)}"
        )
    attn = block.self_attn
    h = block.norm1(x) if input_norm else x  # (B, T, d_model)
    q, k, _ = attn.in_proj(h).split(d_model, dim=-1)  # each (B, T, d_model)
    b, t, _ = x.shape
    q = q.view(b, t, attn.n_heads, attn.d_head).transpose(1, 2)  # (B, H, T, d_head)
    k = k.view(b, t, attn.n_heads, attn.d_head).transpose(1, 2)  # (B, H, T, d_head)
    return q, k


def block_logit_stats(
    block: TransformerBlock, x: torch.Tensor, *, input_norm: bool = True
) -> BlockLogitStats:
    r"""Variance of the attention dot products of ``block`` on input ``x``.

    Queries and keys are computed exactly as ``block.self_attn`` computes them, from
    ``block.norm1(x)`` (``input_norm=True``, what a Pre-LN block feeds its
    attention) or from ``x`` itself (``input_norm=False``). Dot products are taken
    between distinct positions ``t != s`` of each sequence and head (a position's
    query and its own key share an input, so they are not independent):

    .. math::
        \frac{\mathrm{Var}(q_t \cdot k_s)}{d_k},\quad t \ne s,
        \qquad\text{which } \frac{1}{\sqrt{d_k}} \text{ assumes to be about } 1

    Variances are taken about the sample mean, over all batch elements, heads and
    pairs.

    Shape:
        x ``(B, T, d_model)`` with ``T >= 2``; output three floats.
    """
    with torch.no_grad():
        q, k = block_queries_keys(block, x, input_norm)
        d_head = q.shape[-1]
        dots = torch.matmul(q, k.transpose(-2, -1))  # (B, H, T, T)
        t = dots.shape[-1]
        off_diag = ~torch.eye(t, dtype=torch.bool)
        pairs = dots[..., off_diag].double()  # (B, H, T(T-1))

        def var(z: torch.Tensor) -> float:
            centered = z - z.mean()
            return float((centered * centered).mean())

        q_var = var(q.double())
        k_var = var(k.double())
        return BlockLogitStats(
            q_var=q_var, k_var=k_var, dot_var_over_dk=var(pairs) / d_head
        )


def max_logit_under_weight_growth(
    block: TransformerBlock,
    x: torch.Tensor,
    growth: float,
    *,
    qk_norm: bool,
    eps: float = 1e-5,
) -> float:
    r"""Largest :math:`|s|` when the block's query and key weights are multiplied by
    ``growth``.

    Training can grow :math:`W_Q` and :math:`W_K` (Dehghani et al., 2023; Wortsman
    et al., 2024 call the result attention-logit growth). With plain
    :math:`1/\sqrt{d_k}` scaling the logits grow like ``growth**2``; with QK-norm
    they
    stay within :func:`qk_norm_logit_bound`:

    .. math::
        s = \frac{(m W_Q h_t)\cdot(m W_K h_s)}{\sqrt{d_k}} = m^2 s_0
        \quad\text{vs}\quad
        s = \frac{\mathrm{LN}(m W_Q h_t)\cdot \mathrm{LN}(m W_K h_s)}{\sqrt{d_k}}

    The input is ``block.norm1(x)`` (a Pre-LN block's attention input); the block
    itself is not modified.

    Shape:
        x ``(B, T, d_model)``; output: a Python float.
    """
    growth = check_real(growth, "growth", minimum=0.0)
    if not isinstance(qk_norm, bool):
        raise TypeError(f"qk_norm must be a bool, got {type(qk_norm).__name__}")
    eps = check_eps(eps)
    with torch.no_grad():
        q, k = block_queries_keys(block, x, True)
        q, k = growth * q, growth * k  # the bias is zero at initialization
        logits = attention_logits(
            q, k, "qk_norm" if qk_norm else "sqrt_dk", eps=eps
        )
        return float(logits.abs().max())


# ----------------------------------------------------------------------- figures


def attention_example(
    d_k: int,
    scaling: Scaling = "sqrt_dk",
    *,
    query_scale: float = 1.0,
    n_keys: int = 16,
    seed: int = 0,
) -> torch.Tensor:
    r"""Attention weights of one random query over ``n_keys`` random keys.

    Components are standard normal; the query is multiplied by ``query_scale``. The
    same ``seed`` and ``d_k`` give the same query and keys for every ``scaling``.

    .. math:: p = \mathrm{softmax}\big(s(\alpha q, K)\big)

    Shape:
        output ``(n_keys,)``.
    """
    query_scale = check_real(query_scale, "query_scale", minimum=0.0)
    query, key, _ = _random_qk(d_k, 1, n_keys, seed)
    logits = attention_logits(query * query_scale, key, scaling)  # (1, 1, L)
    return torch.softmax(logits, dim=-1).reshape(n_keys)


def plot_attention_example(
    d_k: int,
    scaling: Scaling = "sqrt_dk",
    query_scale: float = 1.0,
    *,
    n_keys: int = 16,
    seed: int = 0,
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    r"""Bar chart of :func:`attention_example`; the title gives entropy and largest
    weight.

    .. math:: H = -\sum_j p_j \log p_j
        \quad(\text{nats};\ \log L \text{ if uniform})

    Shape:
        draws ``n_keys`` bars; returns ``(fig, ax)``.
    """
    weights = attention_example(
        d_k, scaling, query_scale=query_scale, n_keys=n_keys, seed=seed
    )
    if ax is None:
        fig, ax = new_figure(width=6.0, height=3.0)
    else:
        fig = ax.figure
    ax.bar(range(n_keys), weights.numpy(), color=color(SCALINGS.index(scaling)))
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("key")
    ax.set_ylabel("attention weight")
    entropy = float(softmax_entropy(weights))
    ax.set_title(
        f"{SCALING_LABELS[scaling]}\n"
        f"d_k = {d_k}: H = {entropy:.2f} nats, max {float(weights.max()):.2f}",
    )
    return fig, ax


def plot_saturation(
    d_ks: Sequence[int],
    metrics: dict[str, list[SaturationMetrics]],
    *,
    n_keys: int,
) -> tuple[Figure, np.ndarray]:
    r"""Three panels against :math:`d_k`: entropy, largest weight, Jacobian norm.

    ``metrics[scaling][i]`` is the :class:`SaturationMetrics` at ``d_ks[i]``.

    Shape:
        one line per entry of ``metrics``, ``len(d_ks)`` points each; returns
        ``(fig, axes)`` with three axes.
    """
    if not metrics:
        raise ValueError("metrics must hold at least one scaling")
    for name, series in metrics.items():
        check_choice(name, "scaling", SCALINGS)
        if len(series) != len(d_ks):
            raise ValueError(
                f"metrics[{name!r}] has {len(series)} entries for {len(d_ks)} "
                "values of d_ks"
            )
    fig, axes = new_figure(3, width=7.0, height=3.2)
    panels = (
        ("entropy", "entropy (nats)", math.log(n_keys)),
        ("max_weight", "largest weight", 1.0 / n_keys),
        ("jacobian_norm", "softmax Jacobian norm", 1.0 / n_keys),
    )
    for ax, (field, label, ref) in zip(axes, panels, strict=True):
        for name, series in metrics.items():
            i = SCALINGS.index(name)
            ax.plot(
                list(d_ks),
                [getattr(m, field) for m in series],
                marker="o",
                color=color(i),
                label=SCALING_LABELS[name],
            )
        ax.axhline(
            ref,
            color=color(6),
            linestyle=":",
            linewidth=1.0,
            label="uniform attention",
        )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d_k")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0.0)
    axes[0].legend()
    return fig, axes
