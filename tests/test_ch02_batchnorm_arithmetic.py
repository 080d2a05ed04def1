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


def test_batch_of_two_is_plus_minus_one_only_up_to_eps():
    """|z_hat| falls below 0.9 exactly when the pair's gap is under d* = 0.01306
    (the exercise's threshold), and close gaps give outputs far from +-1; random
    pairs over five orders of magnitude, several seeds."""
    eps, target = 1e-5, 0.9
    d_star = 2 * math.sqrt(eps * target**2 / (1 - target**2))
    assert 0.013 < d_star < 0.0131
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        scales = 10 ** torch.empty(800, 1, 1, dtype=torch.float64).uniform_(
            -4, 1, generator=g
        )
        pairs = torch.randn(800, 2, 3, generator=g, dtype=torch.float64) * scales
        out = torch.stack(
            [CF.batch_norm(p, None, None, training=True, eps=eps) for p in pairs]
        )  # (800, 2, 3)
        gap = (pairs[:, 0] - pairs[:, 1]).abs()  # (800, 3)
        mag = out[:, 0].abs()
        torch.testing.assert_close(out[:, 1].abs(), mag)
        clear = (gap - d_star).abs() > 1e-9
        assert torch.equal((mag < target)[clear], (gap < d_star)[clear])
        assert (gap < d_star).sum() > 10 and (gap > d_star).sum() > 10
        assert mag[gap < 1e-3].max() < 0.2  # far from +-1 for close values
        assert (1 - mag[gap > 0.2]).max() < 5e-4


def test_batch_of_two_jacobian_is_plus_minus_eps_over_two_s_cubed(z):
    """In a batch of two z_hat_1 z_hat_2 = -(d/2)^2 / s^2, so every derivative is
    +-gamma eps / (2 s^3): below 1e-4 for samples 1 and 3 of the table and for
    random pairs whose gaps are at least 1."""
    eps = 1e-5
    signs = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
    cases = [(z[[0, 2]], torch.ones(3, dtype=torch.float64))]
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        first = torch.randn(3, generator=g, dtype=torch.float64) * 10
        step = 1 + 5 * torch.rand(3, generator=g, dtype=torch.float64)
        step = step * torch.where(torch.rand(3, generator=g) < 0.5, -1.0, 1.0)
        gamma = 0.5 + torch.rand(3, generator=g, dtype=torch.float64)
        cases.append((torch.stack([first, first + step]), gamma))
    for two, gamma in cases:
        jac = torch.autograd.functional.jacobian(
            lambda x, gamma=gamma: CF.batch_norm(
                x, None, None, gamma, None, training=True, eps=eps
            ),
            two,
        )
        blocks = torch.stack([jac[:, j, :, j] for j in range(3)])  # (3, 2, 2)
        s = torch.sqrt(two.var(0, unbiased=False) + eps)
        closed = (gamma * eps / (2 * s**3)).view(3, 1, 1) * signs
        torch.testing.assert_close(blocks, closed, rtol=1e-6, atol=0)
        assert blocks.abs().max() < 1e-4 * gamma.abs().max()


def test_cross_sample_derivative_vanishes_only_where_zhat_product_is_minus_one():
    """With n > 2 the coupling -(gamma / (n s))(1 + z_hat_i z_hat_k) is ~0 between
    samples with z_hat_i z_hat_k = -1 and large between the others (batches whose
    values are -c and +c, equally many)."""
    for n, c, offset in ((4, 1.0, 0.0), (6, 3.0, 5.0), (8, 0.5, -2.0)):
        col = c * torch.tensor([-1.0, 1.0] * (n // 2), dtype=torch.float64)
        batch = torch.stack([col + offset, 2 * col, -col + 1], dim=1)  # (n, 3)
        jac = torch.autograd.functional.jacobian(
            lambda x: CF.batch_norm(x, None, None, training=True), batch
        )
        blocks = torch.stack([jac[:, j, :, j] for j in range(3)])  # (3, n, n)
        zhat = (batch - batch.mean(0)) / torch.sqrt(batch.var(0, unbiased=False))
        product = torch.stack(
            [torch.outer(zhat[:, j], zhat[:, j]) for j in range(3)]
        )
        off = ~torch.eye(n, dtype=torch.bool).expand(3, n, n)
        opposite = off & (product < 0)
        same = off & (product > 0)
        torch.testing.assert_close(
            product[opposite], -torch.ones(opposite.sum()).double()
        )
        assert blocks[opposite].abs().max() < 1e-4 * blocks[same].abs().min()
        assert blocks[same].abs().min() > 0.1 / c


def test_eval_bias_gap_falls_faster_than_one_minus_m_as_running_var_grows(z):
    """Trained on the table, gap_30 / gap_1 = (1 - m)^29 sqrt((rv_1 + eps) /
    (rv_30 + eps)), below (1 - m)^29 because the running variance grows (z1: 0.0221
    against 0.0471 for m = 0.1)."""
    b = torch.tensor([10.0, -2.0, 0.5], dtype=torch.float64)
    for m in (0.1, 0.3):
        plain = nn.BatchNorm1d(3, momentum=m).double()
        biased = nn.BatchNorm1d(3, momentum=m).double()
        gaps, rvs = [], []
        for _ in range(30):
            plain.train(), biased.train()
            plain(z), biased(z + b)
            plain.eval(), biased.eval()
            with torch.no_grad():
                gaps.append((biased(z + b) - plain(z))[0])
            rvs.append(plain.running_var.clone())
        ratio = gaps[-1] / gaps[0]
        expected = (1 - m) ** 29 * torch.sqrt((rvs[0] + 1e-5) / (rvs[-1] + 1e-5))
        torch.testing.assert_close(ratio, expected, rtol=1e-9, atol=0)
        assert (ratio < (1 - m) ** 29).all()
        assert ratio[0] < 0.7 * (1 - m) ** 29
    # the notebook's numbers for m = 0.1 (the loop above ends with m = 0.3)
    plain = nn.BatchNorm1d(3, momentum=0.1).double()
    rv = []
    for _ in range(30):
        plain(z)
        rv.append(plain.running_var[0].item())
    r = 0.9**29 * math.sqrt((rv[0] + 1e-5) / (rv[-1] + 1e-5))
    assert f"{r:.4f}" == "0.0221" and f"{0.9**29:.4f}" == "0.0471"
