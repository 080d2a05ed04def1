"""Appendix A's claims: the variance methods, 16-bit storage and constant rows."""

from __future__ import annotations

import pytest
import torch

from course_lib.experiments import appendix_a_floating_point as appendix_a

f64 = torch.float64


# ------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("seed", range(6))
def test_stable_variance_beats_naive_by_the_stated_margin(seed):
    e = appendix_a.variance_errors(
        appendix_a.offset_rows(1e4, dtype=torch.float32, seed=seed)
    )
    assert e.naive >= appendix_a.STABLE_MARGIN * e.two_pass
    assert e.naive >= appendix_a.STABLE_MARGIN * e.welford
    assert e.naive > 1.0  # the naive formula has no correct digit at this offset
    assert e.naive_negative > 0.1  # and gives negative "variances"


def test_without_offset_all_three_agree():
    e = appendix_a.variance_errors(appendix_a.offset_rows(0.0, dtype=torch.float32))
    assert max(e.naive, e.two_pass, e.welford) < 1e-5
    assert e.naive_negative == 0.0


def test_naive_error_grows_with_the_offset():
    errors = [
        appendix_a.variance_errors(
            appendix_a.offset_rows(o, dtype=torch.float32)
        ).naive
        for o in (1e1, 1e2, 1e3, 1e4)
    ]
    assert all(b > 10 * a for a, b in zip(errors[:-1], errors[1:], strict=True))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sixteen_bit_storage_and_arithmetic(dtype):
    # at offset 1e4 a spread-1 row is not even storable
    stored = appendix_a.offset_rows(1e4, rows=8, dtype=dtype)
    assert all(len(torch.unique(r)) <= 3 for r in stored)
    with pytest.raises(ValueError, match="constant"):
        appendix_a.variance_errors(
            appendix_a.offset_rows(1e4, dtype=torch.bfloat16)
        )
    # at offset 100: in 16 bits naive is useless, two-pass beats Welford; in float32
    # both stable are fine
    x = appendix_a.offset_rows(1e2, dtype=dtype)
    e16, e32 = appendix_a.variance_errors(x), appendix_a.variance_errors(x.float())
    assert e16.naive > 0.5
    assert e16.two_pass < e16.welford < e16.naive
    assert max(e32.two_pass, e32.welford) < 1e-5


def test_variance_methods_agree_on_exact_data_and_check_inputs():
    # variance 4
    x = torch.tensor([[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]], dtype=f64)
    for fn in (
        appendix_a.variance_naive,
        appendix_a.variance_two_pass,
        appendix_a.variance_welford,
    ):
        assert fn(x).item() == pytest.approx(4.0, abs=1e-12)
        with pytest.raises(TypeError, match="x"):
            fn([[1.0, 2.0]])
        with pytest.raises(TypeError, match="x"):
            fn(torch.arange(4))
    with pytest.raises(ValueError, match="offset"):
        appendix_a.offset_rows(float("inf"))
    with pytest.raises(TypeError, match="dtype"):
        appendix_a.offset_rows(1.0, dtype=torch.int32)
    with pytest.raises(ValueError, match="x"):
        appendix_a.variance_errors(torch.randn(2, 3, 4))


# -------------------------------------------------------------------- constant rows


def _sequential_mean(x: torch.Tensor) -> torch.Tensor:
    total = torch.zeros((), dtype=x.dtype)
    for value in x:
        total = total + value
    return total / x.numel()


def test_a_mean_one_spacing_off_moves_a_constant_row_far_from_zero():
    # the appendix's example: eight float32 copies of 12345.678, added one by one
    x = torch.full((8,), 12345.678)
    mean = _sequential_mean(x)
    spacing = torch.finfo(torch.float32).eps * 2.0**13  # 2**13 <= 12345.678 < 2**14
    assert (mean - x[0]).abs().item() == spacing
    dev = x - mean
    naive = dev / torch.sqrt((dev * dev).mean() + 1e-5)
    assert 0.25 < naive.abs().min().item() < 0.35


def test_12345_678_is_the_appendix_case_and_course_lib_gives_exactly_beta():
    from course_lib import functional as CF

    beta = torch.linspace(-1, 1, 8)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, f64):
        for value in (12345.678, 0.1, -3.3e3):
            row = torch.full((3, 8), value).to(dtype)
            b = beta.to(dtype)
            out = CF.layer_norm(row, (8,), torch.full((8,), 2.0, dtype=dtype), b)
            assert torch.equal(out, b.expand_as(out))


def test_eps_zero_constant_row_is_nan_like_torch():
    import torch.nn.functional as F

    from course_lib import functional as CF

    const = torch.full((1, 3), 5.0, dtype=f64)
    assert torch.isnan(F.layer_norm(const, (3,), eps=0.0)).all()
    assert torch.isnan(CF.layer_norm(const, (3,), eps=0.0)).all()


def test_float16_variance_of_plus_minus_300_overflows_but_course_lib_does_not():
    import torch.nn.functional as F

    from course_lib import functional as CF

    h = torch.tensor([[300.0, -300.0] * 4], dtype=torch.float16)
    dev = h - h.mean(-1, keepdim=True)
    assert torch.isinf((dev * dev).mean(-1)).all()
    expected = torch.tensor([[1.0, -1.0] * 4], dtype=torch.float16)
    assert torch.equal(F.layer_norm(h, (8,)), expected)
    assert torch.equal(CF.layer_norm(h, (8,)), expected)


def test_eps_caps_the_gradient_near_one_over_eps_for_std_plus_eps():
    """The appendix's figure: at spread 1e-8 the std + eps convention's gradient
    is near |g - mean(g)| / 1e-6, about a thousand times PyTorch's cap."""
    import math

    import torch.nn.functional as F

    from course_lib.experiments.ch04_layernorm_derivation import layer_norm_std_eps

    g = torch.Generator().manual_seed(9)
    direction = torch.randn(16, generator=g, dtype=f64)
    direction = (direction - direction.mean()) / direction.std(unbiased=False)
    up = torch.randn(16, generator=g, dtype=f64)
    up = up / up.norm()

    def grad_norm(fn, spread):
        x = (3.0 + spread * direction).requires_grad_()
        (fn(x) * up).sum().backward()
        return x.grad.norm().item()

    centered = (up - up.mean()).norm().item()
    notes = grad_norm(lambda x: layer_norm_std_eps(x, eps=1e-6), 1e-8)
    torch_ = grad_norm(lambda x: F.layer_norm(x, (16,), eps=1e-5), 1e-8)
    assert notes == pytest.approx(centered / 1e-6, rel=0.03)
    assert torch_ == pytest.approx(centered / math.sqrt(1e-5), rel=1e-3)
    assert notes / torch_ > 1000
