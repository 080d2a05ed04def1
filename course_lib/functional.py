"""Reference normalizations and attention, written the way the book derives them.

Every function keeps the name and signature of its ``torch.nn.functional`` counterpart,
so a reader can put the two side by side; the tests check each one against torch.

Conventions used throughout:

* channel-last tensors, batch first: ``(B, T, C)`` for a batch of token sequences;
* variance is computed by subtracting the mean first, ``mean((x - mean(x))**2)``, never
  as ``E[x^2] - E[x]^2`` (chapter 4 shows why);
* boolean masks mean ``True`` = real token / may attend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._checks import (
    as_shape,
    check_eps,
    check_float_tensor,
    check_mask,
    check_param,
    check_probability,
    check_query_key,
)

__all__ = [
    "attention_weights",
    "batch_norm",
    "layer_norm",
    "padding_mask",
    "rms_norm",
    "scaled_dot_product_attention",
]


def layer_norm(
    input: torch.Tensor,
    normalized_shape: int | Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    r"""Layer normalization (Ba et al., 2016), as ``torch.nn.functional.layer_norm``.

    Each row (the last ``len(normalized_shape)`` dimensions) is normalized with its own
    statistics:

    .. math::
        \mu = \frac{1}{D}\sum_j x_j,\quad
        \sigma^2 = \frac{1}{D}\sum_j (x_j - \mu)^2,\quad
        y_j = \gamma_j \frac{x_j - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_j

    The variance is the biased one (divide by D) and ``eps`` sits inside the square root,
    exactly as in torch.

    Shape:
        input ``(*, *normalized_shape)``; weight and bias ``normalized_shape``;
        output same shape as input.
    """
    x = check_float_tensor(input, "input")
    shape = as_shape(normalized_shape, x)
    eps = check_eps(eps)
    weight = check_param(weight, "weight", shape, x)
    bias = check_param(bias, "bias", shape, x)

    dims = tuple(range(-len(shape), 0))
    mean = x.mean(dim=dims, keepdim=True)  # (*, 1, ..., 1)
    centered = x - mean
    var = (centered * centered).mean(dim=dims, keepdim=True)  # biased
    y = centered / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(
    input: torch.Tensor,
    normalized_shape: int | Sequence[int],
    weight: torch.Tensor | None = None,
    eps: float | None = None,
) -> torch.Tensor:
    r"""Root-mean-square normalization (Zhang & Sennrich, 2019), as ``F.rms_norm``.

    No centering: each row is divided by its root mean square,

    .. math::
        y_j = \gamma_j \frac{x_j}{\sqrt{\frac{1}{D}\sum_k x_k^2 + \epsilon}}

    ``eps=None`` uses ``torch.finfo(input.dtype).eps``, torch's default.

    Shape:
        input ``(*, *normalized_shape)``; weight ``normalized_shape``; output as input.
    """
    x = check_float_tensor(input, "input")
    shape = as_shape(normalized_shape, x)
    eps = torch.finfo(x.dtype).eps if eps is None else check_eps(eps)
    weight = check_param(weight, "weight", shape, x)

    dims = tuple(range(-len(shape), 0))
    ms = (x * x).mean(dim=dims, keepdim=True)  # mean square per row
    y = x / torch.sqrt(ms + eps)
    if weight is not None:
        y = y * weight
    return y


def batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Batch normalization (Ioffe & Szegedy, 2015) over channel-last input.

    Each channel ``c`` (the last dimension) is normalized with statistics taken over
    every leading position, or only over the positions where ``mask`` is True:

    .. math::
        \mu_c = \frac{1}{n}\sum_i x_{ic},\quad
        \sigma_c^2 = \frac{1}{n}\sum_i (x_{ic} - \mu_c)^2,\quad
        y_{ic} = \gamma_c \frac{x_{ic} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c

    In training mode the batch statistics are used (biased variance, divide by n) and,
    when running buffers are given, they are updated in place exactly as
    ``nn.BatchNorm1d`` does, with the *unbiased* variance (divide by n - 1):

    .. math::
        \hat\mu \leftarrow (1-m)\hat\mu + m\mu_c,\quad
        \hat\sigma^2 \leftarrow (1-m)\hat\sigma^2 + m\frac{n}{n-1}\sigma_c^2

    In eval mode the running statistics are used and the batch plays no part.
    Positions where ``mask`` is False are transformed with the same statistics (they
    just do not contribute to them).

    Shape:
        input ``(N, C)`` or ``(B, T, C)`` or any ``(*, C)``; running stats, weight and
        bias ``(C,)``; mask ``input.shape[:-1]`` (bool); output same shape as input.
    """
    x = check_float_tensor(input, "input", min_dim=2)
    if not isinstance(training, bool):
        raise TypeError(f"training must be a bool, got {type(training).__name__}")
    eps = check_eps(eps)
    momentum = check_probability(momentum, "momentum")
    channels = (x.shape[-1],)
    running_mean = check_param(running_mean, "running_mean", channels, x)
    running_var = check_param(running_var, "running_var", channels, x)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together or both be None")
    weight = check_param(weight, "weight", channels, x)
    bias = check_param(bias, "bias", channels, x)
    if mask is not None:
        mask = check_mask(mask, "mask", tuple(x.shape[:-1]))

    flat = x.reshape(-1, x.shape[-1])  # (n_positions, C)
    if training:
        if mask is None:
            rows = flat
        else:
            rows = flat[mask.reshape(-1)]  # only the real positions
        n = rows.shape[0]
        if n <= 1:
            raise ValueError(
                "batch_norm in training mode needs more than 1 value per channel "
                f"(input shape {tuple(x.shape)}"
                + (f", {n} position(s) where mask is True)" if mask is not None else ")")
            )
        mean = rows.mean(dim=0)  # (C,)
        centered = rows - mean
        var = (centered * centered).mean(dim=0)  # biased: used to normalize
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                running_mean.mul_(1.0 - momentum).add_(momentum * mean.detach())
                running_var.mul_(1.0 - momentum).add_(momentum * var.detach() * n / (n - 1))
    else:
        if running_mean is None or running_var is None:
            raise ValueError(
                "running_mean and running_var are required when training=False "
                "(eval mode normalizes with the stored statistics)"
            )
        mean, var = running_mean, running_var

    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def attention_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Softmax attention weights, ``softmax(q k^T * scale)`` with a boolean mask.

    .. math::
        A = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right)

    ``scale=None`` uses :math:`1/\sqrt{d_k}` (Vaswani et al., 2017). ``attn_mask`` is
    boolean, True where a query may attend to a key, and broadcastable to
    ``(..., L_q, L_k)`` with its last dimension exactly ``L_k``. A query row with no key
    it may attend to gets all-zero weights (not NaN), as ``F.scaled_dot_product_attention``
    gives.

    Shape:
        query ``(*, L_q, d_k)``, key ``(*, L_k, d_k)``, attn_mask
        ``(*, L_q or 1, L_k)`` bool; output ``(*, L_q, L_k)``, rows summing to 1 (or 0).
    """
    q, k = check_query_key(query, key)
    d_k = q.shape[-1]
    if scale is None:
        scale = 1.0 / math.sqrt(d_k)
    elif isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise TypeError(f"scale must be a finite real number or None, got {scale!r}")
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (*, L_q, L_k)
    if attn_mask is None:
        return torch.softmax(scores, dim=-1)

    if not isinstance(attn_mask, torch.Tensor):
        raise TypeError(f"attn_mask must be a torch.Tensor, got {type(attn_mask).__name__}")
    if attn_mask.dtype != torch.bool:
        raise TypeError(
            f"attn_mask must have dtype torch.bool (True = may attend), got {attn_mask.dtype}"
        )
    l_q, l_k = scores.shape[-2], scores.shape[-1]
    if attn_mask.dim() < 2 or attn_mask.shape[-1] != l_k or attn_mask.shape[-2] not in (1, l_q):
        raise ValueError(
            f"attn_mask must have shape (..., {l_q} or 1, {l_k}), got {tuple(attn_mask.shape)}"
        )
    try:
        if torch.broadcast_shapes(attn_mask.shape, scores.shape) != scores.shape:
            raise RuntimeError
    except RuntimeError as exc:
        raise ValueError(
            f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to the "
            f"attention scores' shape {tuple(scores.shape)}"
        ) from exc
    mask = attn_mask.expand(scores.shape)
    has_key = mask.any(dim=-1, keepdim=True)  # (*, L_q, 1): row has at least one key
    # A row with no allowed key is given scores of 0 (finite), then zeroed below.
    scores = scores.masked_fill(~mask & has_key, float("-inf")).masked_fill(~has_key, 0.0)
    return torch.softmax(scores, dim=-1) * has_key


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Scaled dot-product attention, as ``F.scaled_dot_product_attention`` (no dropout).

    .. math::
        \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V

    See :func:`attention_weights` for the mask convention (True = may attend).

    Shape:
        query ``(*, L_q, d_k)``, key ``(*, L_k, d_k)``, value ``(*, L_k, d_v)``;
        output ``(*, L_q, d_v)``.
    """
    weights = attention_weights(query, key, attn_mask=attn_mask, scale=scale)
    v = check_float_tensor(value, "value", min_dim=2)
    if v.shape[-2] != key.shape[-2]:
        raise ValueError(
            f"value must have as many positions as key ({key.shape[-2]}), got {v.shape[-2]}"
        )
    if v.dtype != weights.dtype:
        raise TypeError(f"value must have dtype {weights.dtype} like query, got {v.dtype}")
    return torch.matmul(weights, v)


def padding_mask(lengths: torch.Tensor | Sequence[int], max_len: int) -> torch.Tensor:
    r"""Boolean mask of real tokens: ``mask[b, t] = t < lengths[b]``.

    Shape:
        lengths ``(B,)`` (ints in ``[0, max_len]``); output ``(B, max_len)`` bool.
    """
    if isinstance(max_len, bool) or not isinstance(max_len, int):
        raise TypeError(f"max_len must be an int, got {type(max_len).__name__}")
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    if isinstance(lengths, torch.Tensor):
        if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.is_complex():
            raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
        lens = lengths.to(torch.long)
    elif isinstance(lengths, Sequence) and not isinstance(lengths, str):
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in lengths):
            raise TypeError(f"lengths must hold integers, got {list(lengths)!r}")
        lens = torch.tensor(list(lengths), dtype=torch.long)
    else:
        raise TypeError(
            f"lengths must be a tensor or a sequence of ints, got {type(lengths).__name__}"
        )
    if lens.dim() != 1:
        raise ValueError(
            f"lengths must be 1-D (one length per sequence), got shape {tuple(lens.shape)}"
        )
    if lens.numel() and (int(lens.min()) < 0 or int(lens.max()) > max_len):
        raise ValueError(f"lengths must lie in [0, max_len={max_len}], got {lens.tolist()}")
    positions = torch.arange(max_len)  # (T,)
    return positions.unsqueeze(0) < lens.unsqueeze(1)  # (B, T)
