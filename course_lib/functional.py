"""Reference normalizations and attention, written the way the book derives them.

Every function keeps the name and signature of its ``torch.nn.functional``
counterpart, so a reader can put the two side by side; the tests check each one
against torch.

Conventions used throughout:

* channel-last tensors, batch first: ``(B, T, C)`` for a batch of token sequences;
* variance is computed by subtracting the mean first, ``mean((x - mean(x))**2)``,
  never as ``E[x^2] - E[x]^2`` (chapter 4 shows why), and the mean is taken about
  the first element (:func:`shifted_mean`), exact for a constant row;
* float16 and bfloat16 inputs are computed in float32, as torch does;
* boolean masks mean ``True`` = real token / may attend.

Each public function validates its arguments and hands them to an unchecked kernel
of the same name with a leading underscore (``_layer_norm``, ...). The modules in
:mod:`course_lib.norms` and :mod:`course_lib.transformer` call the kernels: they
validate their settings once, when they are built, and their input once per call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ._checks import (
    as_shape,
    check_alpha,
    check_attn_mask,
    check_bool,
    check_eps,
    check_float_tensor,
    check_int,
    check_mask,
    check_param,
    check_probability,
    check_query_key,
    check_real,
    check_trailing_param,
)

__all__ = [
    "attention_weights",
    "batch_norm",
    "dynamic_tanh",
    "layer_norm",
    "moments",
    "padding_mask",
    "rms_norm",
    "scaled_dot_product_attention",
    "shifted_mean",
]


def layer_norm(
    input: torch.Tensor,
    normalized_shape: int | Sequence[int],
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    r"""Layer normalization (Ba et al., 2016), as
    ``torch.nn.functional.layer_norm``.

    Each row (the last ``len(normalized_shape)`` dimensions) is normalized with its
    own statistics:

    .. math::
        \mu = \frac{1}{D}\sum_j x_j,\quad
        \sigma^2 = \frac{1}{D}\sum_j (x_j - \mu)^2,\quad
        y_j = \gamma_j \frac{x_j - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_j

    The variance is the biased one (divide by D) and ``eps`` sits inside the square
    root, exactly as in torch. A constant row gives exactly ``bias`` (its mean is
    exact: see :func:`shifted_mean`); with ``eps=0``, Ba et al.'s exact definition,
    it gives 0/0 = NaN, as torch's does. Float16 and bfloat16 input is normalized
    in float32 and only the output is rounded back, as torch does.

    Args:
        input (Tensor): floating-point, ending in the dimensions
            ``normalized_shape``.
        normalized_shape (int or sequence of int): the trailing dimensions of a row.
        weight (Tensor or None): gamma, of shape ``normalized_shape``. Default:
            ``None``.
        bias (Tensor or None): beta, of shape ``normalized_shape``. Default:
            ``None``.
        eps (float): added to the variance inside the square root, ``>= 0``.
            Default: ``1e-5``.

    Shape:
        input ``(*, *normalized_shape)``; weight and bias ``normalized_shape``;
        output same shape as input.

    Example:
        >>> import torch
        >>> from course_lib.functional import layer_norm
        >>> y = layer_norm(torch.tensor([[10.0, 20.0, 30.0]]), 3)
        >>> [f"{v:.4f}" for v in y[0].tolist()]
        ['-1.2247', '0.0000', '1.2247']
    """
    x = check_float_tensor(input, "input")
    shape = as_shape(normalized_shape, x)
    eps = check_eps(eps)
    weight = check_param(weight, "weight", shape, x)
    bias = check_param(bias, "bias", shape, x)
    return _layer_norm(x, len(shape), weight, bias, eps)


def moments(
    input: torch.Tensor, dim: int | Sequence[int], *, keepdim: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and biased variance over ``dim``: the statistics every norm here
    divides by.

    .. math:: \mu = \frac{1}{n}\sum_i x_i,\qquad \sigma^2 = \frac{1}{n}\sum_i (x_i
        - \mu)^2

    The variance subtracts the mean first (two passes), never
    :math:`\overline{x^2} - \mu^2`,
    which cancels catastrophically when the mean is large
    against the spread (chapter 4). :func:`layer_norm` takes them over each row's
    features, :func:`batch_norm` over the batch for each channel.

    Args:
        input (Tensor): a floating-point tensor.
        dim (int or sequence of int): the dimensions to reduce.
        keepdim (bool): keyword-only; keep the reduced dimensions with size 1, as
            ``torch.mean`` does. Default: ``False``.

    Shape:
        - Input: any shape.
        - Output: two tensors, the input's shape without ``dim`` (size 1 with
          ``keepdim``).

    Example:
        >>> import torch
        >>> from course_lib.functional import moments
        >>> mean, var = moments(torch.tensor([[1.0, 2.0, 3.0]]), -1)
        >>> f"{mean.item():.4f} {var.item():.4f}"
        '2.0000 0.6667'
    """
    x = check_float_tensor(input, "input", min_dim=0)
    return _moments(x, dim, check_bool(keepdim, "keepdim"))


def _moments(
    x: torch.Tensor, dim: int | Sequence[int], keepdim: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`moments` on validated arguments."""
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    mean = shifted_mean(x, dims)
    centered = x - mean
    var = (centered * centered).mean(dim=dims, keepdim=keepdim)
    return (mean if keepdim else mean.squeeze(dims)), var


def shifted_mean(
    x: torch.Tensor, dims: tuple[int, ...], *, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The mean over ``dims`` (kept, size 1), taken about the first element of each
    slice: ``shift + mean(x - shift)``.

    ``x - shift`` is small where the mean is large against the spread, so its sum
    rounds less; and it is exactly 0 for a constant slice, whose mean is then
    exact, so that a constant row normalizes to exactly 0 (its output is exactly
    beta), as torch's.

    Args:
        x (Tensor): a floating-point tensor.
        dims (tuple of int): the dimensions to average over.
        out (Tensor or None): keyword-only; shaped like ``x``, scratch space for
            ``x - shift``. Default: ``None``.

    Shape:
        x any shape; output x's shape with size 1 in ``dims``.

    Example:
        >>> import torch
        >>> from course_lib.functional import shifted_mean
        >>> row = torch.full((1, 7), 12345.678)
        >>> bool(shifted_mean(row, (-1,)) == row[0, 0])  # exact
        True
    """
    shift = x
    for d in dims:
        shift = shift.narrow(d, 0, 1)
    return shift + torch.sub(x, shift, out=out).mean(dim=dims, keepdim=True)


#: The 16-bit dtypes: their statistics are computed in float32, as torch does, and
#: only the output is rounded back.
HALF_DTYPES = (torch.float16, torch.bfloat16)


def _float32(t: torch.Tensor | None) -> torch.Tensor | None:
    """``t`` in float32, or None."""
    return None if t is None else t.float()


def _normalize(
    x: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    eps: float,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)``, then times ``weight`` and plus ``bias`` if
    given."""
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def _layer_norm(
    x: torch.Tensor,
    n_dims: int,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """:func:`layer_norm` over the last ``n_dims`` dimensions, on validated
    arguments."""
    if x.dtype in HALF_DTYPES:
        y = _layer_norm(x.float(), n_dims, _float32(weight), _float32(bias), eps)
        return y.to(x.dtype)
    dims = tuple(range(-n_dims, 0))
    # (*, 1, ..., 1) each; the variance is biased
    mean, var = _moments(x, dims, True)
    return _normalize(x, mean, var, eps, weight, bias)


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

    Args:
        input, normalized_shape, weight: as in :func:`layer_norm`.
        eps (float or None): added to the mean square inside the square root;
            ``None`` uses the machine epsilon of the dtype the statistics are
            computed in, as torch does: ``torch.finfo(input.dtype).eps`` for
            float32 and float64, float32's (about 1.2e-7) for float16 and bfloat16
            inputs, whose statistics are computed in float32 (torch's documentation
            says ``input.dtype``; torch 2.13 uses float32's, and so do we). Default:
            ``None``.

    Shape:
        input ``(*, *normalized_shape)``; weight ``normalized_shape``; output as
        input.

    Example:
        >>> import torch
        >>> from course_lib.functional import rms_norm
        >>> # RMS = sqrt(12.5)
        >>> y = rms_norm(torch.tensor([[3.0, 4.0]]), 2, eps=1e-6)
        >>> [f"{v:.4f}" for v in y[0].tolist()]
        ['0.8485', '1.1314']
    """
    x = check_float_tensor(input, "input")
    shape = as_shape(normalized_shape, x)
    eps = None if eps is None else check_eps(eps)
    weight = check_param(weight, "weight", shape, x)
    return _rms_norm(x, len(shape), weight, eps)


def _rms_norm(
    x: torch.Tensor, n_dims: int, weight: torch.Tensor | None, eps: float | None
) -> torch.Tensor:
    """:func:`rms_norm` over the last ``n_dims`` dimensions, on validated
    arguments."""
    if x.dtype in HALF_DTYPES:
        # eps=None becomes float32's epsilon, not the 16-bit dtype's: as torch
        return _rms_norm(x.float(), n_dims, _float32(weight), eps).to(x.dtype)
    if eps is None:
        eps = torch.finfo(x.dtype).eps  # torch's default, the computation's dtype
    dims = tuple(range(-n_dims, 0))
    ms = (x * x).mean(dim=dims, keepdim=True)  # mean square per row
    y = x / torch.sqrt(ms + eps)
    if weight is not None:
        y = y * weight
    return y


def dynamic_tanh(
    input: torch.Tensor,
    alpha: float | torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Dynamic Tanh, DyT (Zhu, Chen, He, LeCun & Liu, 2025): a normalization
    layer's replacement that takes no statistics at all.

    Each element is squashed on its own by a tanh whose slope ``alpha`` is learned
    (one number for the whole layer), then scaled and shifted element-wise as
    LayerNorm's output is:

    .. math:: y = \gamma \odot \tanh(\alpha x) + \beta

    Nothing is averaged over a row or a batch: the output of one element depends
    on that element only. ``alpha`` sets the input scale the tanh sees, as
    LayerNorm's division by the standard deviation does, and the tanh bounds the
    large values a LayerNorm would have pulled in. ``weight`` and ``bias`` cover
    the trailing dimensions of ``input``, their own shape saying which (as
    ``normalized_shape`` does for :func:`layer_norm`). Float16 and bfloat16 input
    is computed in float32 and only the output is rounded back, as the library's
    other norms do (the authors' module computes in the input's dtype).

    Args:
        input (Tensor): floating-point, of any shape.
        alpha (float or Tensor): the tanh's slope: a finite number, or a
            one-element tensor (0-dim or ``(1,)``, as the module's learned
            parameter) of the input's dtype.
        weight (Tensor or None): gamma, of the shape of the input's trailing
            dimensions, e.g. ``(C,)``. Default: ``None``.
        bias (Tensor or None): beta, of the same shape. Default: ``None``.

    Shape:
        input ``(*, *S)``; alpha ``()`` or ``(1,)``; weight and bias ``S``
        (trailing dimensions of the input); output the shape of the input.

    Example:
        >>> import torch
        >>> from course_lib.functional import dynamic_tanh
        >>> x = torch.tensor([[0.0, 1.0, 10.0, 100.0]])
        >>> [f"{v:.4f}" for v in dynamic_tanh(x, 0.5)[0].tolist()]  # saturates
        ['0.0000', '0.4621', '0.9999', '1.0000']
        >>> w, b = torch.full((4,), 2.0), torch.ones(4)
        >>> [f"{v:.4f}" for v in dynamic_tanh(x, torch.tensor([0.5]), w, b)[0]]
        ['1.0000', '1.9242', '2.9998', '3.0000']
    """
    x = check_float_tensor(input, "input", min_dim=0)
    alpha = check_alpha(alpha, x)
    weight = check_trailing_param(weight, "weight", x)
    bias = check_trailing_param(bias, "bias", x)
    if weight is not None and bias is not None and weight.shape != bias.shape:
        raise ValueError(
            f"bias must have the shape of weight, {tuple(weight.shape)}, got "
            f"{tuple(bias.shape)}"
        )
    return _dynamic_tanh(x, alpha, weight, bias)


def _dynamic_tanh(
    x: torch.Tensor,
    alpha: float | torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """:func:`dynamic_tanh` on validated arguments."""
    if x.dtype in HALF_DTYPES:
        alpha32 = alpha.float() if isinstance(alpha, torch.Tensor) else alpha
        y = _dynamic_tanh(x.float(), alpha32, _float32(weight), _float32(bias))
        return y.to(x.dtype)
    if isinstance(alpha, torch.Tensor):
        alpha = alpha.reshape(())  # a (1,) parameter must not add a dimension
    y = torch.tanh(alpha * x)  # (*, *S), element by element
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
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
        y_{ic} = \gamma_c \frac{x_{ic} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}}
        + \beta_c

    In training mode the batch statistics are used (biased variance, divide by n)
    and, when running buffers are given, they are updated in place exactly as
    ``nn.BatchNorm1d`` does, with the *unbiased* variance (divide by n - 1):

    .. math::
        \hat\mu \leftarrow (1-m)\hat\mu + m\mu_c,\quad
        \hat\sigma^2 \leftarrow (1-m)\hat\sigma^2 + m\frac{n}{n-1}\sigma_c^2

    In eval mode the running statistics are used and the batch plays no part.
    Positions where ``mask`` is False are transformed with the same statistics (they
    just do not contribute to them).

    Args:
        input (Tensor): floating-point, channel-last ``(*, C)``, at least 2-D.
        running_mean (Tensor or None): ``(C,)``, updated in place in training mode.
        running_var (Tensor or None): ``(C,)``, updated in place in training mode.
        weight (Tensor or None): gamma, ``(C,)``. Default: ``None``.
        bias (Tensor or None): beta, ``(C,)``. Default: ``None``.
        training (bool): normalize with the batch's statistics (and update the
            running ones) rather than with the running ones. Default: ``False``.
        momentum (float): ``m`` in the running-statistics update. Default: ``0.1``.
        eps (float): added to the variance inside the square root. Default:
            ``1e-5``.
        mask (Tensor or None): keyword-only; ``input.shape[:-1]``, bool, True = a
            real position, the only ones the statistics are taken over. Default:
            ``None``.

    Shape:
        input ``(N, C)`` or ``(B, T, C)`` or any ``(*, C)``; running stats, weight
        and bias ``(C,)``; mask ``input.shape[:-1]`` (bool); output same shape as
        input.

    Example:
        >>> import torch
        >>> from course_lib.functional import batch_norm
        >>> x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # (N=3, C=2)
        >>> mean, var = torch.zeros(2), torch.ones(2)
        >>> y = batch_norm(x, mean, var, training=True)
        >>> [f"{v:.4f}" for v in y[:, 1].tolist()]  # each channel on its own scale
        ['-1.2247', '0.0000', '1.2247']
        >>> [f"{v:.2f}" for v in mean.tolist()]  # 0.9 * 0 + 0.1 * batch mean
        ['0.20', '2.00']
    """
    x = check_float_tensor(input, "input", min_dim=2)
    training = check_bool(training, "training")
    eps = check_eps(eps)
    momentum = check_probability(momentum, "momentum")
    channels = (x.shape[-1],)
    running_mean = check_param(running_mean, "running_mean", channels, x)
    running_var = check_param(running_var, "running_var", channels, x)
    if (running_mean is None) != (running_var is None):
        raise ValueError(
            "running_mean and running_var must be given together or both be None"
        )
    weight = check_param(weight, "weight", channels, x)
    bias = check_param(bias, "bias", channels, x)
    if mask is not None:
        mask = check_mask(mask, "mask", tuple(x.shape[:-1]))
    return _batch_norm(
        x, running_mean, running_var, weight, bias, training, momentum, eps, mask
    )


def _batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """:func:`batch_norm` on validated arguments.

    It still refuses a batch with a single value per channel: that is a property of
    the data of this call, found while computing its statistics.
    """
    if x.dtype in HALF_DTYPES:
        stats = _float32(running_mean), _float32(running_var)
        params = _float32(weight), _float32(bias)
        y = _batch_norm(x.float(), *stats, *params, training, momentum, eps, mask)
        if training and running_mean is not None and running_var is not None:
            with torch.no_grad():
                running_mean.copy_(stats[0])
                running_var.copy_(stats[1])
        return y.to(x.dtype)
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
                + (
                    f", {n} position(s) where mask is True)"
                    if mask is not None
                    else ")"
                )
            )
        # (C,) each; the biased variance normalizes
        mean, var = _moments(rows, 0, False)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                running_mean.mul_(1.0 - momentum).add_(momentum * mean.detach())
                running_var.mul_(1.0 - momentum).add_(
                    momentum * var.detach() * n / (n - 1)
                )
    else:
        if running_mean is None or running_var is None:
            raise ValueError(
                "running_mean and running_var are required when training=False "
                "(eval mode normalizes with the stored statistics)"
            )
        mean, var = running_mean, running_var

    return _normalize(x, mean, var, eps, weight, bias)


def attention_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Softmax attention weights, ``softmax(q k^T * scale + mask)``.

    .. math::
        A = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right)

    ``scale=None`` uses :math:`1/\sqrt{d_k}` (Vaswani et al., 2017). ``attn_mask``
    is either boolean, True where a query may attend to a key, or of the query's
    dtype, added to the scores (``-inf`` forbids a key), as in
    ``F.scaled_dot_product_attention``. It broadcasts to ``(..., L_q, L_k)`` with
    its last dimension exactly ``L_k``. A query whose every score is ``-inf`` (no
    key it may attend to, or scores that overflowed) gets all-zero weights, not
    NaN, as torch's attention gives. Float16 and bfloat16 inputs are computed in
    float32; only the weights are rounded back.

    Args:
        query (Tensor): floating-point, ``(*, L_q, d_k)``.
        key (Tensor): the same dtype and ``d_k``, ``(*, L_k, d_k)``.
        attn_mask (Tensor or None): bool (True = may attend) or the query's dtype
            (added to the scores). Default: ``None``.
        scale (float or None): the factor on the scores; ``None`` is
            :math:`1/\sqrt{d_k}`. Default: ``None``.

    Shape:
        query ``(*, L_q, d_k)``, key ``(*, L_k, d_k)``, attn_mask
        ``(*, L_q or 1, L_k)``; output ``(*, L_q, L_k)``, rows summing to 1 (or 0).

    Example:
        >>> import torch
        >>> from course_lib.functional import attention_weights
        >>> q = k = torch.eye(2)  # two orthogonal keys
        >>> causal = torch.tensor([[True, False], [True, True]])
        >>> weights = attention_weights(q, k, causal)
        >>> [[f"{w:.3f}" for w in row] for row in weights.tolist()]
        [['1.000', '0.000'], ['0.330', '0.670']]
    """
    q, k = check_query_key(query, key)
    if scale is not None:
        scale = check_real(scale, "scale")
    if attn_mask is not None:
        attn_mask = check_attn_mask(attn_mask, _scores_shape(q, k), q.dtype)
    return _attention_weights(q, k, attn_mask, scale)


def _scores_shape(q: torch.Tensor, k: torch.Tensor) -> tuple[int, ...]:
    """The shape of ``q @ k^T``: ``(*, L_q, L_k)``, batch dimensions broadcast."""
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    return (*batch, q.shape[-2], k.shape[-2])


def _attention_weights(
    q: torch.Tensor,
    k: torch.Tensor,
    attn_mask: torch.Tensor | None,
    scale: float | None,
) -> torch.Tensor:
    """:func:`attention_weights` on validated arguments (a mask that broadcasts
    exactly)."""
    if q.dtype in HALF_DTYPES:
        if attn_mask is not None and attn_mask.dtype != torch.bool:
            attn_mask = attn_mask.float()
        return _attention_weights(q.float(), k.float(), attn_mask, scale).to(
            q.dtype
        )
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale  # (*, L_q, L_k)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    elif attn_mask is not None:
        scores = scores + attn_mask
    # (*, L_q, 1): a query with no finite score gets 0 weights, not 0/0 = NaN
    dead = (scores == float("-inf")).all(dim=-1, keepdim=True)
    return torch.softmax(scores.masked_fill(dead, 0.0), dim=-1).masked_fill(
        dead, 0.0
    )


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    r"""Scaled dot-product attention, as ``F.scaled_dot_product_attention``, with
    its arguments in its order.

    .. math::
        \mathrm{Attention}(Q, K, V)
        = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V

    See :func:`attention_weights` for the masks (bool: True = may attend; float:
    added to the scores) and for a query with no key.

    Args:
        query (Tensor): floating-point, ``(*, L_q, d_k)``.
        key (Tensor): the same dtype and ``d_k``, ``(*, L_k, d_k)``.
        value (Tensor): the same dtype, ``(*, L_k, d_v)``.
        attn_mask (Tensor or None): bool or the query's dtype. Default: ``None``.
        dropout_p (float): the probability of zeroing each attention weight, the
            others divided by ``1 - dropout_p``, drawn from torch's global
            generator as torch's does. Default: ``0.0``.
        is_causal (bool): let query ``i`` attend to keys ``0..i`` only (the
            upper-left triangle, as torch's); not together with ``attn_mask``.
            Default: ``False``.
        scale (float or None): keyword-only, as in torch; ``None`` is
            :math:`1/\sqrt{d_k}`. Default: ``None``.
        enable_gqa (bool): keyword-only; grouped-query attention: the query's
            heads (dimension -3) share key and value heads, each of ``H_kv``
            heads repeated ``H_q / H_kv`` times. Default: ``False``.

    Shape:
        query ``(*, L_q, d_k)``, key ``(*, L_k, d_k)``, value ``(*, L_k, d_v)``;
        with ``enable_gqa``, query ``(*, H_q, L_q, d_k)`` and key and value
        ``(*, H_kv, L_k, d)``; output ``(*, L_q, d_v)``.

    Example:
        >>> import torch
        >>> from course_lib.functional import scaled_dot_product_attention
        >>> q = k = torch.eye(2)
        >>> v = torch.tensor([[1.0], [3.0]])
        >>> # uniform weights
        >>> out = scaled_dot_product_attention(q, k, v, scale=0.0)
        >>> [f"{o:.1f}" for o in out[:, 0].tolist()]
        ['2.0', '2.0']
        >>> out = scaled_dot_product_attention(q, k, v, is_causal=True)
        >>> f"{out[0, 0].item():.1f}"  # the first query sees the first key only
        '1.0'
    """
    dropout_p = check_probability(dropout_p, "dropout_p")
    is_causal = check_bool(is_causal, "is_causal")
    if check_bool(enable_gqa, "enable_gqa"):
        key, value = _repeat_kv_heads(query, key, value)
    q, k = check_query_key(query, key)
    if scale is not None:
        scale = check_real(scale, "scale")
    if is_causal and attn_mask is not None:
        raise ValueError("is_causal=True takes no attn_mask (it is the mask)")
    if is_causal:
        attn_mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
    elif attn_mask is not None:
        attn_mask = check_attn_mask(attn_mask, _scores_shape(q, k), q.dtype)
    v = check_float_tensor(value, "value", min_dim=2)
    if v.shape[-2] != k.shape[-2]:
        raise ValueError(
            f"value must have as many positions as key ({k.shape[-2]}), got "
            f"{v.shape[-2]}"
        )
    if v.dtype != q.dtype:
        raise TypeError(
            f"value must have dtype {q.dtype} like query, got {v.dtype}"
        )
    return _scaled_dot_product_attention(q, k, v, attn_mask, scale, dropout_p)


def _repeat_kv_heads(
    query: object, key: object, value: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """``key`` and ``value`` with each head (dimension -3) repeated
    ``H_q / H_kv`` times, for grouped-query attention."""
    q = check_float_tensor(query, "query", min_dim=3)
    k = check_float_tensor(key, "key", min_dim=3)
    v = check_float_tensor(value, "value", min_dim=3)
    h_q, h_kv = q.shape[-3], k.shape[-3]
    if v.shape[-3] != h_kv or h_q % h_kv:
        raise ValueError(
            "enable_gqa needs key and value with the same number of heads "
            f"(dimension -3), dividing the query's {h_q}; got key {h_kv}, value "
            f"{v.shape[-3]}"
        )
    repeats = h_q // h_kv
    return k.repeat_interleave(repeats, -3), v.repeat_interleave(repeats, -3)


def _scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None,
    scale: float | None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """:func:`scaled_dot_product_attention` on validated arguments; 16-bit inputs
    are computed in float32 and only the output is rounded back."""
    if q.dtype in HALF_DTYPES:
        if attn_mask is not None and attn_mask.dtype != torch.bool:
            attn_mask = attn_mask.float()
        out = _scaled_dot_product_attention(
            q.float(), k.float(), v.float(), attn_mask, scale, dropout_p
        )
        return out.to(q.dtype)
    weights = _attention_weights(q, k, attn_mask, scale)
    if dropout_p > 0.0:
        weights = torch.dropout(weights, dropout_p, train=True)
    return torch.matmul(weights, v)


def padding_mask(
    lengths: torch.Tensor | Sequence[int], max_len: int
) -> torch.Tensor:
    r"""Boolean mask of real tokens: ``mask[b, t] = t < lengths[b]``.

    Args:
        lengths (Tensor or sequence of int): the number of real tokens of each
            sequence.
        max_len (int): ``T``, the padded length.

    Shape:
        lengths ``(B,)`` (ints in ``[0, max_len]``); output ``(B, max_len)`` bool.

    Example:
        >>> from course_lib.functional import padding_mask
        >>> # "Hi Nitish <pad> <pad>" and a full row
        >>> padding_mask([2, 4], 4).tolist()
        [[True, True, False, False], [True, True, True, True]]
    """
    max_len = check_int(max_len, "max_len", minimum=0)
    if isinstance(lengths, torch.Tensor):
        if (
            lengths.dtype.is_floating_point
            or lengths.dtype == torch.bool
            or lengths.is_complex()
        ):
            raise TypeError(
                f"lengths must hold integers, got dtype {lengths.dtype}"
            )
        lens = lengths.to(torch.long)
    elif isinstance(lengths, Sequence) and not isinstance(lengths, str):
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in lengths):
            raise TypeError(f"lengths must hold integers, got {list(lengths)!r}")
        lens = torch.tensor(list(lengths), dtype=torch.long)
    else:
        raise TypeError(
            "lengths must be a tensor or a sequence of ints, got "
            f"{type(lengths).__name__}"
        )
    if lens.dim() != 1:
        raise ValueError(
            "lengths must be 1-D (one length per sequence), got shape "
            f"{tuple(lens.shape)}"
        )
    if lens.numel() and (int(lens.min()) < 0 or int(lens.max()) > max_len):
        raise ValueError(
            f"lengths must lie in [0, max_len={max_len}], got {lens.tolist()}"
        )
    positions = torch.arange(max_len)  # (T,)
    return positions.unsqueeze(0) < lens.unsqueeze(1)  # (B, T)
