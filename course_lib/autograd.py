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
by ``1/sigma``: that is why it is orthogonal to both, and why rows with a small spread
get large gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._checks import as_shape, check_eps, check_float_tensor, check_param

__all__ = ["LayerNormFunction", "layer_norm_backward", "layer_norm_forward"]


def layer_norm_forward(
    x: torch.Tensor, dims: tuple[int, ...], eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return ``(x_hat, rstd)`` with ``x_hat = (x - mean) * rstd``, ``rstd = 1/sqrt(var + eps)``.

    Shape:
        x ``(*, *normalized_shape)``; x_hat as x; rstd ``(*, 1, ..., 1)``.
    """
    mean = x.mean(dim=dims, keepdim=True)
    centered = x - mean
    rstd = torch.rsqrt((centered * centered).mean(dim=dims, keepdim=True) + eps)
    return centered * rstd, rstd


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
    ``weight`` is None (no affine parameters to differentiate).

    Shape:
        grad_output, x_hat ``(*, *normalized_shape)``; rstd ``(*, 1, ..., 1)``;
        weight ``normalized_shape``; grad_weight and grad_bias ``normalized_shape``.
    """
    g = grad_output if weight is None else grad_output * weight
    g_mean = g.mean(dim=dims, keepdim=True)  # component along the all-ones vector
    gx_mean = (g * x_hat).mean(dim=dims, keepdim=True)  # component along x_hat
    grad_input = rstd * (g - g_mean - x_hat * gx_mean)
    if weight is None:
        return grad_input, None, None
    lead = tuple(range(grad_output.dim() - len(dims)))  # every non-normalized dim
    grad_weight = (grad_output * x_hat).sum(dim=lead) if lead else grad_output * x_hat
    grad_bias = grad_output.sum(dim=lead) if lead else grad_output.clone()
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
        y = x_hat
        if weight is not None:
            y = y * weight
        if bias is not None:
            y = y + bias
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
