"""Claims chapter 2 makes about the notes' 5 x 3 BatchNorm table."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib import functional as CF
from course_lib.data import batchnorm_table
from course_lib.norms import BatchNorm

NOTES_STD = (2.65, 1.36, 1.09)  # the notes' hand-worked column standard deviations


@pytest.fixture
def z() -> torch.Tensor:
    return batchnorm_table()


def test_batchnorm_normalizes_with_biased_and_stores_unbiased_variance(z):
    n = z.shape[0]
    ss = ((z - z.mean(0)) ** 2).sum(0)
    bn = nn.BatchNorm1d(3, momentum=1.0).double()
    out = bn(z)
    torch.testing.assert_close(bn.running_var, ss / (n - 1))
    torch.testing.assert_close(out, (z - z.mean(0)) / torch.sqrt(ss / n + bn.eps))
    # and the two conventions differ by sqrt((n-1)/n) on this table
    ratio = torch.sqrt(ss / n) / torch.sqrt(ss / (n - 1))
    torch.testing.assert_close(
        ratio, torch.full((3,), math.sqrt((n - 1) / n), dtype=torch.float64)
    )


def test_notes_mix_conventions(z):
    """z3's std is the unbiased one (to 2 decimals); z1's and z2's match neither."""
    biased, unbiased = z.std(0, unbiased=False), z.std(0, unbiased=True)
    verdict = []
    for j, value in enumerate(NOTES_STD):
        hits = [
            name
            for name, s in (("biased", biased[j]), ("unbiased", unbiased[j]))
            if abs(value - s) < 0.006
        ]
        verdict.append(hits[0] if hits else "neither")
    assert verdict == ["neither", "neither", "unbiased"]


def test_course_lib_matches_hand_formula_and_torch(z):
    gamma = torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64)
    beta = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    hand = (
        gamma * (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5) + beta
    )
    torch.testing.assert_close(
        CF.batch_norm(z, None, None, gamma, beta, training=True), hand
    )
    y = CF.batch_norm(z, None, None, gamma, beta, training=True)
    torch.testing.assert_close(y.mean(0), beta)
    torch.testing.assert_close(
        y.std(0, unbiased=False), gamma.abs(), atol=1e-5, rtol=1e-5
    )


def test_sample_gets_different_outputs_in_different_batches_but_not_in_eval(z):
    other = torch.cat([z[:1], z[1:] * 2 + 3])
    a = CF.batch_norm(z, None, None, training=True)[0]
    b = CF.batch_norm(other, None, None, training=True)[0]
    assert (a - b).abs().max() > 0.1
    bn = BatchNorm(3).double()
    bn(z)
    bn.eval()
    assert torch.equal(bn(z[:1]), bn(other)[:1])


def test_batch_of_one_fails_and_batch_of_two_gives_plus_minus_one(z):
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        BatchNorm(3).double()(z[:1])
    with pytest.raises(ValueError):
        nn.BatchNorm1d(3).double()(z[:1])
    g = torch.Generator().manual_seed(1)
    pairs = torch.randn(500, 2, 3, generator=g, dtype=torch.float64) * 100
    out = torch.stack([CF.batch_norm(p, None, None, training=True) for p in pairs])
    gap = (pairs[:, 0] - pairs[:, 1]).abs()
    far = (gap > 0.2).unsqueeze(1).expand_as(out)
    assert ((out.abs() - 1).abs()[far] < 1e-3).all()
    assert (out[:, 0] * out[:, 1] <= 0).all()


def test_running_statistics_follow_the_momentum_formula(z):
    m = 0.1
    bn = BatchNorm(3, momentum=m).double()
    r_mean, r_var = (
        torch.zeros(3, dtype=torch.float64),
        torch.ones(3, dtype=torch.float64),
    )
    for b in (z, z + 10, z * 2):
        bn(b)
        r_mean = (1 - m) * r_mean + m * b.mean(0)
        r_var = (1 - m) * r_var + m * b.var(0, unbiased=True)
    torch.testing.assert_close(bn.running_mean, r_mean)
    torch.testing.assert_close(bn.running_var, r_var)
