"""Every LayerNorm of course_lib, one test: torch's values and gradients.

Five implementations, each called as ``(x, normalized_shape, weight, bias, eps,
grad_y) -> (y, (dL/dx, dL/dweight, dL/dbias))``:

* ``functional``: ``course_lib.functional.layer_norm``, differentiated by autograd;
* ``module``: ``course_lib.norms.LayerNorm``, loaded from an ``nn.LayerNorm``'s
  state_dict (so torch's parameter names are checked too);
* ``Function``: ``LayerNormFunction.apply``, its own hand-written backward;
* ``reference``: ``layer_norm_forward`` then the readable ``layer_norm_backward``;
* ``blocked``: ``layer_norm_forward`` then ``layer_norm_backward_blocked``.

Each is checked against ``torch.nn.functional.layer_norm`` and torch's autograd, in
float64 and float32, over shapes with one and two normalized dimensions, every
combination of weight and bias, and blocks of rows small enough that the blocked
code goes through several. The readable reference is then the oracle the blocked
code is checked against, and the Function's backward is checked to be the blocked
code itself.
"""

from __future__ import annotations

import doctest
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import autograd, norms
from course_lib import functional as CF
from course_lib.autograd import (
    LayerNormFunction,
    layer_norm_backward,
    layer_norm_backward_blocked,
    layer_norm_forward,
)

Grads = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]
Implementation = Callable[..., tuple[torch.Tensor, Grads]]

# against torch: round-off of two different computations of the same numbers
TOL = {
    torch.float64: dict(atol=1e-10, rtol=1e-10),
    torch.float32: dict(atol=1e-5, rtol=1e-5),
}


@dataclass(frozen=True)
class Case:
    id: str
    shape: tuple[int, ...]
    normalized_shape: tuple[int, ...]
    eps: float = 1e-5
    # ROW_BLOCK_NUMEL for the case; None: the library's
    block_numel: int | None = None


CASES = [
    # no leading dims: dL/dgamma is not a sum over rows
    Case("row-(8,)", (8,), (8,)),
    Case("one-(3,4)", (3, 4), (3, 4)),
    Case("rows-of-(3,4)-eps1e-3", (2, 3, 4), (3, 4), eps=1e-3),
    Case("rows-of-8-eps0.5", (2, 3, 8), (8,), eps=0.5),
    Case("training-(4,32,64)", (4, 32, 64), (64,)),
    # 5 rows of 8 per block
    Case("blocks-of-5-5-2-rows", (3, 4, 8), (8,), block_numel=40),
    Case("one-row-per-block", (3, 4, 8), (8,), block_numel=1),
    # 3 blocks
    Case("blocks-of-rows-of-(4,5)", (2, 3, 4, 5), (4, 5), block_numel=40),
]
AFFINE = ["weight-and-bias", "weight", "bias", "none"]


def _use_blocks(monkeypatch: pytest.MonkeyPatch, case: Case) -> None:
    if case.block_numel is not None:
        monkeypatch.setattr(autograd, "ROW_BLOCK_NUMEL", case.block_numel)


def _inputs(case: Case, affine: str, dtype: torch.dtype, seed: int = 0):
    """``(x, weight, bias, grad_y)``; weight or bias None as ``affine`` says."""
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(case.shape, generator=g, dtype=dtype) + 0.5
    w = torch.randn(case.normalized_shape, generator=g, dtype=dtype)
    b = torch.randn(case.normalized_shape, generator=g, dtype=dtype)
    grad_y = torch.randn(case.shape, generator=g, dtype=dtype)
    w = w if affine in ("weight-and-bias", "weight") else None
    b = b if affine in ("weight-and-bias", "bias") else None
    return x, w, b, grad_y


def _grads(y: torch.Tensor, grad_y: torch.Tensor, leaves) -> Grads:
    """Torch's autograd: dL/d(each leaf) for L = sum(y * grad_y); None for a None
    leaf."""
    grads = iter(
        torch.autograd.grad(
            (y * grad_y).sum(), [t for t in leaves if t is not None]
        )
    )
    return tuple(None if t is None else next(grads) for t in leaves)


def _leaves(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    return tuple(
        None if t is None else t.detach().clone().requires_grad_() for t in tensors
    )


def _run_functional(x, normalized_shape, weight, bias, eps, grad_y):
    x, weight, bias = _leaves(x, weight, bias)
    y = CF.layer_norm(x, normalized_shape, weight, bias, eps)
    return y.detach(), _grads(y, grad_y, (x, weight, bias))


def _run_module(x, normalized_shape, weight, bias, eps, grad_y):
    affine, has_bias = weight is not None, bias is not None
    assert affine or not has_bias, "nn.LayerNorm has no bias without a weight"
    # as modules are built: LayerNorm(8), not LayerNorm((8,))
    if len(normalized_shape) == 1:
        (normalized_shape,) = normalized_shape
    ref = nn.LayerNorm(
        normalized_shape, eps=eps, elementwise_affine=affine, bias=has_bias
    )
    ref = ref.to(x.dtype)
    if affine:
        with torch.no_grad():
            ref.weight.copy_(weight)
            if has_bias:
                ref.bias.copy_(bias)
    module = norms.LayerNorm(
        normalized_shape, eps=eps, elementwise_affine=affine, bias=has_bias
    )
    module = module.to(x.dtype)
    module.load_state_dict(ref.state_dict())  # torch's parameter names
    (x,) = _leaves(x)
    y = module(x)
    return y.detach(), _grads(y, grad_y, (x, module.weight, module.bias))


def _run_function(x, normalized_shape, weight, bias, eps, grad_y):
    x, weight, bias = _leaves(x, weight, bias)
    y = LayerNormFunction.apply(x, normalized_shape, weight, bias, eps)
    return y.detach(), _grads(y, grad_y, (x, weight, bias))


def _through(backward: Callable[..., Grads]) -> Implementation:
    """layer_norm_forward, then ``backward``: one of the two backward functions."""

    def run(x, normalized_shape, weight, bias, eps, grad_y):
        dims = tuple(range(-len(normalized_shape), 0))
        x_hat, _, rstd = layer_norm_forward(x, dims, eps)
        y = x_hat if weight is None else x_hat * weight
        y = y if bias is None else y + bias
        # dL/dbeta comes with dL/dgamma: with a bias and no weight, gamma is 1
        gamma = (
            weight if weight is not None or bias is None else torch.ones_like(bias)
        )
        grad_x, grad_w, grad_b = backward(grad_y, x_hat, rstd, gamma, dims)
        return y, (
            grad_x,
            grad_w if weight is not None else None,
            grad_b if bias is not None else None,
        )

    return run


IMPLEMENTATIONS: dict[str, Implementation] = {
    "functional": _run_functional,
    "module": _run_module,
    "Function": _run_function,
    "reference": _through(layer_norm_backward),
    "blocked": _through(layer_norm_backward_blocked),
}
# nn.LayerNorm, and so the module, has no bias without a weight
PAIRS = [
    (name, affine)
    for name in IMPLEMENTATIONS
    for affine in AFFINE
    if not (name == "module" and affine == "bias")
]


@pytest.mark.parametrize(
    "dtype", [torch.float64, torch.float32], ids=["f64", "f32"]
)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize(
    ("name", "affine"), PAIRS, ids=[f"{n}-{a}" for n, a in PAIRS]
)
def test_output_and_gradients_equal_torch(monkeypatch, name, affine, case, dtype):
    _use_blocks(monkeypatch, case)
    x, w, b, grad_y = _inputs(case, affine, dtype)
    y, grads = IMPLEMENTATIONS[name](
        x, case.normalized_shape, w, b, case.eps, grad_y
    )
    ref_x, ref_w, ref_b = _leaves(x, w, b)
    ref_y = F.layer_norm(ref_x, case.normalized_shape, ref_w, ref_b, case.eps)
    ref_grads = _grads(ref_y, grad_y, (ref_x, ref_w, ref_b))
    assert y.dtype == dtype and not y.requires_grad
    torch.testing.assert_close(y, ref_y.detach(), **TOL[dtype])
    for label, ours, ref in zip(
        ("dx", "dweight", "dbias"), grads, ref_grads, strict=True
    ):
        assert (ours is None) == (ref is None), label
        if ref is not None:
            torch.testing.assert_close(
                ours, ref, **TOL[dtype], msg=lambda m, lb=label: f"{lb}: {m}"
            )


# --- the readable reference is the oracle of the blocked code ---------------------

# the same formula, two orders of operations: round-off only
ORACLE_TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=1e-5, rtol=1e-5),
}


def _backward_args(case: Case, affine: str, dtype: torch.dtype):
    x, w, _, grad_y = _inputs(case, affine, dtype, seed=1)
    dims = tuple(range(-len(case.normalized_shape), 0))
    x_hat, _, rstd = layer_norm_forward(x, dims, case.eps)
    return grad_y, x_hat, rstd, w, dims


@pytest.mark.parametrize(
    "dtype", [torch.float64, torch.float32], ids=["f64", "f32"]
)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
# what the backward functions take
@pytest.mark.parametrize("affine", ["weight", "none"])
def test_blocked_backward_equals_the_readable_reference(
    monkeypatch, affine, case, dtype
):
    _use_blocks(monkeypatch, case)
    args = _backward_args(case, affine, dtype)
    fast, ref = layer_norm_backward_blocked(*args), layer_norm_backward(*args)
    for label, a, r in zip(("dx", "dweight", "dbias"), fast, ref, strict=True):
        assert (a is None) == (r is None) == (affine == "none" and label != "dx"), (
            label
        )
        if r is not None:
            assert a.shape == r.shape and a.dtype == r.dtype, label
            torch.testing.assert_close(
                a, r, **ORACLE_TOL[dtype], msg=lambda m, lb=label: f"{lb}: {m}"
            )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("affine", ["weight-and-bias", "none"])
def test_function_backward_is_the_blocked_code(monkeypatch, affine, case):
    """LayerNormFunction's backward runs layer_norm_backward_blocked's code on the
    same blocks of rows: equal to the last bit, not only to round-off (so it is no
    autograd)."""
    _use_blocks(monkeypatch, case)
    x, w, b, grad_y = _inputs(case, affine, torch.float64, seed=2)
    _, grads = _run_function(x, case.normalized_shape, w, b, case.eps, grad_y)
    d = math.prod(case.normalized_shape)
    rows = x.reshape(-1, d)  # as the Function sees its input: (N, D)
    x_hat, _, rstd = layer_norm_forward(rows, (-1,), case.eps)
    gamma = None if w is None else w.reshape(d)
    blocked = layer_norm_backward_blocked(
        grad_y.reshape(-1, d), x_hat, rstd, gamma, (-1,)
    )
    for label, ours, ref in zip(
        ("dx", "dweight", "dbias"), grads, blocked, strict=True
    ):
        assert (ours is None) == (ref is None), label
        if ref is not None:
            assert torch.equal(ours, ref.view(ours.shape)), label


@pytest.mark.parametrize(
    "backward", [layer_norm_backward, layer_norm_backward_blocked]
)
def test_backward_modifies_none_of_its_inputs(backward):
    args = _backward_args(CASES[5], "weight", torch.float64)
    before = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    grads = backward(*args)
    for a, saved in zip(args, before, strict=True):
        assert torch.equal(a, saved) if isinstance(a, torch.Tensor) else a == saved
    assert not any(g.requires_grad for g in grads)


def test_reference_is_differentiable_twice_as_torch():
    """Plain tensor operations: autograd differentiates the reference itself, and
    gets torch's second derivative of LayerNorm (the blocked code runs without
    autograd)."""
    x, w, b, grad_y = _inputs(CASES[2], "weight-and-bias", torch.float64, seed=3)
    v = torch.randn(
        x.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype
    )
    x = x.requires_grad_()
    (grad_x_torch,) = torch.autograd.grad(
        (F.layer_norm(x, (3, 4), w, b, 1e-3) * grad_y).sum(), x, create_graph=True
    )
    x_hat, _, rstd = layer_norm_forward(x, (-2, -1), 1e-3)
    grad_x, _, _ = layer_norm_backward(grad_y, x_hat, rstd, w, (-2, -1))
    torch.testing.assert_close(grad_x, grad_x_torch, **TOL[torch.float64])
    (ours,) = torch.autograd.grad((grad_x * v).sum(), x)
    (ref,) = torch.autograd.grad((grad_x_torch * v).sum(), x)
    torch.testing.assert_close(ours, ref, **TOL[torch.float64])


def test_reference_docstring_example_runs():
    globs = {"torch": torch, "layer_norm_forward": layer_norm_forward}
    globs["layer_norm_backward"] = layer_norm_backward
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(layer_norm_backward, globs=globs):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 6 and result.failed == 0


# --- bad arguments name themselves ------------------------------------------------


def _bad(error: type[Exception], **change):
    """A bad-argument case: the error expected when one argument of a valid call,
    named by the keyword, is changed by the function given for it."""
    ((name, f),) = change.items()

    def changed(args: dict) -> dict:
        return {**args, name: f(args[name])}

    return error, name, changed


BAD = {
    "x_hat not a tensor": _bad(TypeError, x_hat=lambda t: t.tolist()),
    "x_hat of ints": _bad(TypeError, x_hat=lambda t: t.long()),
    "grad_output of another shape": _bad(ValueError, grad_output=lambda t: t[:1]),
    "grad_output of another dtype": _bad(
        TypeError, grad_output=lambda t: t.float()
    ),
    "rstd without keepdim": _bad(ValueError, rstd=lambda t: t.reshape(-1)),
    "rstd of another dtype": _bad(TypeError, rstd=lambda t: t.float()),
    "weight flattened": _bad(ValueError, weight=lambda t: t.reshape(-1)),
    "dims a list": _bad(TypeError, dims=list),
    "dims empty": _bad(ValueError, dims=lambda d: ()),
    "dims not trailing": _bad(ValueError, dims=lambda d: (0, 1)),
    "dims out of range": _bad(ValueError, dims=lambda d: (-4, -3)),
    "dims repeated": _bad(ValueError, dims=lambda d: (-1, -1)),
}


@pytest.mark.parametrize(
    "backward", [layer_norm_backward, layer_norm_backward_blocked]
)
@pytest.mark.parametrize("bad", list(BAD))
def test_bad_arguments_raise_naming_the_argument(backward, bad):
    error, name, change = BAD[bad]
    names = ("grad_output", "x_hat", "rstd", "weight", "dims")
    # x_hat (2, 3, 4) normalized over (3, 4): dims (-2, -1)
    args = dict(
        zip(names, _backward_args(CASES[2], "weight", torch.float64), strict=True)
    )
    backward(**args)  # the valid call runs
    with pytest.raises(error, match=rf"^{name} "):
        backward(**change(args))
