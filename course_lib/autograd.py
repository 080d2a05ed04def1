r"""LayerNorm with the backward pass derived by hand in chapter 4.

For one row with :math:`\hat x = (x - \mu)\,r`, :math:`r = 1/\sqrt{\sigma^2+\epsilon}`
and output :math:`y = \gamma \odot \hat x + \beta`, write :math:`g = \gamma \odot
\partial L/\partial y` for the gradient arriving at :math:`\hat x`. Then

.. math::
    \frac{\partial L}{\partial x} = r\left(g - \overline{g} - \hat x\,\overline{g\hat x}\right),
    \qquad
    \frac{\partial L}{\partial \gamma} = \sum_{\text{rows}} \frac{\partial L}{\partial y} \hat x,
    \qquad
    \frac{\partial L}{\partial \beta} = \sum_{\text{rows}} \frac{\partial L}{\partial y},

where a bar is the mean over the normalized dimensions. The input gradient is ``g``
with its components along the all-ones vector and along ``x_hat`` removed, then scaled
by ``r``: that is why rows with a small spread get large gradients, and why the
gradient is orthogonal to the all-ones vector exactly and to ``x_hat`` up to a term
proportional to ``eps`` (``x_hat`` has squared norm ``D * sigma^2 / (sigma^2 + eps)``,
not exactly ``D``; chapter 4 computes the term).

Speed. The code evaluates exactly these formulas, in an order that touches memory as
few times as whole-tensor operations allow, because on a CPU each operation over an
``(N, D)`` tensor costs about as much as reading and writing it once: the row means of
``g`` and of ``g * x_hat`` are dot products with ``gamma``; ``dL/dy * x_hat`` is
computed once, for ``dL/dgamma`` and for the mean of ``g * x_hat``, and its memory then
receives the input gradient; the other updates are in place. Forward and backward
together make 13 passes over ``(N, D)`` data, where a line-by-line transcription of the
formulas makes 18; ``make bench`` counts the passes and times them against torch's
fused kernel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ._checks import as_shape, check_eps, check_float_tensor, check_param

__all__ = ["LayerNormFunction", "layer_norm_backward", "layer_norm_forward"]


def layer_norm_forward(
    x: torch.Tensor, dims: tuple[int, ...], eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return ``(x_hat, rstd)`` with ``x_hat = (x - mean) * rstd``, ``rstd = 1/sqrt(var + eps)``.

    .. math::
        \mu = \overline{x},\quad \sigma^2 = \overline{(x - \mu)^2},\quad
        r = \frac{1}{\sqrt{\sigma^2 + \epsilon}},\quad \hat x = (x - \mu)\,r

    Shape:
        x ``(*, *normalized_shape)``; x_hat as x; rstd ``(*, 1, ..., 1)``.
    """
    n = math.prod(x.shape[d] for d in dims)  # D, the number of normalized features
    mean = x.mean(dim=dims, keepdim=True)
    centered = x - mean  # subtract the mean first (never E[x^2] - E[x]^2)
    # var = mean(centered ** 2) = |centered|^2 / D: the norm reads `centered` once,
    # where squaring would write a squared copy and read it back.
    var = torch.linalg.vector_norm(centered, dim=dims, keepdim=True).square() / n
    rstd = torch.rsqrt(var + eps)
    # In place when autograd is not recording (as inside LayerNormFunction.forward):
    # `centered` is not needed again. Out of place otherwise, so that this function stays
    # differentiable for a reader who wants to compare autograd with the hand formula.
    x_hat = centered * rstd if centered.requires_grad else centered.mul_(rstd)
    return x_hat, rstd


def _row_dot(a: torch.Tensor, v: torch.Tensor, k: int) -> torch.Tensor:
    """``(a * v).sum()`` over the last ``k`` dims, kept as size-1 dims, without building
    ``a * v`` (a matrix-vector product).

    Shape:
        a ``(*, *v.shape)``; v ``(d_1, ..., d_k)``; result ``(*, 1, ..., 1)``.
    """
    return torch.tensordot(a, v, dims=k).reshape(a.shape[:-k] + (1,) * k)


@torch.no_grad()
def layer_norm_backward(
    grad_output: torch.Tensor,
    x_hat: torch.Tensor,
    rstd: torch.Tensor,
    weight: torch.Tensor | None,
    dims: tuple[int, ...],
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    r"""The hand-derived LayerNorm backward.

    .. math::
        \frac{\partial L}{\partial x} = r\left(g - \overline{g} - \hat x\,\overline{g\hat x}\right),
        \quad g = \gamma\odot\frac{\partial L}{\partial y}

    Returns ``(grad_input, grad_weight, grad_bias)``; the last two are None when
    ``weight`` is None (no affine parameters to differentiate). Like any backward pass it
    runs without autograd: its results do not require grad.

    Shape:
        grad_output, x_hat ``(*, *normalized_shape)``; rstd ``(*, 1, ..., 1)``;
        weight ``normalized_shape``; grad_weight and grad_bias ``normalized_shape``.
    """
    k = len(dims)
    lead = tuple(range(grad_output.dim() - k))  # every non-normalized dim
    n = math.prod(x_hat.shape[-k:])  # D, the number of normalized features
    gamma = weight if weight is not None else x_hat.new_ones(x_hat.shape[-k:])
    # g = gamma * dL/dy is the gradient arriving at x_hat. Its two row means are dot
    # products with gamma, so they need no g:
    buf = grad_output * x_hat  # dL/dy * x_hat: summed over the rows, it is dL/dgamma
    g_mean = _row_dot(grad_output, gamma, k) / n  # mean(g): along the all-ones vector
    gx_mean = _row_dot(buf, gamma, k) / n  # mean(g * x_hat): along x_hat
    if weight is None:
        grad_weight = grad_bias = None
    else:
        grad_weight = buf.sum(dim=lead) if lead else buf.clone()
        grad_bias = grad_output.sum(dim=lead) if lead else grad_output.clone()
    # grad_input = r * (g - mean(g) - x_hat * mean(g * x_hat)), written over buf:
    grad_input = torch.addcmul(-g_mean, grad_output, gamma, out=buf)  # g - mean(g)
    grad_input.addcmul_(x_hat, gx_mean, value=-1).mul_(rstd)  # - x_hat * ..., then * r
    return grad_input, grad_weight, grad_bias


class LayerNormFunction(torch.autograd.Function):
    r"""LayerNorm as a ``torch.autograd.Function`` with the hand-derived backward.

    ``LayerNormFunction.apply(input, normalized_shape, weight, bias, eps)`` computes the
    same values as ``F.layer_norm``; its backward is :func:`layer_norm_backward`, not
    autograd through the forward's operations.

    Shape:
        input ``(*, *normalized_shape)``; weight and bias ``normalized_shape`` or None;
        output as input.
    """

    @staticmethod
    def forward(
        ctx: Any,
        input: torch.Tensor,
        normalized_shape: int | Sequence[int],
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        eps: float = 1e-5,
    ) -> torch.Tensor:
        x = check_float_tensor(input, "input")
        shape = as_shape(normalized_shape, x)
        eps = check_eps(eps)
        weight = check_param(weight, "weight", shape, x)
        bias = check_param(bias, "bias", shape, x)
        dims = tuple(range(-len(shape), 0))
        x_hat, rstd = layer_norm_forward(x, dims, eps)
        if weight is not None and bias is not None:
            y = torch.addcmul(bias, x_hat, weight)  # x_hat * weight + bias, one pass
        elif weight is not None:
            y = x_hat * weight
        elif bias is not None:
            y = x_hat + bias
        else:
            y = x_hat
        ctx.dims = dims
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x_hat, rstd, weight)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x_hat, rstd, weight = ctx.saved_tensors
        grad_input, grad_weight, grad_bias = layer_norm_backward(
            grad_output, x_hat, rstd, weight, ctx.dims
        )
        if weight is None and ctx.has_bias:  # bias without weight
            lead = tuple(range(grad_output.dim() - len(ctx.dims)))
            grad_bias = grad_output.sum(dim=lead) if lead else grad_output.clone()
        if not ctx.has_bias:
            grad_bias = None
        return grad_input, None, grad_weight, grad_bias, None
