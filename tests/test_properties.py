"""Property tests (hypothesis): what holds for every input, not just examples."""

from __future__ import annotations

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from course_lib import functional as CF
from course_lib import norms as N

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


@st.composite
def rows(
    draw, min_d: int = 2, max_d: int = 12, max_rows: int = 6, min_rows: int = 1
):
    """A (n, d) float64 tensor whose rows are not (nearly) constant."""
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(min_d, max_d))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    scale = draw(st.floats(0.1, 100.0))
    offset = draw(st.floats(-100.0, 100.0))
    return x * scale + offset


@SETTINGS
@given(
    x=rows(),
    shift=st.floats(-1e3, 1e3),
    factor=st.floats(1e-2, 1e3),
    row=st.integers(0, 5),
)
def test_layer_norm_invariant_to_shifting_and_scaling_one_row(
    x, shift, factor, row
):
    row = row % x.shape[0]
    # Invariance is exact for eps = 0; with eps > 0 it holds while eps << the row
    # variance.
    assume(
        float(x.var(dim=-1, unbiased=False).min()) * min(factor, 1.0) ** 2 > 1e-4
    )
    moved = x.clone()
    moved[row] = moved[row] * factor + shift
    d = x.shape[1]
    # eps is tiny relative to every row's variance, so invariance holds to float64
    # precision
    y, y_moved = CF.layer_norm(x, d, eps=1e-12), CF.layer_norm(moved, d, eps=1e-12)
    torch.testing.assert_close(y_moved, y, atol=1e-7, rtol=1e-7)


@SETTINGS
@given(x=rows(), other=rows(), row=st.integers(0, 5))
def test_layer_norm_row_does_not_depend_on_other_rows(x, other, row):
    row = row % x.shape[0]
    d = x.shape[1]
    # any width
    other = other[:, :1].expand(-1, d) + torch.arange(d, dtype=torch.float64)
    batch = torch.cat([other, x[row : row + 1], other])
    alone = CF.layer_norm(x[row : row + 1], d)
    in_batch = CF.layer_norm(batch, d)[other.shape[0] : other.shape[0] + 1]
    assert torch.equal(in_batch, alone)


@SETTINGS
@given(x=rows(min_d=3, max_rows=6), mates=rows(min_d=3, max_rows=6, min_rows=2))
def test_batch_norm_training_output_depends_on_batch_mates(x, mates):
    """A sample's training-mode output changes when its batch-mates change.

    The same sample goes into two batches: one with the drawn mates, and one whose
    mates sit symmetrically around it, so that it is that batch's mean and must
    output 0. (Comparing against rescaled mates is not enough: a far outlier
    normalizes to nearly the same value whatever its mates are.)
    """
    c = min(x.shape[1], mates.shape[1])
    sample = x[:1, :c]
    bn = N.BatchNorm(c).to(torch.float64)
    out_a = bn(torch.cat([sample, mates[:, :c]]))[0]
    # the sample is not already its batch's mean
    assume(float(out_a.detach().abs().max()) > 1e-3)
    spread = torch.ones_like(sample)
    out_b = bn(torch.cat([sample, sample + spread, sample - spread]))[0]
    assert torch.allclose(out_b, torch.zeros_like(out_b), atol=1e-12)
    assert not torch.allclose(out_a, out_b, atol=1e-6)


@SETTINGS
@given(x=rows(min_d=3, max_rows=6), mates=rows(min_d=3, max_rows=6))
def test_batch_norm_eval_output_does_not_depend_on_batch_mates(x, mates):
    c = min(x.shape[1], mates.shape[1])
    bn = N.BatchNorm(c).to(torch.float64)
    bn.train()
    bn(
        torch.randn(
            16, c, generator=torch.Generator().manual_seed(0), dtype=torch.float64
        )
    )
    bn.eval()
    sample = x[:1, :c]
    alone = bn(sample)
    in_batch = bn(torch.cat([sample, mates[:, :c]]))[:1]
    assert torch.equal(in_batch, alone)


@SETTINGS
@given(x=rows())
def test_layer_norm_rows_have_zero_mean_and_radius_sqrt_d(x):
    d = x.shape[1]
    y = CF.layer_norm(x, d, eps=1e-12)
    assert y.mean(-1).abs().max() < 1e-9
    torch.testing.assert_close(
        y.norm(dim=-1), torch.full((x.shape[0],), d**0.5, dtype=torch.float64)
    )


@SETTINGS
@given(x=rows(), eps=st.sampled_from([1e-12, 1e-5, 1.0]))
def test_norm_modules_compute_exactly_what_the_checked_functions_compute(x, eps):
    """The modules call functional's unchecked kernels: same numbers, to the last
    bit."""
    d = x.shape[1]
    layer = N.LayerNorm(d, eps=eps, dtype=torch.float64)
    rms = N.RMSNorm(d, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        for p in (layer.weight, layer.bias, rms.weight):
            p.copy_(torch.linspace(-2.0, 3.0, d, dtype=torch.float64))
    expected = CF.layer_norm(x, d, layer.weight, layer.bias, eps)
    assert torch.equal(layer(x), expected)
    assert torch.equal(rms(x), CF.rms_norm(x, d, rms.weight, eps))
    bn = N.BatchNorm(d, eps=eps, dtype=torch.float64)
    mean, var = (
        torch.zeros(d, dtype=torch.float64),
        torch.ones(d, dtype=torch.float64),
    )
    if x.shape[0] > 1:
        expected = CF.batch_norm(
            x, mean, var, bn.weight, bn.bias, training=True, eps=eps
        )
        assert torch.equal(bn(x), expected)
        assert torch.equal(bn.running_mean, mean) and torch.equal(
            bn.running_var, var
        )
