"""LayerNormFunction's derived backward: gradcheck in float64, and its geometry.

Its values and gradients against torch, and against the readable reference
``layer_norm_backward``, are in test_layernorm_implementations.py.
"""

from __future__ import annotations

import pytest
import torch

from course_lib.autograd import LayerNormFunction, layer_norm_forward


def _inputs(normalized_shape: tuple[int, ...], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = (
        torch.randn(3, 2, *normalized_shape, generator=g, dtype=torch.float64) * 2
        + 0.5
    )
    w = torch.randn(normalized_shape, generator=g, dtype=torch.float64)
    b = torch.randn(normalized_shape, generator=g, dtype=torch.float64)
    return x.requires_grad_(), w.requires_grad_(), b.requires_grad_()


@pytest.mark.parametrize("normalized_shape", [(5,), (3, 4)])
def test_gradcheck_with_weight_and_bias(normalized_shape):
    x, w, b = _inputs(normalized_shape)

    def fn(x, w, b):
        return LayerNormFunction.apply(x, normalized_shape, w, b, 1e-5)

    assert torch.autograd.gradcheck(fn, (x, w, b), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("normalized_shape", [(5,), (3, 4)])
def test_gradcheck_without_affine(normalized_shape):
    x, _, _ = _inputs(normalized_shape, seed=1)
    assert torch.autograd.gradcheck(
        lambda x: LayerNormFunction.apply(x, normalized_shape, None, None, 1e-5),
        (x,),
    )


def test_gradcheck_weight_only():
    x, w, _ = _inputs((6,), seed=2)
    assert torch.autograd.gradcheck(
        lambda x, w: LayerNormFunction.apply(x, (6,), w, None, 1e-5), (x, w)
    )


def test_input_gradient_is_orthogonal_to_ones_and_x_hat():
    """Exactly orthogonal to the ones vector; to x_hat up to a factor eps / (var +
    eps)."""
    x, w, b = _inputs((16,), seed=5)
    up = torch.randn(x.shape, dtype=torch.float64)
    eps = 1e-12
    LayerNormFunction.apply(x, (16,), w, b, eps).backward(up)
    x_hat, _, _ = layer_norm_forward(x.detach(), (-1,), eps)
    scale = x.grad.norm(dim=-1) * x_hat.norm(dim=-1)
    assert (x.grad.sum(-1).abs() / scale).max() < 1e-12
    assert ((x.grad * x_hat).sum(-1).abs() / scale).max() < 1e-10
