"""Claims chapter 2 makes about the notes' 5 x 3 BatchNorm table."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib import functional as CF
from course_lib.data import batchnorm_table
from course_lib.norms import BatchNorm


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


def test_notes_std_are_neither_convention_by_the_books_rule(z):
    """By note_agrees none of the notes' stds is either convention's value; 1.09 is
    the unbiased z3 std truncated, 1.36 is nearer the unbiased z2 std, 2.65 is far
    from both z1 values."""
    from course_lib.notebook import note_agrees

    biased, unbiased = z.std(0, unbiased=False), z.std(0, unbiased=True)
    notes = ("2.65", "1.36", "1.09")
    for j, note in enumerate(notes):
        assert not note_agrees(note, biased[j])
        assert not note_agrees(note, unbiased[j])
    assert math.floor(unbiased[2].item() * 100) / 100 == 1.09
    assert abs(1.36 - unbiased[1]) < abs(1.36 - biased[1])
    assert min(abs(2.65 - biased[0]), abs(2.65 - unbiased[0])) > 0.1


def _random_batches(count: int = 5):
    """(seed, batch) pairs: batches of 3 to 8 samples x 3 units, float64."""
    for seed in range(count):
        g = torch.Generator().manual_seed(seed)
        rows = 3 + seed
        scale = 10.0 ** (seed - 2)
        yield g, torch.randn(rows, 3, generator=g, dtype=torch.float64) * scale


def test_bias_before_batchnorm_cancels_in_training_mode(z):
    """BN(z + b) = BN(z) in training mode, on the table and on random batches, and
    the bias gets no gradient (while the input does)."""
    cases = [(torch.Generator().manual_seed(10), z)] + list(_random_batches())
    for g, batch in cases:
        b = torch.randn(3, generator=g, dtype=torch.float64) * 10
        gamma = torch.randn(3, generator=g, dtype=torch.float64)
        beta = torch.randn(3, generator=g, dtype=torch.float64)
        with_b = CF.batch_norm(batch + b, None, None, gamma, beta, training=True)
        without_b = CF.batch_norm(batch, None, None, gamma, beta, training=True)
        torch.testing.assert_close(with_b, without_b, rtol=0, atol=1e-10)
        b_param = b.clone().requires_grad_()
        x = batch.clone().requires_grad_()
        out = CF.batch_norm(x + b_param, None, None, gamma, beta, training=True)
        (out**3).sum().backward()
        assert b_param.grad.abs().max() < 1e-10
        assert x.grad.abs().max() > 1e-3  # the loss does depend on the inputs


def test_eval_mode_bias_gap_shrinks_by_one_minus_momentum_per_step(z):
    """In eval mode the bias shifts the output by b (1 - m)^t / sqrt(rv + eps)."""
    b = torch.tensor([10.0, -2.0, 0.5], dtype=torch.float64)
    for m in (0.1, 0.3):
        plain = nn.BatchNorm1d(3, momentum=m).double()
        biased = nn.BatchNorm1d(3, momentum=m).double()
        g = torch.Generator().manual_seed(3)
        gaps = []
        for step in range(1, 31):
            batch = z + 0.5 * torch.randn(5, 3, generator=g, dtype=torch.float64)
            plain.train(), biased.train()
            plain(batch), biased(batch + b)
            plain.eval(), biased.eval()
            with torch.no_grad():
                gap = biased(z + b) - plain(z)  # (5, 3)
            formula = b * (1 - m) ** step / torch.sqrt(plain.running_var + 1e-5)
            torch.testing.assert_close(
                gap, formula.expand_as(gap), rtol=0, atol=1e-12
            )
            gaps.append(gap[0].abs())
        assert (gaps[0] > 0.1).all()  # after one step the bias still matters
        assert all((gaps[i + 1] < gaps[i]).all() for i in range(len(gaps) - 1))


def test_batch_statistics_as_gamma_beta_give_the_identity_for_that_batch_only(z):
    """gamma = sqrt(var + eps), beta = mean returns the batch; the same gamma, beta
    on another batch (the chapter's, or random ones) do not."""
    z_new = z.clone()
    z_new[4] = torch.tensor([9.0, 1.0, 8.0], dtype=torch.float64)
    cases = [(z, z_new)] + [
        (batch, torch.randn(batch.shape, generator=g, dtype=torch.float64) * scale)
        for (g, batch), scale in zip(
            _random_batches(), (0.01, 0.1, 1.0, 10.0, 100.0), strict=True
        )
    ]
    for batch, other in cases:
        gamma = torch.sqrt(batch.var(0, unbiased=False) + 1e-5)
        beta = batch.mean(0)
        back = CF.batch_norm(batch, None, None, gamma, beta, training=True)
        scale = batch.abs().max()
        torch.testing.assert_close(back, batch, rtol=0, atol=1e-12 * max(1, scale))
        miss = CF.batch_norm(other, None, None, gamma, beta, training=True) - other
        assert (miss.abs().max(0).values > 0.1 * gamma).all()


def _bn_jacobian_closed_form(x, gamma, eps=1e-5):
    """(C, n, n): gamma_j / sigma_j (delta_ik - 1/n - xhat_ij xhat_kj / n)."""
    n = x.shape[0]
    sigma = torch.sqrt(x.var(0, unbiased=False) + eps)
    xhat = (x - x.mean(0)) / sigma
    eye = torch.eye(n, dtype=x.dtype)
    return torch.stack(
        [
            gamma[j]
            / sigma[j]
            * (eye - 1 / n - torch.outer(xhat[:, j], xhat[:, j]) / n)
            for j in range(x.shape[1])
        ]
    )


def test_batchnorm_jacobian_closed_form_couples_batch_mates(z):
    """Autograd equals the closed form (table and random batches); on the table no
    cross-sample derivative is zero, cross-unit ones are 0, rows sum to 0, and
    sample 1's own derivative changes with its batch-mates."""
    gamma = torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64)
    beta = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)

    def bn(x):
        return CF.batch_norm(x, None, None, gamma, beta, training=True)

    for batch in [z] + [b for _, b in _random_batches()]:
        jac = torch.autograd.functional.jacobian(bn, batch)  # (n, 3, n, 3)
        blocks = torch.stack([jac[:, j, :, j] for j in range(3)])
        closed = _bn_jacobian_closed_form(batch, gamma)
        torch.testing.assert_close(blocks, closed, rtol=1e-9, atol=1e-12)
        mixed = jac.clone()
        for j in range(3):
            mixed[:, j, :, j] = 0
        assert (mixed == 0).all()
    jac = torch.autograd.functional.jacobian(bn, z)
    blocks = torch.stack([jac[:, j, :, j] for j in range(3)])
    others = ~torch.eye(5, dtype=torch.bool)
    assert blocks[:, others].abs().min() > 5e-3
    assert blocks.sum(-1).abs().max() < 1e-12
    other_batch = torch.cat(
        [
            z[:1],
            torch.tensor(
                [
                    [9.0, 1.0, 4.0],
                    [8.0, 2.0, 5.0],
                    [6.0, 1.0, 2.0],
                    [7.0, 3.0, 3.0],
                ],
                dtype=torch.float64,
            ),
        ]
    )
    jac_other = torch.autograd.functional.jacobian(bn, other_batch)
    assert abs(jac[0, 0, 0, 0] - jac_other[0, 0, 0, 0]) > 0.5


def test_layernorm_and_eval_batchnorm_have_no_cross_sample_derivatives(z):
    gamma = torch.tensor([2.0, 0.5, -1.0], dtype=torch.float64)
    beta = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    bn = BatchNorm(3).double()
    for _, batch in _random_batches(3):
        bn(batch)  # some running statistics
    bn.eval()
    others = ~torch.eye(5, dtype=torch.bool)
    for fn in (
        lambda x: CF.layer_norm(x, (3,), gamma, beta),
        lambda x: bn(x),
        lambda x: CF.batch_norm(
            x, bn.running_mean, bn.running_var, gamma, beta, training=False
        ),
    ):
        jac = torch.autograd.functional.jacobian(fn, z).permute(0, 2, 1, 3)
        assert (jac[others] == 0).all()
        assert jac[~others].abs().max() > 0.1  # each sample still depends on itself


def test_batchnorm2d_takes_one_mean_and_variance_per_channel_over_n_h_w():
    img = torch.arange(24, dtype=torch.float64).reshape(2, 3, 2, 2)
    torch.testing.assert_close(
        img.mean(dim=(0, 2, 3)),
        torch.tensor([7.5, 11.5, 15.5], dtype=torch.float64),
    )
    torch.testing.assert_close(
        img.var(dim=(0, 2, 3), unbiased=False),
        torch.full((3,), 37.25, dtype=torch.float64),
    )
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(2 + seed, 3, 2 + seed, 3, generator=g, dtype=torch.float64)
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        hand = (x - mean) / torch.sqrt(var + 1e-5)
        ref = nn.functional.batch_norm(x, None, None, training=True)
        ours = CF.batch_norm(
            x.permute(0, 2, 3, 1), None, None, training=True
        ).permute(0, 3, 1, 2)
        module = nn.BatchNorm2d(3).double()(x)
        for other in (ref, ours, module):
            torch.testing.assert_close(hand, other, rtol=0, atol=1e-12)
        # statistics per position (over N only) would give a different answer
        per_position = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
        assert (per_position - hand).abs().max() > 0.1
