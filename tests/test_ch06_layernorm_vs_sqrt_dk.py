"""Claims chapter 6 makes about 1/sqrt(d_k), LayerNorm on the logits and QK-norm.

Each statistical claim is checked over several seeds, with the tolerance the chapter
states; each exact claim (scale invariance, bounds) is checked against a control
that would fail it.
"""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import functional as CF
from course_lib.data import scale_pair
from course_lib.experiments import ch06_layernorm_vs_sqrt_dk as ch06
from course_lib.transformer import BlockConfig, TransformerBlock

SEEDS = (0, 1, 2)
D_KS = [2**e for e in range(2, 11)]  # 4 .. 1024, as in the chapter
N_KEYS = 16


def _qk(seed: int, d_k: int = 32, l_q: int = 5, l_k: int = N_KEYS):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(3, l_q, d_k, generator=gen, dtype=torch.float64)
    k = torch.randn(3, l_k, d_k, generator=gen, dtype=torch.float64)
    return q, k


# ------------------------------------------------------------ Var(q . k) = d_k


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("d_k", [4, 16, 64, 256, 1024])
def test_dot_product_variance_within_5_percent_of_d_k(d_k, seed):
    var = ch06.dot_product_variance(d_k, 20_000, seed=seed)
    assert abs(var / d_k - 1.0) < 0.05, f"Var(q.k) = {var:.2f} for d_k = {d_k}"


@pytest.mark.parametrize("seed", SEEDS)
def test_dividing_by_sqrt_dk_gives_unit_variance(seed):
    for d_k in (4, 1024):
        s = ch06.sample_dot_products(d_k, 20_000, seed=seed) / math.sqrt(d_k)
        assert abs(s.var().item() - 1.0) < 0.05


@pytest.mark.parametrize("d_k", [4, 16])
def test_kurtosis_behind_the_standard_error_is_3_plus_6_over_d_k(d_k):
    """E[(q_i k_i)^4] = 9, so q . k / sqrt(d_k) has kurtosis 3 + 6 / d_k, and the
    sample variance has relative standard error sqrt((2 + 6 / d_k) / n)."""
    s = ch06.sample_dot_products(d_k, 400_000, seed=11) / math.sqrt(d_k)
    c = s - s.mean()
    kurtosis = ((c**4).mean() / (c**2).mean() ** 2).item()
    assert kurtosis == pytest.approx(3 + 6 / d_k, rel=0.05)
    # control: a Gaussian's kurtosis, 3, is outside the tolerance at d_k = 4
    if d_k == 4:
        assert abs(kurtosis / 3 - 1) > 0.2
    # the standard error itself, over 200 repeats of n = 2,000 pairs
    n, reps = 2_000, 200
    rel = torch.tensor(
        [
            ch06.dot_product_variance(d_k, n, seed=1000 + r) / d_k - 1
            for r in range(reps)
        ],
        dtype=torch.float64,
    )
    assert rel.std().item() == pytest.approx(math.sqrt((2 + 6 / d_k) / n), rel=0.2)


def test_sample_dot_products_is_the_written_out_computation():
    """The notebook's hand computation and the library draw the same numbers."""
    gen = torch.Generator().manual_seed(7)
    q = torch.randn(1000, 64, generator=gen)
    k = torch.randn(1000, 64, generator=gen)
    torch.testing.assert_close(
        ch06.sample_dot_products(64, 1000, seed=7),
        (q * k).sum(-1).double(),
        rtol=0,
        atol=0,
    )


def test_sample_dot_products_chunks_do_not_change_the_statistics():
    # d_k = 1024 is drawn in chunks of 4096 rows; 10,000 rows span three chunks
    s = ch06.sample_dot_products(1024, 10_000, seed=0)
    assert s.shape == (10_000,) and s.dtype == torch.float64
    assert abs(s.var().item() / 1024 - 1.0) < 0.06


# ------------------------------------------------------------ softmax saturation


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_decreases_with_d_k_without_scaling(seed):
    ent = [
        ch06.saturation_metrics(d, "none", n_keys=N_KEYS, seed=seed).entropy
        for d in D_KS
    ]
    assert all(a > b for a, b in zip(ent, ent[1:], strict=False)), ent
    assert ent[-1] < 0.15, (
        "unscaled attention at d_k = 1024 should be nearly one-hot"
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_roughly_constant_with_scaling(seed):
    ent = [
        ch06.saturation_metrics(d, "sqrt_dk", n_keys=N_KEYS, seed=seed).entropy
        for d in D_KS
    ]
    assert max(ent) - min(ent) < 0.1, ent
    assert min(ent) > 0.8 * math.log(N_KEYS), (
        "scaled attention should stay far from one-hot"
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_mean_jacobian_norm_falls_without_scaling(seed):
    none = ch06.saturation_metrics(1024, "none", seed=seed)
    scaled = ch06.saturation_metrics(1024, "sqrt_dk", seed=seed)
    assert none.jacobian_norm < 0.5 * scaled.jacobian_norm
    assert none.max_weight > 0.9 > 0.5 > scaled.max_weight


# ------------------------------------------------- the gradient reaching the query

GRAD_SEEDS = (0, 1, 2, 3, 4)


def _draws(d_k: int, seed: int, n: int = 64, L: int = N_KEYS):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 1, d_k, generator=gen).double()
    k = torch.randn(n, L, d_k, generator=gen).double()
    g = torch.randn(n, 1, L, generator=gen, dtype=torch.float64)
    return q, k, g


@pytest.mark.parametrize("scaling", ["none", "sqrt_dk", "qk_norm"])
def test_query_gradients_are_the_chain_rule_on_the_chapters_draws(scaling):
    d_k, n = 64, 64
    jac, grad = ch06.query_gradients(d_k, scaling, n_queries=n, seed=3)
    assert jac.shape == grad.shape == (n,) and grad.dtype == torch.float64
    q, k, g = _draws(d_k, 3, n)
    # an independent autograd of the same loss sum_j g_j p_j
    q = q.requires_grad_(True)
    p = torch.softmax(ch06.attention_logits(q, k, scaling), -1)
    (auto,) = torch.autograd.grad((p * g).sum(), q)
    torch.testing.assert_close(grad, auto.squeeze(1).norm(dim=-1))
    torch.testing.assert_close(
        jac, ch06.softmax_jacobian_norm(p.detach().squeeze(1))
    )
    if scaling != "qk_norm":  # written out: (1/c) K^T J g
        c = 1.0 if scaling == "none" else math.sqrt(d_k)
        by_hand = (g @ ch06.softmax_jacobian(p.detach().squeeze(1))) @ k / c
        torch.testing.assert_close(grad, by_hand.squeeze(1).norm(dim=-1))


def test_query_gradients_use_the_queries_and_keys_of_saturation_metrics():
    for scaling in ("none", "sqrt_dk"):
        jac, _ = ch06.query_gradients(256, scaling, seed=0)
        lib = ch06.saturation_metrics(256, scaling, seed=0).jacobian_norm
        assert jac.mean().item() == pytest.approx(lib, rel=1e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_both_factors_bound_the_query_gradient(seed):
    """||dL/dq|| <= ||K / c||_2 ||J||_2 ||g||, and K / c is sqrt(d_k) times larger
    without the scale."""
    d_k, n = 1024, 64
    q, k, g = _draws(d_k, seed, n)
    for scaling, c in (("none", 1.0), ("sqrt_dk", math.sqrt(d_k))):
        jac, grad = ch06.query_gradients(d_k, scaling, n_queries=n, seed=seed)
        k_norm = torch.linalg.matrix_norm(k / c, ord=2)  # (n,)
        bound = k_norm * jac * g.squeeze(1).norm(dim=-1)
        assert (grad <= bound * (1 + 1e-9) + 1e-300).all()
    ratio = torch.linalg.matrix_norm(k, ord=2) / torch.linalg.matrix_norm(
        k / math.sqrt(d_k), ord=2
    )
    torch.testing.assert_close(ratio, torch.full_like(ratio, math.sqrt(d_k)))


@pytest.mark.parametrize("seed", GRAD_SEEDS)
def test_unscaled_median_query_gradient_vanishes_while_the_mean_is_larger(seed):
    j_none, g_none = (
        ch06.spread(t) for t in ch06.query_gradients(1024, "none", seed=seed)
    )
    j_sq, g_sq = (
        ch06.spread(t) for t in ch06.query_gradients(1024, "sqrt_dk", seed=seed)
    )
    # without the scale: the median query's gradient (and its ||J||) is below 1e-3,
    # that is, more than half of the queries get almost nothing
    assert g_none.median < 1e-3 and j_none.median < 1e-3
    assert g_none.share_tiny > 0.5
    # ... yet a few get many times more than any query with the scale, and the
    # mean is the larger one: a mean hides the starved majority
    assert g_none.max > 10 * g_sq.max
    assert g_none.mean > 2 * g_sq.mean
    # with the scale every query's gradient is within a factor of 5 of the median
    assert g_sq.median / 5 < g_sq.min and g_sq.max < 5 * g_sq.median
    assert g_sq.share_tiny == 0.0 and j_sq.median > 0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_query_gradient_over_head_sizes(seed):
    sweep = {
        name: [
            ch06.spread(ch06.query_gradients(d, name, seed=seed)[1]) for d in D_KS
        ]
        for name in ("none", "sqrt_dk")
    }
    a, b = sweep["none"], sweep["sqrt_dk"]
    small = [i for i, d in enumerate(D_KS) if d <= 64]
    assert all(a[i].median > b[i].median for i in small)
    # the share of starved queries grows at every 4-fold step of d_k from 16
    assert all(
        a[i].share_tiny < a[i + 2].share_tiny for i in range(2, len(D_KS) - 2)
    )
    assert all(x.mean > y.mean for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("seed", SEEDS)
def test_at_d_k_64_weights_are_sharp_but_gradients_are_not_lost(seed):
    """The notes' bullet: saturation costs gradient in large heads (most queries
    below 1e-3 at d_k = 1024); at d_k = 64 the unscaled weights are already much
    sharper, yet few queries are starved and the median gradient is the larger."""
    ent = {
        name: ch06.saturation_metrics(64, name, n_keys=N_KEYS, seed=seed).entropy
        for name in ("none", "sqrt_dk")
    }
    assert ent["none"] < ent["sqrt_dk"] / 3
    g64 = {
        name: ch06.spread(ch06.query_gradients(64, name, seed=seed)[1])
        for name in ("none", "sqrt_dk")
    }
    g1024 = ch06.spread(ch06.query_gradients(1024, "none", seed=seed)[1])
    assert g64["none"].share_tiny < 0.15 and g1024.share_tiny > 0.5
    assert g64["none"].median > g64["sqrt_dk"].median


def test_spread_of_known_values():
    x = torch.arange(11, dtype=torch.float64)  # 0, 1, ..., 10
    sp = ch06.spread(x, tiny=2.5)
    assert (sp.mean, sp.min, sp.p10, sp.median, sp.p90, sp.max) == (
        5.0,
        0.0,
        1.0,
        5.0,
        9.0,
        10.0,
    )
    assert sp.share_tiny == pytest.approx(3 / 11)
    # a mean can hide that most values are tiny
    skewed = ch06.spread(torch.tensor([0.0] * 6 + [100.0] * 4))
    assert skewed.median == 0.0 and skewed.mean == 40.0 and skewed.share_tiny == 0.6


def test_naive_softmax_overflows_but_library_softmax_does_not():
    logits = scale_pair("1-2", dtype=torch.float32)[1]  # [100, 102]
    naive = torch.exp(logits) / torch.exp(logits).sum()
    assert torch.isnan(naive).all()
    expected = torch.tensor([1.0, math.exp(2.0)]) / (1.0 + math.exp(2.0))
    torch.testing.assert_close(torch.softmax(logits, dim=-1), expected)


def test_softmax_entropy_limits():
    assert ch06.softmax_entropy(torch.full((8,), 1 / 8)).item() == pytest.approx(
        math.log(8)
    )
    assert ch06.softmax_entropy(torch.tensor([0.0, 1.0, 0.0])).item() == 0.0


def test_softmax_jacobian_matches_autograd():
    s = torch.randn(
        6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    auto = torch.autograd.functional.jacobian(lambda t: torch.softmax(t, -1), s)
    torch.testing.assert_close(ch06.softmax_jacobian(torch.softmax(s, -1)), auto)


def test_softmax_jacobian_norm_range():
    gen = torch.Generator().manual_seed(1)
    scales = 10 ** torch.linspace(-2, 2, 500, dtype=torch.float64)[:, None]
    rows = torch.randn(500, 8, generator=gen, dtype=torch.float64) * scales
    norms = ch06.softmax_jacobian_norm(torch.softmax(rows, -1))
    assert norms.max().item() <= 0.5
    # J = diag(p) - p p^T is symmetric positive semi-definite
    jac = ch06.softmax_jacobian(torch.softmax(rows, -1))
    torch.testing.assert_close(jac, jac.transpose(-2, -1))
    assert torch.linalg.eigvalsh(jac).min().item() > -1e-12
    uniform = ch06.softmax_jacobian_norm(
        torch.full((8,), 1 / 8, dtype=torch.float64)
    )
    assert uniform.item() == pytest.approx(1 / 8)
    one_hot = ch06.softmax_jacobian_norm(
        torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    )
    assert one_hot.item() == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------- scale-preserving vs scale-invariant


def test_layernorm_in_two_dimensions_sends_every_increasing_pair_to_minus_one_one():
    gen = torch.Generator().manual_seed(0)
    low = 1000 * torch.randn(2000, 1, generator=gen, dtype=torch.float64)
    gap = 1 + 1000 * torch.rand(2000, 1, generator=gen, dtype=torch.float64)
    y = CF.layer_norm(torch.cat([low, low + gap], -1), 2)
    target = torch.tensor([-1.0, 1.0], dtype=torch.float64).expand_as(y)
    torch.testing.assert_close(y, target, atol=1e-4, rtol=0)
    wide = CF.layer_norm(torch.tensor([1.0, 1000.0], dtype=torch.float64), 2)
    torch.testing.assert_close(wide, target[0], atol=1e-9, rtol=0)
    # control: in three dimensions increasing rows keep different shapes
    rows = torch.sort(torch.randn(200, 3, generator=gen, dtype=torch.float64), -1)[
        0
    ]
    y3 = CF.layer_norm(rows, 3)
    assert (y3 - y3[:1]).abs().max().item() > 0.5


def test_three_vectors_isolate_magnitude():
    quiet, loud = scale_pair("10-20-30")
    cq, cl = quiet - quiet.mean(), loud - loud.mean()
    assert (cq @ cl / (cq.norm() * cl.norm())).item() == pytest.approx(1.0)
    assert (cl.norm() / cq.norm()).item() == pytest.approx(10.0)
    y = CF.layer_norm(scale_pair("10-20-30"), 3)
    torch.testing.assert_close(y[0], y[1], atol=1e-6, rtol=0)
    other = CF.layer_norm(torch.tensor([10.0, 20.0, 60.0], dtype=torch.float64), 3)
    assert (other - y[0]).abs().max().item() > 0.1


@pytest.mark.parametrize("name", ["1-2", "10-20-30"])
def test_notes_pairs_constant_division_vs_layernorm(name):
    pair = scale_pair(name)
    c = 8.0
    for v in pair:
        torch.testing.assert_close((v / c) / (v[0] / c), v / v[0])  # ratios kept
        # differences shrink
        torch.testing.assert_close(torch.diff(v / c), torch.diff(v) / c)
    assert not torch.allclose(
        torch.softmax(pair[0] / c, -1), torch.softmax(pair[1] / c, -1)
    )
    y = CF.layer_norm(pair, pair.shape[-1])
    torch.testing.assert_close(y[0], y[1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("alpha", [0.5, 3.0, 10.0])
def test_layernorm_logits_same_attention_for_query_and_scaled_copy(alpha, seed):
    q, k = _qk(seed)
    a = torch.softmax(ch06.attention_logits(q, k, "layernorm_logits"), -1)
    b = torch.softmax(ch06.attention_logits(alpha * q, k, "layernorm_logits"), -1)
    assert (a - b).abs().max().item() < 1e-4  # what is left is LayerNorm's eps
    # ... and only eps: scaling eps with the variance (by alpha^2) makes them equal
    b_exact = torch.softmax(
        ch06.attention_logits(
            alpha * q, k, "layernorm_logits", eps=1e-5 * alpha**2
        ),
        -1,
    )
    torch.testing.assert_close(a, b_exact, atol=1e-12, rtol=0)
    # control: with 1/sqrt(d_k) the scaled copy attends differently
    p = torch.softmax(ch06.attention_logits(q, k, "sqrt_dk"), -1)
    p_alpha = torch.softmax(ch06.attention_logits(alpha * q, k, "sqrt_dk"), -1)
    assert (p - p_alpha).abs().max().item() > 1e-2


@pytest.mark.parametrize("seed", SEEDS)
def test_layernorm_logits_entropy_does_not_depend_on_query_scale(seed):
    alphas = [2.0**e for e in range(-3, 4)]
    ln = ch06.query_scale_entropy(alphas, "layernorm_logits", d_k=64, seed=seed)
    sq = ch06.query_scale_entropy(alphas, "sqrt_dk", d_k=64, seed=seed)
    assert max(ln) - min(ln) < 1e-3
    assert all(a > b for a, b in zip(sq, sq[1:], strict=False))
    assert sq[0] - sq[-1] > 1.0


def test_layernorm_logits_rows_have_mean_zero_and_unit_variance():
    q, k = _qk(0)
    s = ch06.attention_logits(100.0 * q, k, "layernorm_logits")
    torch.testing.assert_close(
        s.mean(-1), torch.zeros(s.shape[:-1], dtype=s.dtype), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        s.var(-1, unbiased=False), torch.ones(s.shape[:-1], dtype=s.dtype)
    )


def test_layernorm_logit_ceiling():
    assert ch06.layernorm_logit_ceiling(2) == pytest.approx(1 / (1 + math.exp(-2)))
    assert ch06.layernorm_logit_ceiling(1) == 1.0
    # the extremal row (one logit sqrt(L-1), the rest equal) reaches the ceiling
    # exactly
    L = 16
    extremal = torch.full((L,), -1.0, dtype=torch.float64)
    extremal[0] = L - 1.0
    w = torch.softmax(CF.layer_norm(extremal, L, eps=1e-300), -1)[0].item()
    assert w == pytest.approx(ch06.layernorm_logit_ceiling(L), rel=1e-12)
    # no random row, however lopsided, exceeds it
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(5000, L, generator=gen, dtype=torch.float64) ** 3 * 10
    weights = torch.softmax(CF.layer_norm(rows, L), -1)
    assert weights.max().item() <= ch06.layernorm_logit_ceiling(L)


def test_layernorm_logit_bound_for_the_rows_own_top_logit():
    """For top logit t: p_max <= 1 / (1 + (L-1) exp(-t L / (L-1))), increasing in t,
    and t <= sqrt(L-1) turns it into layernorm_logit_ceiling."""
    L = 16
    gen = torch.Generator().manual_seed(3)
    rows = torch.randn(5000, L, generator=gen, dtype=torch.float64) ** 3 * 10
    s = CF.layer_norm(rows, L, eps=1e-300)
    t = s.max(-1).values
    p_max = torch.softmax(s, -1).max(-1).values
    bound = 1 / (1 + (L - 1) * torch.exp(-t * L / (L - 1)))
    assert (p_max <= bound * (1 + 1e-12)).all()
    assert (t <= math.sqrt(L - 1) * (1 + 1e-12)).all()
    ts = torch.linspace(0, math.sqrt(L - 1), 100, dtype=torch.float64)
    curve = 1 / (1 + (L - 1) * torch.exp(-ts * L / (L - 1)))
    assert (curve.diff() > 0).all()
    assert curve[-1].item() == pytest.approx(ch06.layernorm_logit_ceiling(L))


@pytest.mark.parametrize("seed", SEEDS)
def test_matched_query_weight(seed):
    ceiling = ch06.layernorm_logit_ceiling(N_KEYS)
    ln = [
        ch06.matched_query_weight(64, "layernorm_logits", query_scale=a, seed=seed)
        for a in (0.25, 4.0)
    ]
    sq = [
        ch06.matched_query_weight(64, "sqrt_dk", query_scale=a, seed=seed)
        for a in (0.25, 4.0)
    ]
    qk = [
        ch06.matched_query_weight(64, "qk_norm", query_scale=a, seed=seed)
        for a in (0.25, 4.0)
    ]
    assert max(ln) <= ceiling and abs(ln[0] - ln[1]) < 1e-3
    assert sq[0] < 0.5 < 0.99 < sq[1]
    assert abs(qk[0] - qk[1]) < 1e-3 and qk[0] > max(ln)


# ----------------------------------------------------------- the block at init


@pytest.mark.parametrize("seed", SEEDS)
def test_fresh_block_logit_variance_with_and_without_input_layernorm(seed):
    torch.manual_seed(seed)
    block = TransformerBlock(BlockConfig(norm_first=True))
    z = torch.randn(8, 32, 64, generator=torch.Generator().manual_seed(100 + seed))
    scales = (0.1, 1.0, 10.0, 100.0)
    with_ln = [
        ch06.block_logit_stats(block, s * z, input_norm=True).dot_var_over_dk
        for s in scales
    ]
    without = [
        ch06.block_logit_stats(block, s * z, input_norm=False).dot_var_over_dk
        for s in scales
    ]
    assert max(with_ln) / min(with_ln) < 1.01
    # Xavier on the packed in_proj
    assert all(abs(v / 0.25 - 1.0) < 0.2 for v in with_ln)
    for a, b in zip(without, without[1:], strict=False):
        assert b / a == pytest.approx(1e4, rel=1e-3)  # Var grows like s^4


def test_block_logit_stats_matches_the_attention_module():
    """q and k are computed as MultiHeadAttention computes them (same weights,
    layout)."""
    torch.manual_seed(0)
    block = TransformerBlock(BlockConfig(norm_first=True)).double()
    x = torch.randn(2, 6, 64, dtype=torch.float64)
    q, k = ch06.block_queries_keys(block, x, True)
    expected = CF.attention_weights(q, k)  # (B, H, T, T)
    with torch.no_grad():
        _, weights = block.self_attn(block.norm1(x), return_weights=True)
    torch.testing.assert_close(weights, expected)


# ------------------------------------------------------------------- QK-norm


@pytest.mark.parametrize("d_k", [4, 16, 64, 256])
def test_qk_norm_logits_within_cauchy_schwarz_bound(d_k):
    gen = torch.Generator().manual_seed(d_k)
    q = 1e4 * torch.randn(64, 1, d_k, generator=gen, dtype=torch.float64)
    k = 1e4 * torch.randn(64, 16, d_k, generator=gen, dtype=torch.float64)
    bound = ch06.qk_norm_logit_bound(d_k)
    assert bound == pytest.approx(math.sqrt(d_k))
    assert ch06.attention_logits(q, k, "qk_norm").abs().max().item() <= bound
    # control
    assert ch06.attention_logits(q, k, "sqrt_dk").abs().max().item() > 1e3 * bound
    # q = k reaches the bound
    own = ch06.attention_logits(k[:, :1], k[:, :1], "qk_norm")
    assert own.min().item() == pytest.approx(bound, rel=1e-6)


def test_qk_norm_weight_ceiling_is_reached_by_extreme_logits():
    d_k, L = 16, 256
    b = ch06.qk_norm_logit_bound(d_k)
    logits = torch.full((L,), -b, dtype=torch.float64)
    logits[0] = b
    assert torch.softmax(logits, -1)[0].item() == pytest.approx(
        ch06.qk_norm_weight_ceiling(d_k, L)
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_weight_growth_grows_plain_logits_but_not_qk_norm_logits(seed):
    torch.manual_seed(seed)
    block = TransformerBlock(BlockConfig(norm_first=True))
    before = {n: p.clone() for n, p in block.state_dict().items()}
    z = torch.randn(4, 16, 64, generator=torch.Generator().manual_seed(seed))
    growth = (1.0, 4.0, 16.0)
    plain = [
        ch06.max_logit_under_weight_growth(block, z, g, qk_norm=False)
        for g in growth
    ]
    qkn = [
        ch06.max_logit_under_weight_growth(block, z, g, qk_norm=True)
        for g in growth
    ]
    for p, g in zip(plain, growth, strict=True):
        assert p / plain[0] == pytest.approx(g**2, rel=1e-4)
    assert max(qkn) <= ch06.qk_norm_logit_bound(16)
    assert max(qkn) - min(qkn) < 1e-3
    for n, p in block.state_dict().items():
        assert torch.equal(p, before[n]), f"{n} was modified"


@pytest.mark.parametrize("seed", SEEDS)
def test_unit_gain_qk_norm_logits_have_four_times_the_variance_at_m_1(seed):
    """LayerNorm'd q, k have components of variance about 1, not 1/2, so at m = 1
    the logits' variance goes from about 1/4 to about 1 and the top logit is
    larger."""
    torch.manual_seed(seed)
    block = TransformerBlock(BlockConfig(norm_first=True))
    z = torch.randn(8, 32, 64, generator=torch.Generator().manual_seed(100 + seed))
    with torch.no_grad():
        q, k = ch06.block_queries_keys(block, z, True)
        distinct = ~torch.eye(z.shape[1], dtype=torch.bool)
        var = {
            name: ch06.attention_logits(q, k, name)[..., distinct].double().var()
            for name in ("sqrt_dk", "qk_norm")
        }
    assert abs(var["sqrt_dk"].item() / 0.25 - 1) < 0.2
    assert abs(var["qk_norm"].item() - 1) < 0.2
    assert abs(var["qk_norm"].item() / var["sqrt_dk"].item() / 4 - 1) < 0.2
    plain = ch06.max_logit_under_weight_growth(block, z, 1.0, qk_norm=False)
    qkn = ch06.max_logit_under_weight_growth(block, z, 1.0, qk_norm=True)
    assert qkn > plain


def test_attention_logits_agree_with_course_lib_and_torch():
    q, k = _qk(3)
    torch.testing.assert_close(
        torch.softmax(ch06.attention_logits(q, k, "sqrt_dk"), -1),
        CF.attention_weights(q, k),
    )
    torch.testing.assert_close(
        torch.softmax(ch06.attention_logits(q, k, "none"), -1),
        CF.attention_weights(q, k, scale=1.0),
    )
    d = q.shape[-1]
    qn = torch.nn.functional.layer_norm(q, (d,))
    kn = torch.nn.functional.layer_norm(k, (d,))
    torch.testing.assert_close(
        ch06.attention_logits(q, k, "qk_norm"),
        qn @ kn.transpose(-2, -1) / math.sqrt(d),
    )


# ------------------------------------------------------------------ bad input

BAD = [
    ("d_k zero", lambda: ch06.dot_product_variance(0), ValueError, "d_k"),
    ("d_k float", lambda: ch06.dot_product_variance(4.0), TypeError, "d_k"),
    (
        "n_samples one",
        lambda: ch06.dot_product_variance(4, 1),
        ValueError,
        "n_samples",
    ),
    (
        "seed float",
        lambda: ch06.sample_dot_products(4, 10, seed=1.5),
        TypeError,
        "seed",
    ),
    (
        "scaling unknown",
        lambda: ch06.saturation_metrics(4, "layernorm"),
        ValueError,
        "scaling",
    ),
    (
        "scaling not str",
        lambda: ch06.attention_logits(*_qk(0), scaling=1),
        TypeError,
        "scaling",
    ),
    (
        "query_scale negative",
        lambda: ch06.saturation_metrics(4, query_scale=-1.0),
        ValueError,
        "query_scale",
    ),
    (
        "query list",
        lambda: ch06.attention_logits([[1.0]], torch.ones(2, 1)),
        TypeError,
        "query",
    ),
    (
        "d_k mismatch",
        lambda: ch06.attention_logits(torch.ones(2, 3), torch.ones(2, 4)),
        ValueError,
        "d_k",
    ),
    (
        "dtype mismatch",
        lambda: ch06.attention_logits(
            torch.ones(2, 3), torch.ones(2, 3, dtype=torch.float64)
        ),
        TypeError,
        "dtype",
    ),
    (
        "eps negative",
        lambda: ch06.attention_logits(*_qk(0), eps=-1e-5),
        ValueError,
        "eps",
    ),
    (
        "weights int",
        lambda: ch06.softmax_entropy(torch.tensor([1, 0])),
        TypeError,
        "weights",
    ),
    (
        "weights empty",
        lambda: ch06.softmax_jacobian(torch.ones(2, 0)),
        ValueError,
        "weights",
    ),
    (
        "query_scales string",
        lambda: ch06.query_scale_entropy("12", "sqrt_dk"),
        TypeError,
        "query_scales",
    ),
    (
        "query_scales empty",
        lambda: ch06.query_scale_entropy([], "sqrt_dk"),
        ValueError,
        "query_scales",
    ),
    (
        "block not a block",
        lambda: ch06.block_logit_stats(torch.nn.Linear(2, 2), torch.ones(1, 2, 2)),
        TypeError,
        "block",
    ),
    (
        "x wrong width",
        lambda: ch06.block_logit_stats(
            TransformerBlock(BlockConfig()), torch.ones(1, 4, 8)
        ),
        ValueError,
        "x",
    ),
    (
        "x one position",
        lambda: ch06.block_logit_stats(
            TransformerBlock(BlockConfig()), torch.ones(1, 1, 64)
        ),
        ValueError,
        "T >= 2",
    ),
    (
        "growth zero",
        lambda: ch06.max_logit_under_weight_growth(
            TransformerBlock(BlockConfig()), torch.ones(1, 4, 64), 0.0, qk_norm=True
        ),
        ValueError,
        "growth",
    ),
    (
        "qk_norm not bool",
        lambda: ch06.max_logit_under_weight_growth(
            TransformerBlock(BlockConfig()), torch.ones(1, 4, 64), 2.0, qk_norm=1
        ),
        TypeError,
        "qk_norm",
    ),
    (
        "gain negative",
        lambda: ch06.qk_norm_logit_bound(16, -1.0),
        ValueError,
        "gain",
    ),
    ("n_keys zero", lambda: ch06.layernorm_logit_ceiling(0), ValueError, "n_keys"),
    (
        "query_gradients d_k zero",
        lambda: ch06.query_gradients(0),
        ValueError,
        "d_k",
    ),
    (
        "query_gradients scaling unknown",
        lambda: ch06.query_gradients(4, "layernorm"),
        ValueError,
        "scaling",
    ),
    (
        "query_gradients seed negative",
        lambda: ch06.query_gradients(4, seed=-1),
        ValueError,
        "seed",
    ),
    ("spread list", lambda: ch06.spread([1.0, 2.0]), TypeError, "values"),
    ("spread 2-D", lambda: ch06.spread(torch.ones(2, 2)), ValueError, "values"),
    ("spread empty", lambda: ch06.spread(torch.ones(0)), ValueError, "values"),
    (
        "spread int",
        lambda: ch06.spread(torch.ones(2, dtype=torch.int64)),
        TypeError,
        "values",
    ),
    (
        "spread tiny",
        lambda: ch06.spread(torch.ones(2), tiny=0.0),
        ValueError,
        "tiny",
    ),
    (
        "metrics wrong length",
        lambda: ch06.plot_saturation([4, 8], {"none": []}, n_keys=16),
        ValueError,
        "metrics",
    ),
]


@pytest.mark.parametrize(
    ("case", "fn", "exc", "word"), BAD, ids=[b[0] for b in BAD]
)
def test_bad_input_is_rejected_with_a_message_naming_the_argument(
    case, fn, exc, word
):
    with pytest.raises(exc, match=word):
        fn()
