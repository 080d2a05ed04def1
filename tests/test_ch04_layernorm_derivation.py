"""Chapter 4's claims, checked with the functions the chapter itself calls."""

from __future__ import annotations

import inspect
import math
import re

import pytest
import torch
import torch.nn.functional as F

from course_lib.autograd import (
    LayerNormFunction,
    layer_norm_backward,
    layer_norm_backward_blocked,
    layer_norm_forward,
)
from course_lib.data import batchnorm_table, contextual_batch, scale_pair
from course_lib.experiments import ch04_layernorm_derivation as ch04

f64 = torch.float64


# ----------------------------------------------------------------- invariance table


@pytest.mark.parametrize("seed", range(5))
def test_invariance_table_matches_the_papers(seed):
    results = ch04.invariance_table(seed=seed)
    assert [(r.norm, r.transform) for r in results] == [
        (n, t) for n in ch04.INVARIANCE_NORMS for t in ch04.INVARIANCE_TRANSFORMS
    ]
    for norm in ch04.INVARIANCE_NORMS:
        computed = tuple(r.invariant for r in results if r.norm == norm)
        assert computed == ch04.EXPECTED_INVARIANCE[norm], norm


def test_invariance_table_separates_clearly():
    """Invariant cells move by rounding; the others by order 1 (not a borderline
    call)."""
    results = ch04.invariance_table()
    assert max(r.max_abs_diff for r in results if r.invariant) < 1e-9
    assert min(r.max_abs_diff for r in results if not r.invariant) > 0.1


def test_invariance_is_only_up_to_eps():
    """With PyTorch's eps the invariant cells move by eps-sized amounts, not
    zero."""
    results = ch04.invariance_table(eps=1e-5, tol=1.0)
    expected = {
        (n, t): ch04.EXPECTED_INVARIANCE[n][i]
        for n in ch04.INVARIANCE_NORMS
        for i, t in enumerate(ch04.INVARIANCE_TRANSFORMS)
    }
    worst = max(r.max_abs_diff for r in results if expected[r.norm, r.transform])
    assert 1e-8 < worst < 1e-4


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"delta": -2.0}, ValueError),
        ({"delta": 1.0}, ValueError),
        ({"delta": "2"}, TypeError),
        ({"eps": -1e-5}, ValueError),
        ({"n_cases": 1}, ValueError),
        ({"d_hidden": 1}, ValueError),
        ({"norms": ("GroupNorm",)}, ValueError),
        ({"norms": ["LayerNorm"]}, TypeError),
        ({"seed": 1.5}, TypeError),
    ],
)
def test_invariance_table_rejects_bad_arguments(kwargs, exc):
    name = next(iter(kwargs))
    with pytest.raises(exc, match=name):
        ch04.invariance_table(**kwargs)


# ---------------------------------------------------------------------- conventions


def test_conventions_differ_by_sqrt_3_over_2_for_d3():
    x = torch.cat(
        [
            contextual_batch()[:, :2].reshape(-1, 3),
            contextual_batch()[1, 2:],
            batchnorm_table(),
        ]
    )
    ratio = F.layer_norm(x, (3,)).norm(dim=-1) / ch04.layer_norm_std_eps(
        x, eps=1e-6
    ).norm(dim=-1)
    torch.testing.assert_close(
        ratio, torch.full_like(ratio, math.sqrt(3 / 2)), rtol=1e-4, atol=0
    )


def test_conventions_for_d768():
    x = (
        2.0
        * torch.randn(8, 768, generator=torch.Generator().manual_seed(0), dtype=f64)
        + 0.5
    )
    ratio = F.layer_norm(x, (768,)) / ch04.layer_norm_std_eps(x, eps=1e-6)
    torch.testing.assert_close(
        ratio, torch.full_like(ratio, math.sqrt(768 / 767)), rtol=1e-5, atol=0
    )


def test_torch_uses_biased_variance_with_eps_inside_the_sqrt():
    x = 2.0 * torch.randn(
        6, 5, generator=torch.Generator().manual_seed(2), dtype=f64
    )
    mu = x.mean(-1, keepdim=True)
    biased_inside = (x - mu) / torch.sqrt(
        x.var(-1, unbiased=False, keepdim=True) + 0.1
    )
    torch.testing.assert_close(
        F.layer_norm(x, (5,), eps=0.1), biased_inside, atol=1e-14, rtol=0
    )
    assert not torch.allclose(
        F.layer_norm(x, (5,), eps=0.1),
        ch04.layer_norm_std_eps(x, eps=0.1),
        atol=1e-3,
    )


def test_notes_convention_matches_its_formula_and_rejects_d1():
    x = torch.tensor([[6.5, 2.1, 8.3]], dtype=f64)
    expected = (x - x.mean()) / (x.std(unbiased=True) + 1e-6)
    torch.testing.assert_close(ch04.layer_norm_std_eps(x), expected)
    with pytest.raises(ValueError, match="input"):
        ch04.layer_norm_std_eps(torch.ones(4, 1))
    with pytest.raises(TypeError, match="input"):
        ch04.layer_norm_std_eps([[1.0, 2.0]])
    with pytest.raises(ValueError, match="eps"):
        ch04.layer_norm_std_eps(x, eps=-1.0)


# --------------------------------------------------------------- the notes' numbers


def test_hand_numbers_of_the_notes_rows():
    row1 = F.layer_norm(batchnorm_table()[0], (3,))
    torch.testing.assert_close(
        row1, torch.tensor([1.3363, -0.2673, -1.0690], dtype=f64), atol=1e-4, rtol=0
    )
    # the notes' -0.26 and -1.06 come from rounding the mean and std first
    assert [
        round(v, 2) for v in ((batchnorm_table()[0] - 5.33) / 1.25).tolist()
    ] == [
        1.34,
        -0.26,
        -1.06,
    ]
    hi = contextual_batch()[0, 0]
    assert round(hi.std(unbiased=False).item(), 2) == 2.60  # not the notes' 2.51
    # not 3.04
    assert round(contextual_batch()[1, 0].std(unbiased=False).item(), 2) == 3.02
    out = F.layer_norm(torch.tensor([10.0, 2.0, 5.0], dtype=f64), (3,))
    assert out[2] < 0  # the notes' "[1.2, -0.9, 0.3]" has the wrong sign here


# ------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("d", [2, 3, 16, 768])
def test_rows_lie_on_the_sphere_in_the_zero_mean_plane(d):
    g = torch.Generator().manual_seed(d)
    x = 10 ** torch.empty(200, 1, dtype=f64).uniform_(
        -1, 3, generator=g
    ) * torch.randn(200, d, generator=g, dtype=f64)
    y = F.layer_norm(x, (d,))
    var = x.var(-1, unbiased=False)
    assert y.mean(-1).abs().max() < 1e-12
    torch.testing.assert_close(
        y.norm(dim=-1), torch.sqrt(d * var / (var + 1e-5)), rtol=1e-10, atol=0
    )


def test_d2_outputs_are_plus_minus_one_and_scale_pairs_collapse():
    for name in ("1-2", "10-20-30"):
        out = F.layer_norm(scale_pair(name), (scale_pair(name).shape[-1],))
        torch.testing.assert_close(out[0], out[1], atol=1e-4, rtol=0)
    out = F.layer_norm(scale_pair("1-2"), (2,))
    torch.testing.assert_close(out.abs(), torch.ones_like(out), atol=1e-4, rtol=0)


# ------------------------------------------------------------------------- backward


def _hand_backward_inputs(seed: int, eps: float):
    g = torch.Generator().manual_seed(seed)
    x = 3.0 * torch.randn(6, 16, generator=g, dtype=f64) + 2.0
    grad_y = torch.randn(6, 16, generator=g, dtype=f64)
    gamma = torch.randn(16, generator=g, dtype=f64)
    x_hat = F.layer_norm(x, (16,), eps=eps)
    rstd = 1.0 / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
    grad_x, _, _ = layer_norm_backward(grad_y, x_hat, rstd, gamma, (-1,))
    return x, x_hat, grad_x


@pytest.mark.parametrize("seed", range(4))
def test_input_gradient_is_orthogonal_to_ones_and_to_x_hat(seed):
    eps = 1e-5
    x, x_hat, grad_x = _hand_backward_inputs(seed, eps)
    cos_ones = grad_x.sum(-1) / (grad_x.norm(dim=-1) * 4.0)  # |ones| = sqrt(16)
    assert cos_ones.abs().max() < 1e-12
    cos_xhat = (grad_x * x_hat).sum(-1) / (grad_x.norm(dim=-1) * x_hat.norm(dim=-1))
    assert (cos_xhat.abs() <= eps / (x.var(-1, unbiased=False) + eps)).all()
    # with a negligible eps the orthogonality to x_hat is exact to rounding
    _, x_hat0, grad_x0 = _hand_backward_inputs(seed, 1e-14)
    cos0 = (grad_x0 * x_hat0).sum(-1) / (grad_x0.norm(dim=-1) * x_hat0.norm(dim=-1))
    assert cos0.abs().max() < 1e-12


def test_input_gradient_through_torch_autograd_is_orthogonal_too():
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(5, 12, generator=g, dtype=f64) * 4 - 3).requires_grad_()
    (
        F.layer_norm(x, (12,), eps=1e-12)
        * torch.randn(5, 12, generator=g, dtype=f64)
    ).sum().backward()
    y = F.layer_norm(x.detach(), (12,), eps=1e-12)
    assert x.grad.sum(-1).abs().max() < 1e-12
    assert (x.grad * y).sum(-1).abs().max() < 1e-10


def test_gradient_scales_like_one_over_sigma_and_eps_caps_it():
    g = torch.Generator().manual_seed(9)
    direction = torch.randn(16, generator=g, dtype=f64)
    direction = (direction - direction.mean()) / direction.std(unbiased=False)
    up = torch.randn(16, generator=g, dtype=f64)

    def grad_norm(spread, eps):
        x = (3.0 + spread * direction).requires_grad_()
        (LayerNormFunction.apply(x, (16,), None, None, eps) * up).sum().backward()
        return x.grad.norm().item()

    assert grad_norm(0.1, 1e-12) / grad_norm(1.0, 1e-12) == pytest.approx(
        10.0, rel=1e-8
    )
    # a nearly constant row: x_hat ~ 0, so only the mean of g is removed, and r =
    # 1/sqrt(eps)
    cap = (up - up.mean()).norm().item() / math.sqrt(1e-5)
    assert grad_norm(1e-8, 1e-5) == pytest.approx(cap, rel=1e-3)


def test_the_backward_the_chapter_prints_is_plain_tensor_code():
    """The chapter prints the library's reference without its docstring, the way the
    cell does: what is left is the formula in plain operations (no blocks, nothing
    in
    place, no out=)."""
    source = inspect.getsource(layer_norm_backward)
    body = source.replace(f'    r"""{layer_norm_backward.__doc__}"""\n', "")
    assert body != source and '"""' not in body
    assert "g - g_mean - x_hat * gx_mean" in body
    assert not re.search(r"out=|row_blocks|no_grad|\.\w+_\(", body)
    assert max(len(line) for line in body.splitlines()) <= 84  # fits the page


@pytest.mark.parametrize("seed", range(6, 12))
def test_reference_backward_equals_autograd_and_the_fast_versions(seed):
    """The chapter's three-way check, on more seeds: every difference below
    1e-13."""
    g = torch.Generator().manual_seed(seed)
    x = (3.0 * torch.randn(2, 4, 6, generator=g, dtype=f64) + 1.0).requires_grad_()
    gamma = torch.randn(6, generator=g, dtype=f64).requires_grad_()
    beta = torch.randn(6, generator=g, dtype=f64).requires_grad_()
    grad_y = torch.randn(2, 4, 6, generator=g, dtype=f64)
    x_hat, _, rstd = layer_norm_forward(x.detach(), (-1,), 1e-5)
    ref = layer_norm_backward(grad_y, x_hat, rstd, gamma.detach(), (-1,))
    blocked = layer_norm_backward_blocked(
        grad_y, x_hat, rstd, gamma.detach(), (-1,)
    )
    params = (x, gamma, beta)
    auto = torch.autograd.grad(
        (F.layer_norm(x, (6,), gamma, beta) * grad_y).sum(), params
    )
    fn = torch.autograd.grad(
        (LayerNormFunction.apply(x, (6,), gamma, beta, 1e-5) * grad_y).sum(), params
    )
    for other in (auto, fn, blocked):
        for a, b in zip(ref, other, strict=True):
            assert (a - b).abs().max() < 1e-13


def test_gradcheck_of_the_hand_backward():
    g = torch.Generator().manual_seed(7)
    xg = torch.randn(3, 5, generator=g, dtype=f64, requires_grad=True)
    wg = torch.randn(5, generator=g, dtype=f64, requires_grad=True)
    bg = torch.randn(5, generator=g, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: LayerNormFunction.apply(x, (5,), w, b, 1e-5),
        (xg, wg, bg),
        eps=1e-6,
        atol=1e-7,
    )


@pytest.mark.parametrize("seed", range(8))
def test_a_plain_step_on_x_never_shrinks_but_training_updates_can(seed):
    plain = ch04.spread_after_one_step("sgd on x", seed=seed)
    assert plain.shrunk == 0 and plain.largest_mean_change < 1e-12
    decay = ch04.spread_after_one_step("sgd + weight decay on x", seed=seed)
    assert decay.shrunk == decay.rows
    shared = ch04.spread_after_one_step("sgd on shared W", seed=seed)
    assert shared.largest_mean_change < 1e-12  # every row's gradient sums to 0
    assert (
        ch04.spread_after_one_step("adam on x", seed=seed).largest_mean_change
        > 1e-3
    )


def test_adam_and_shared_weights_shrink_rows_on_some_seeds():
    # the chapter's table: seeds 0-7
    adam = [
        ch04.spread_after_one_step("adam on x", seed=s).shrunk for s in range(8)
    ]
    shared = [
        ch04.spread_after_one_step("sgd on shared W", seed=s).shrunk
        for s in range(8)
    ]
    assert sum(n > 0 for n in adam) == 3  # "on 3 of the 8 seeds"
    assert shared == [0, 2, 0, 0, 0, 0, 0, 0]  # "2 of 32 rows on 1 of the 8 seeds"


def test_spread_after_one_step_checks_its_arguments():
    assert len(ch04.STEP_KINDS) == 4
    with pytest.raises(ValueError, match="kind"):
        ch04.spread_after_one_step("rmsprop")
    with pytest.raises(ValueError, match="lr"):
        ch04.spread_after_one_step("adam on x", lr=-1.0)
    with pytest.raises(TypeError, match="seed"):
        ch04.spread_after_one_step("adam on x", seed=1.5)


# ---------------------------------------------------------------------- correlation


def _correlations_around_layer_norm(kind, seed):
    """Feature correlations of chapter 4's tokens, before and after LayerNorm."""
    x = ch04.correlated_tokens(kind, seed=seed)
    return ch04.feature_correlation_stats(x), ch04.feature_correlation_stats(
        F.layer_norm(x, (8,))
    )


@pytest.mark.parametrize("seed", range(10))
def test_layernorm_does_not_decorrelate_mixed_features(seed):
    before, after = _correlations_around_layer_norm("mixed", seed)
    # most of the correlation survives
    assert after.mean_abs_r > 0.7 * before.mean_abs_r
    # the covariance becomes singular, not white
    assert abs(after.cov_eig_ratio) < 1e-12
    # features are not unit-variance
    assert after.feature_std_max - after.feature_std_min > 0.2


def test_mixed_correlation_falls_slightly_on_four_of_the_five_seeds_shown():
    """The chapter's five-seed table: mean |r| falls to 0.78-0.95 of its value on 4
    seeds and grows on one ("slightly", as note 001 says, not decorrelation)."""
    ratios = []
    for seed in range(5):
        before, after = _correlations_around_layer_norm("mixed", seed)
        ratios.append(after.mean_abs_r / before.mean_abs_r)
    falling = [r for r in ratios if r < 1]
    assert len(falling) == 4
    assert all(0.78 < r < 0.95 for r in falling)
    assert max(ratios) > 1


@pytest.mark.parametrize("seed", range(3))
def test_common_offset_correlation_goes_to_minus_one_over_d_minus_one(seed):
    before, after = _correlations_around_layer_norm("common", seed)
    assert before.mean_r > 0.8
    assert after.mean_r == pytest.approx(-1 / 7, abs=2e-3)


def test_correlation_helpers_check_inputs():
    with pytest.raises(ValueError, match="kind"):
        ch04.correlated_tokens("diagonal")
    with pytest.raises(ValueError, match="x"):
        ch04.feature_correlation_stats(torch.randn(2, 4))
    with pytest.raises(TypeError, match="x"):
        ch04.feature_correlation_stats(torch.ones(5, 3, dtype=torch.int64))


# --------------------------------------------------------------------------- figure


def test_plot_row_steps_draws_four_panels_and_checks_inputs():
    import matplotlib.pyplot as plt

    fig, axes = ch04.plot_row_steps(torch.tensor([6.5, 2.1, 8.3], dtype=f64))
    assert len(axes) == 4
    plt.close(fig)
    with pytest.raises(ValueError, match="x"):
        ch04.plot_row_steps(torch.ones(2, 3))
    with pytest.raises(ValueError, match="gamma"):
        ch04.plot_row_steps(torch.ones(3), gamma=torch.ones(2))


def test_plot_normalized_geometry_and_its_checks():
    import matplotlib.pyplot as plt

    from course_lib.experiments.ch04_layernorm_derivation import (
        plot_normalized_geometry,
    )

    fig, axes = plot_normalized_geometry(
        {"Hi": contextual_batch()[0, 0]}, n_random=20
    )
    assert len(axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="marked"):
        plot_normalized_geometry({"bad": torch.ones(4, dtype=f64)})
    with pytest.raises(TypeError, match="marked"):
        plot_normalized_geometry([torch.ones(3)])
    with pytest.raises(ValueError, match="n_random"):
        plot_normalized_geometry(n_random=0)


@pytest.mark.parametrize("seed", range(5))
def test_layernorm_does_not_standardize_features_with_their_own_offsets(seed):
    """Features with their own means and scales keep them after LayerNorm."""
    y = F.layer_norm(ch04.correlated_tokens("offsets", seed=seed), (8,))
    means, stds = y.mean(0), y.std(0, unbiased=False)
    assert means.abs().max() > 1.2  # far from mean 0
    assert stds.max() < 0.8  # every feature far from variance 1
    # the features keep the order of their means
    assert bool((means.diff() > 0).all())


def test_geometry_figure_marks_rows_with_distinct_colours_and_shapes():
    import matplotlib.pyplot as plt

    from course_lib.experiments.ch04_layernorm_derivation import (
        plot_normalized_geometry,
    )

    marked = {f"row {i}": torch.randn(3, dtype=f64) for i in range(4)}
    fig, axes = plot_normalized_geometry(marked)
    points = [c for c in axes[1].collections if c.get_label() in marked]
    colours = {tuple(c.get_facecolor()[0]) for c in points}
    shapes = {c.get_paths()[0].vertices.tobytes() for c in points}
    assert len(points) == 4 and len(colours) == 4 and len(shapes) == 4
    plt.close(fig)
