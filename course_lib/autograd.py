r"""LayerNorm with the backward pass derived by hand in chapter 4.

For one row with :math:`\hat x = (x - \mu)\,r`,
:math:`r = 1/\sqrt{\sigma^2+\epsilon}` and output
:math:`y = \gamma \odot \hat x + \beta`, write
:math:`g = \gamma \odot \partial L/\partial y` for the gradient arriving at
:math:`\hat x`. Then

.. math::
    \frac{\partial L}{\partial x} = r\left(g - \overline{g}
    - \hat x\,\overline{g\hat x}\right),
    \qquad
    \frac{\partial L}{\partial \gamma}
    = \sum_{\text{rows}} \frac{\partial L}{\partial y} \hat x,
    \qquad
    \frac{\partial L}{\partial \beta}
    = \sum_{\text{rows}} \frac{\partial L}{\partial y},

where a bar is the mean over the normalized dimensions. The input gradient is ``g``
with its components along the all-ones vector and along ``x_hat`` removed, then
scaled by ``r``: that is why rows with a small spread get large gradients, and why
the gradient is orthogonal to the all-ones vector exactly and to ``x_hat`` up to a
term proportional to ``eps`` (``x_hat`` has squared norm
``D * sigma^2 / (sigma^2 + eps)``, not exactly ``D``; chapter 4 computes the term).

Two implementations of these formulas live here, under two names:

* :func:`layer_norm_backward` is the **reference**: the formulas line for line in
  plain tensor operations, the code chapter 4 prints. The tests check the fast
  backward against it, and every LayerNorm of ``course_lib`` (it included) against
  torch. :func:`layer_norm_forward` computes the ``x_hat`` and ``rstd`` it takes.
* :func:`layer_norm_backward_blocked` and :class:`LayerNormFunction` compute the
  same formulas **fast on a CPU**: the rows a block at a time (:func:`row_blocks`),
  so that each block stays in the cache over the formula's several passes; buffers
  reused in place; and, in the Function, the input saved instead of ``x_hat``.
  :func:`layer_norm_backward_blocked` says how.

``make bench`` times :class:`LayerNormFunction` against torch's fused kernel and
against the notes' module differentiated by autograd, and counts the passes each one
makes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from ._checks import (
    as_shape,
    check_backward_args,
    check_eps,
    check_float_tensor,
    check_param,
)
from .functional import HALF_DTYPES

__all__ = [
    "LayerNormFunction",
    "ROW_BLOCK_NUMEL",
    "layer_norm_backward",
    "layer_norm_backward_blocked",
    "layer_norm_forward",
    "row_blocks",
]

# Numbers per block of rows: 2**18 float32 numbers are 1 MiB, so that a block and
# the few blocks computed from it stay in a core's cache (1 to 2 MiB of L2 on most
# CPUs).
ROW_BLOCK_NUMEL = 2**18


def row_blocks(*tensors: torch.Tensor) -> zip:
    """Cut tensors with the same number of rows into the same consecutive blocks of
    rows.

    The first tensor sets the block size: about ``ROW_BLOCK_NUMEL`` of its numbers,
    and at least one row. The blocks are views; ``zip`` yields one block of each
    tensor.

    Shape:
        every tensor ``(N, *)``; each block ``(n, *)``, the ``n`` summing to ``N``.
    """
    first = tensors[0]
    # rows
    per_block = max(1, ROW_BLOCK_NUMEL // max(1, math.prod(first.shape[1:])))
    n_blocks = max(1, -(-first.shape[0] // per_block))  # ceil(N / per_block)
    return zip(*(t.chunk(n_blocks) for t in tensors), strict=True)


def layer_norm_forward(
    x: torch.Tensor,
    dims: tuple[int, ...],
    eps: float,
    *,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Return ``(x_hat, mean, rstd)``: ``x_hat = (x - mean) * rstd``,
    ``rstd = 1/sqrt(var + eps)``.

    .. math::
        \mu = \overline{x},\quad \sigma^2 = \overline{(x - \mu)^2},\quad
        r = \frac{1}{\sqrt{\sigma^2 + \epsilon}},\quad \hat x = (x - \mu)\,r

    The statistics are computed about each row's first element, as
    :func:`course_lib.functional.shifted_mean` explains, with ``torch.var_mean``:
    one pass, and exact for a constant row. Differentiable by autograd when ``x``
    requires grad, so that a reader can compare autograd with the hand formula.
    ``out``, a tensor shaped like ``x``, receives ``x_hat`` (without autograd only,
    as inside :class:`LayerNormFunction`).

    Shape:
        x ``(*, *normalized_shape)``; x_hat as x; mean and rstd ``(*, 1, ..., 1)``.
    """
    # Statistics about each row's first element: x - shift is exactly 0 for a
    # constant row, whose mean is then exact (and its output exactly beta).
    shift = x
    for d in dims:
        shift = shift.narrow(d, 0, 1)
    shifted = torch.sub(x, shift, out=out)
    # one pass for both (Welford's update), never E[x^2] - E[x]^2
    var, mean_s = torch.var_mean(shifted, dim=dims, correction=0, keepdim=True)
    rstd = torch.rsqrt(var + eps)
    mean = shift + mean_s
    # x - mean, as the backward recomputes it; into `shifted`'s memory when
    # autograd is not recording (it is not needed again)
    if shifted.requires_grad:
        x_hat = (x - mean) * rstd
    else:
        x_hat = torch.sub(x, mean, out=shifted).mul_(rstd)
    return x_hat, mean, rstd


def _gradient_buffers(
    x_rows: torch.Tensor,
    weight: torch.Tensor | None,
    *,
    grad_weight: bool,
    grad_bias: bool,
) -> tuple[torch.Tensor, ...]:
    """What :func:`_backward_blocks` reads and writes, for ``(N, D)`` rows.

    Returns ``(gamma, mean_of, ones, grad_input, grad_weight, grad_bias)``; the last
    two are zeros to add the blocks' sums to, or None when not asked for.

    Shape:
        gamma, grad_weight, grad_bias ``(D,)``; mean_of ``(D, 1)``; ones ``(N,)``;
        grad_input ``(N, D)``.
    """
    n, d = x_rows.shape
    gamma = x_rows.new_ones(d) if weight is None else weight.reshape(d)
    mean_of = (gamma / d).unsqueeze(-1)  # row @ mean_of = mean(gamma * row)
    ones = x_rows.new_ones(n)  # a product with it sums over the rows
    return (
        gamma,
        mean_of,
        ones,
        torch.empty_like(x_rows),
        x_rows.new_zeros(d) if grad_weight else None,
        x_rows.new_zeros(d) if grad_bias else None,
    )


def _backward_blocks(
    blocks: Iterable[tuple[torch.Tensor, ...]],
    gamma: torch.Tensor,
    mean_of: torch.Tensor,
    grad_weight: torch.Tensor | None,
    grad_bias: torch.Tensor | None,
) -> None:
    r"""The backward formula on each block of rows ``(x_hat, dy, rstd, ones,
    grad_input)`` of ``blocks``, written into the block's ``grad_input`` and into
    ``grad_weight`` and ``grad_bias``.

    ``grad_input`` receives
    :math:`r(g - \overline{g} - \hat x\,\overline{g\hat x})`; the block's sums over
    rows of ``dL/dy * x_hat`` and ``dL/dy`` are added to ``grad_weight`` and
    ``grad_bias`` (unless None). Runs without autograd.

    Shape:
        dy, x_hat, grad_input ``(n, D)``; rstd ``(n, 1)``; ones ``(n,)``; gamma,
        grad_weight, grad_bias ``(D,)``; mean_of ``(D, 1)``, ``gamma / D``.
    """
    for x_hat, dy, rstd, ones, grad_input in blocks:
        buf = torch.mul(dy, x_hat, out=grad_input)  # dL/dy * x_hat
        if grad_weight is not None:
            grad_weight.addmv_(buf.T, ones)  # += sum over rows of dL/dy * x_hat
        if grad_bias is not None:
            grad_bias.addmv_(dy.T, ones)  # += sum over rows of dL/dy
        # g = gamma * dL/dy is the gradient arriving at x_hat. Its two row means are
        # products with gamma / D, so no g is built:
        g_mean = dy @ mean_of  # mean(g), (n, 1): along the all-ones vector
        gx_mean = buf @ mean_of  # mean(g * x_hat): along x_hat
        # grad_input = r * (g - mean(g) - x_hat * mean(g * x_hat)), over buf:
        torch.addcmul(g_mean.neg_(), dy, gamma, out=buf)  # g - mean(g)
        # - x_hat * mean(g * x_hat), * r
        buf.addcmul_(x_hat, gx_mean, value=-1).mul_(rstd)


def layer_norm_backward(
    grad_output: torch.Tensor,
    x_hat: torch.Tensor,
    rstd: torch.Tensor,
    weight: torch.Tensor | None,
    dims: tuple[int, ...],
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    r"""The LayerNorm backward derived in chapter 4: the reference for every other
    one.

    With :math:`g = \gamma \odot \partial L/\partial y`, the gradient arriving at
    :math:`\hat x`, and a bar for the mean over the normalized dimensions ``dims``,

    .. math::
        \frac{\partial L}{\partial x}
        = r\left(g - \overline{g} - \hat x\,\overline{g\hat x}\right),
        \qquad
        \frac{\partial L}{\partial \gamma}
        = \sum_{\text{rows}} \frac{\partial L}{\partial y} \odot \hat x,
        \qquad
        \frac{\partial L}{\partial \beta}
        = \sum_{\text{rows}} \frac{\partial L}{\partial y}.

    One line per term, in plain tensor operations: nothing in place, no blocks, so
    that the code reads as the formula (:func:`layer_norm_backward_blocked` computes
    the same values faster). It is differentiable by autograd when its inputs
    require grad.

    Args:
        grad_output: :math:`\partial L/\partial y`, the gradient arriving at the
            output.
        x_hat: the normalized input :math:`\hat x = (x - \mu)\,r`, as
            :func:`layer_norm_forward` returns it.
        rstd: :math:`r = 1/\sqrt{\sigma^2 + \epsilon}`, one number per row, as
            :func:`layer_norm_forward` returns it.
        weight: :math:`\gamma`, or None for a LayerNorm without affine parameters
            (then :math:`g = \partial L/\partial y`).
        dims: the normalized dimensions, the trailing ones: ``(-1,)`` for a
            ``normalized_shape`` of one dimension, ``(-2, -1)`` for two.

    Returns:
        ``(grad_input, grad_weight, grad_bias)``: :math:`\partial L/\partial x`,
        :math:`\partial L/\partial\gamma` and :math:`\partial L/\partial\beta`; the
        last two are None when ``weight`` is None.

    Shape:
        grad_output, x_hat ``(*, *normalized_shape)``; rstd ``(*, 1, ..., 1)``;
        weight ``normalized_shape``; grad_input as x_hat; grad_weight and grad_bias
        ``normalized_shape``.

    Example::

        >>> import torch.nn.functional as F
        >>> x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
        >>> grad_y = torch.randn(4, 8, dtype=torch.float64)
        >>> # autograd through torch's LayerNorm
        >>> F.layer_norm(x, (8,)).backward(grad_y)
        >>> x_hat, mean, rstd = layer_norm_forward(x.detach(), (-1,), 1e-5)
        >>> grad_x, _, _ = layer_norm_backward(grad_y, x_hat, rstd, None, (-1,))
        >>> torch.allclose(grad_x, x.grad)
        True
    """
    check_backward_args(grad_output, x_hat, rstd, weight, dims)
    g = grad_output if weight is None else weight * grad_output  # arriving at x_hat
    g_mean = g.mean(dim=dims, keepdim=True)  # along the all-ones vector
    gx_mean = (g * x_hat).mean(dim=dims, keepdim=True)  # the coefficient of x_hat
    grad_input = rstd * (g - g_mean - x_hat * gx_mean)
    if weight is None:  # no gamma and beta to differentiate
        return grad_input, None, None
    # gamma and beta are shared by every row: sum over the rows
    shape = weight.shape  # normalized_shape
    grad_weight = (grad_output * x_hat).reshape(-1, *shape).sum(dim=0)
    grad_bias = grad_output.reshape(-1, *shape).sum(dim=0)
    return grad_input, grad_weight, grad_bias


def layer_norm_backward_blocked(
    grad_output: torch.Tensor,
    x_hat: torch.Tensor,
    rstd: torch.Tensor,
    weight: torch.Tensor | None,
    dims: tuple[int, ...],
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    r""":func:`layer_norm_backward`'s values, computed the fast way
    :class:`LayerNormFunction` does.

    The same arguments and results as :func:`layer_norm_backward` (the tests check
    that they agree to round-off); the same code as :class:`LayerNormFunction`'s
    backward, on the same blocks of rows, so its results equal that backward's
    exactly. Three choices make it fast on a CPU:

    * **Rows in blocks** (:func:`row_blocks`, about 1 MiB of float32 per block):
      each formula makes several passes over its data (the products, the row means,
      ...); over a block that fits in the CPU's cache only the first pass reads main
      memory.
    * **Nothing built twice**: the row means of ``g`` and ``g * x_hat`` are products
      with ``gamma / D`` (``g`` is never built), the sums over rows are products
      with a vector of ones, and ``dL/dy * x_hat``, computed once, serves
      ``dL/dgamma`` and the mean of ``g * x_hat`` before its memory receives the
      input gradient.
    * **In place**: every intermediate is written over one ``(N, D)`` buffer, which
      becomes ``grad_input`` (:func:`_backward_blocks`).

    Like any backward pass it runs without autograd: its results do not require
    grad.

    Shape:
        as :func:`layer_norm_backward`'s.
    """
    check_backward_args(grad_output, x_hat, rstd, weight, dims)
    shape = x_hat.shape[x_hat.dim() - len(dims) :]  # normalized_shape
    d = math.prod(shape)  # D, the number of normalized features
    with torch.no_grad():
        # one row per normalized slice: (N, D)
        dy, x_rows, r = (
            grad_output.reshape(-1, d),
            x_hat.reshape(-1, d),
            rstd.reshape(-1, 1),
        )
        affine = weight is not None
        gamma, mean_of, ones, grad_input, grad_weight, grad_bias = (
            _gradient_buffers(x_rows, weight, grad_weight=affine, grad_bias=affine)
        )
        blocks = row_blocks(x_rows, dy, r, ones, grad_input)
        _backward_blocks(blocks, gamma, mean_of, grad_weight, grad_bias)
    if affine:
        grad_weight, grad_bias = grad_weight.view(shape), grad_bias.view(shape)
    return grad_input.view(grad_output.shape), grad_weight, grad_bias


class LayerNormFunction(torch.autograd.Function):
    r"""LayerNorm as a ``torch.autograd.Function`` with the hand-derived backward.

    ``LayerNormFunction.apply(input, normalized_shape, weight, bias, eps)`` computes
    the same values as ``F.layer_norm``; its backward is the formula of
    :func:`layer_norm_backward`, computed as :func:`layer_norm_backward_blocked`
    does (the same :func:`_backward_blocks` on the same blocks of rows), not
    autograd through the forward's operations. The forward keeps the input and each
    row's mean and ``rstd``, as ``F.layer_norm`` does; the backward recomputes each
    block's ``x_hat`` from them.

    Shape:
        input ``(*, *normalized_shape)``; weight and bias ``normalized_shape`` or
        None; output as input.
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
        d = math.prod(shape)  # D
        # 16-bit input is computed in float32, as torch does: only y is rounded
        compute = torch.float32 if x.dtype in HALF_DTYPES else x.dtype
        x = x.reshape(-1, d).to(compute)  # rows: (N, D)
        w = None if weight is None else weight.reshape(d).to(compute)
        b = None if bias is None else bias.reshape(d).to(compute)
        y = torch.empty_like(x)
        stats = []  # (mean, rstd) of every block of rows, (n, 1) each
        for x_b, y_b in row_blocks(x, y):
            # into y
            x_hat, mean, rstd = layer_norm_forward(x_b, (-1,), eps, out=y_b)
            stats.append((mean, rstd))
            if w is not None and b is not None:
                # y = x_hat * weight + bias, in place
                torch.addcmul(b, x_hat, w, out=y_b)
            elif w is not None:
                y_b.mul_(w)
            elif b is not None:
                y_b.add_(b)
        ctx.save_for_backward(x, w)
        ctx.stats = stats  # made here, neither input nor output: kept on ctx
        ctx.input_shape, ctx.param_shape = input.shape, shape
        ctx.has_bias = bias is not None
        ctx.dtypes = input.dtype, None if weight is None else weight.dtype
        return y.view(input.shape).to(input.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, grad_output: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, w = ctx.saved_tensors
        dy = grad_output.reshape(x.shape).to(x.dtype)  # (N, D)
        gamma, mean_of, ones, grad_input, grad_weight, grad_bias = (
            _gradient_buffers(
                x, w, grad_weight=w is not None, grad_bias=ctx.has_bias
            )
        )
        blocks = list(row_blocks(x, dy, ones, grad_input))
        # the first block is the largest; reused
        x_hat = torch.empty_like(blocks[0][0])

        def recomputed() -> Iterator[tuple[torch.Tensor, ...]]:
            for (x_b, dy_b, ones_b, grad_b), (mean, rstd) in zip(
                blocks, ctx.stats, strict=True
            ):
                # as forward; each block's x_hat is used before the next's
                x_hat_b = torch.sub(x_b, mean, out=x_hat[: len(x_b)]).mul_(rstd)
                yield x_hat_b, dy_b, rstd, ones_b, grad_b

        _backward_blocks(recomputed(), gamma, mean_of, grad_weight, grad_bias)
        shape = ctx.param_shape
        input_dtype, param_dtype = ctx.dtypes
        return (
            grad_input.view(ctx.input_shape).to(input_dtype),
            None,
            None
            if grad_weight is None
            else grad_weight.view(shape).to(param_dtype),
            None if grad_bias is None else grad_bias.view(shape).to(param_dtype),
            None,
        )
