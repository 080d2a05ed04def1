"""Chapter 9 (Transformers without normalization, DyT) and its ablations section:
the chapter's library (the ablation variants, the batched sweep, the S-shape
measures, saturation, data regimes, pass counts) and the chapter's claims, run with
the chapter's settings."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from course_lib.experiments import ch07_prenorm_vs_postnorm as ch07
from course_lib.experiments import ch09_without_normalization as ch09
from course_lib.experiments.ch04_layernorm_derivation import (
    EXPECTED_INVARIANCE,
    INVARIANCE_ALL,
    INVARIANCE_TRANSFORMS,
    invariance_table,
)
from course_lib.norms import DynamicTanh
from course_lib.notebook import setup

BOOK = Path(__file__).resolve().parents[1] / "book"
f64 = torch.float64


def _x(seed: int = 0, shape=(3, 5, 8)) -> torch.Tensor:
    return 3 * torch.randn(
        shape, generator=torch.Generator().manual_seed(seed), dtype=f64
    )


def _small(d: int = 16, n_layers: int = 2):
    task = ch07.TaskConfig(d_model=d, d_ff=4 * d, batch_size=8)

    def config(norm: str, alpha_init: float = 0.5):
        model = task.model(norm_first=True, norm=norm, alpha_init=alpha_init)
        return replace(model, n_layers=n_layers)

    return task, config


# ------------------------------------------------------------------- Squash


def test_squash_tanh_is_dynamic_tanh_parameter_for_parameter():
    x = _x()
    ours, theirs = (
        ch09.Squash(8, "tanh", 0.7, dtype=f64),
        DynamicTanh(8, 0.7, dtype=f64),
    )
    assert [n for n, _ in ours.named_parameters()] == ["alpha", "weight", "bias"]
    theirs.load_state_dict(ours.state_dict())
    assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("fn", ch09.SQUASHES)
def test_each_squash_is_its_formula(fn):
    f = {
        "identity": lambda z: z,
        "tanh": torch.tanh,
        "hardtanh": lambda z: z.clamp(-1, 1),
        "sigmoid": torch.sigmoid,
    }[fn]
    layer = ch09.Squash(8, fn, 0.5, dtype=f64)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    x = _x(1)
    assert torch.equal(layer(x), layer.weight * f(layer.alpha * x) + layer.bias)


@pytest.mark.parametrize("fn", ch09.SQUASHES)
def test_squash_gradcheck(fn):
    layer = ch09.Squash(4, fn, 0.5, dtype=f64)
    x = _x(2, (2, 4)).requires_grad_()
    # keep alpha * x away from hardtanh's kinks at +-1
    if fn == "hardtanh":
        x = x.detach().clamp(-1.5, 1.5).add(0.01).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, a, w, b: torch.func.functional_call(
            layer, {"alpha": a, "weight": w, "bias": b}, (x,)
        ),
        (x, *(p.detach().clone().requires_grad_() for p in layer.parameters())),
    )


def test_fixed_alpha_is_a_buffer_and_does_not_train():
    layer = ch09.Squash(8, "tanh", 1.0, learn_alpha=False, dtype=f64)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in layer.named_buffers()] == ["alpha"]
    assert float(layer.alpha) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"fn": "relu"}, "fn"),
        ({"alpha_init": -1.0}, "alpha_init"),
        ({"alpha_init": "a"}, "alpha_init"),
        ({"learn_alpha": 1}, "learn_alpha"),
        ({"normalized_shape": 0}, "normalized_shape"),
    ],
)
def test_bad_squash_arguments_are_named(kwargs, name):
    args = {"normalized_shape": 8, **kwargs}
    with pytest.raises((ValueError, TypeError), match=name):
        ch09.Squash(**args)


def test_variants_check_their_fields():
    _, config = _small()
    with pytest.raises(ValueError, match="squash"):
        ch09.Variant(config("layer"), squash="tanh")
    with pytest.raises(ValueError, match="learn_alpha"):
        ch09.Variant(config("dyt"), learn_alpha=False)
    with pytest.raises(ValueError, match="squash"):
        ch09.Variant(config("dyt"), squash="relu")
    with pytest.raises(TypeError, match="config"):
        ch09.Variant("dyt")  # type: ignore[arg-type]


def test_build_swaps_every_dyt_and_keeps_every_other_weight():
    task, config = _small()
    plain = ch07.make_model(task, config("dyt", 0.3), 0)
    swapped = ch09.build(
        task, ch09.Variant(config("dyt", 0.3), squash="sigmoid"), 0
    )
    assert not any(isinstance(m, DynamicTanh) for m in swapped.modules())
    squashes = [m for m in swapped.modules() if isinstance(m, ch09.Squash)]
    assert len(squashes) == 5 and all(m.fn == "sigmoid" for m in squashes)
    assert all(float(m.alpha.detach()) == pytest.approx(0.3) for m in squashes)
    a, b = plain.state_dict(), swapped.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------- the sweep


def test_the_sweep_spreads_over_processes_without_changing_a_bit():
    task, config = _small()
    variants = {
        "LN": ch09.Variant(config("layer")),
        "a0.5": ch09.Variant(config("dyt", 0.5)),
        "a1": ch09.Variant(config("dyt", 1.0)),
        "hard": ch09.Variant(config("dyt"), squash="hardtanh"),
    }
    kw = {"steps": 6, "warmup": 2, "chunk": 4}
    one = ch09.ablation_sweep(
        task, variants, (0.01, 0.1), (0, 1), processes=1, **kw
    )
    two = ch09.ablation_sweep(
        task, variants, (0.01, 0.1), (0, 1), processes=2, **kw
    )
    assert one.losses.keys() == two.losses.keys()
    assert all(torch.equal(one.losses[k], two.losses[k]) for k in one.losses)
    # another grouping of the same runs: the same losses up to float64 round-off
    other = ch09.ablation_sweep(
        task, variants, (0.01, 0.1), (0, 1), steps=6, warmup=2, chunk=2
    )
    assert all(
        torch.allclose(one.losses[k], other.losses[k], rtol=0, atol=1e-10)
        for k in one.losses
    )


def test_a_variant_alone_trains_as_the_chapter_7_loop_does():
    task, config = _small()
    result = ch09.ablation_sweep(
        task,
        {"LN": ch09.Variant(config("layer"))},
        (0.03,),
        (1,),
        steps=5,
        warmup=2,
    )
    losses, _ = ch07.train_lm(
        task,
        config("layer"),
        1,
        lr=0.03,
        warmup_steps=2,
        steps=5,
        betas=(0.9, 0.98),
    )
    assert torch.allclose(
        result.losses[("LN", 0.03)][0],
        torch.as_tensor(losses, dtype=f64),
        rtol=0,
        atol=1e-10,
    )


def test_final_and_best_read_the_losses():
    losses = {
        ("a", 0.1): torch.tensor([[3.0, 2.0], [3.0, 4.0]], dtype=f64),
        ("a", 0.3): torch.tensor([[3.0, math.nan], [3.0, 1.0]], dtype=f64),
    }
    result = ch09.AblationResult(losses, (0.1, 0.3), (0, 1), 1.0, 3.0)
    final = result.final("a", last=1)
    assert final.tolist() == [[2.0, 4.0], [math.inf, 1.0]]
    assert result.best("a", last=1)[0] == 0.1
    with pytest.raises(ValueError, match="name"):
        result.final("b")


def test_bad_sweep_arguments_are_named():
    task, config = _small()
    v = {"x": ch09.Variant(config("dyt"))}
    with pytest.raises(TypeError, match="variants"):
        ch09.ablation_sweep(task, {}, (0.1,), (0,), steps=2)
    with pytest.raises(ValueError, match="rates"):
        ch09.ablation_sweep(task, v, (-0.1,), (0,), steps=2)
    with pytest.raises(ValueError, match="steps"):
        ch09.ablation_sweep(task, v, (0.1,), (0,), steps=0)
    with pytest.raises(ValueError, match="chunk"):
        ch09.ablation_sweep(task, v, (0.1,), (0,), steps=2, chunk=0)


# ------------------------------------------------------------------- the S shape


def test_tail_gain_of_a_line_is_one_and_of_a_tanh_below_one():
    x = torch.linspace(-5, 5, 1001, dtype=f64)
    assert ch09.tail_gain(x, 2 * x + 1) == pytest.approx(1.0, abs=1e-12)
    assert ch09.tail_gain(x, torch.tanh(x)) < 0.5
    with pytest.raises(ValueError, match="tail"):
        ch09.tail_gain(x, x, tail=0.5)
    with pytest.raises(ValueError, match="shape"):
        ch09.tail_gain(x, x[:-1])
    with pytest.raises(TypeError, match="tensors"):
        ch09.tail_gain([1.0] * 10, x)  # type: ignore[arg-type]


def test_fit_tanh_recovers_a_tanh():
    x = torch.linspace(-4, 4, 801, dtype=f64)
    alpha, gamma, rms = ch09.fit_tanh(x, 1.5 * torch.tanh(0.8 * x))
    assert alpha == pytest.approx(0.8, rel=0.03)
    assert gamma == pytest.approx(1.5, rel=0.03)
    assert rms < 0.01


def test_heavy_tailed_rows():
    plain = ch09.heavy_tailed_rows(400, 8, extreme_share=0.0, seed=3)
    heavy = ch09.heavy_tailed_rows(400, 8, extreme_share=0.5, seed=3)
    assert plain.shape == (400, 8) and plain.dtype == f64
    ratio = heavy[:, :2].abs().max() / plain[:, :2].abs().max()
    assert ratio > 5
    assert torch.equal(plain[:, 2:], heavy[:, 2:])  # only the first 2 channels grow
    with pytest.raises(ValueError, match="extreme_channels"):
        ch09.heavy_tailed_rows(10, 4, extreme_channels=4)
    with pytest.raises(ValueError, match="extreme_share"):
        ch09.heavy_tailed_rows(10, 4, extreme_share=1.5)


def test_norm_points_are_layernorms_input_and_output():
    task, config = _small()
    model = ch07.make_model(task, config("layer"), 0)
    tokens = task.source().sample(4, task.seq_len, torch.Generator().manual_seed(1))
    x, x_hat = ch09.norm_points(model, tokens, 1)
    assert x.shape == (4 * task.seq_len, 16)
    assert torch.allclose(x_hat, F.layer_norm(x, (16,)), rtol=0, atol=1e-12)
    # read off the module's output: a gamma and beta away from 1 and 0 divide out
    norm = model.stack.layers[1].norm1
    with torch.no_grad():
        norm.weight.mul_(1.7)
        norm.bias.add_(0.3)
    x2, x_hat2 = ch09.norm_points(model, tokens, 1)
    assert torch.equal(x2, x)
    assert torch.allclose(x_hat2, x_hat, rtol=0, atol=1e-12)
    # ...and a module that is not LayerNorm's formula is seen as it is
    norm.eps = 1.0
    _, x_hat3 = ch09.norm_points(model, tokens, 1)
    assert not torch.allclose(x_hat3, x_hat, rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match="layer"):
        ch09.norm_points(model, tokens, 2)
    with pytest.raises(ValueError, match="LayerNorm"):
        ch09.norm_points(ch07.make_model(task, config("dyt"), 0), tokens, 0)


# ----------------------------------------------------------- saturation, the rest


def test_saturation_shares_are_shares_and_start_at_zero():
    task, config = _small()
    s = ch09.saturation_during_training(
        task, config("dyt"), (0, 1), rate=0.03, steps=6, every=3
    )
    assert s.steps.tolist() == [0, 3]
    assert s.share.shape == s.alpha.shape == s.inv_std.shape == (2, 2)
    assert bool(((s.share >= 0) & (s.share <= 1)).all())
    assert bool((s.alpha[:, 0] == 0.5).all())
    # a threshold of 0 counts every nonzero input
    everything = ch09.saturation_during_training(
        task, config("dyt"), (0,), rate=0.03, steps=3, every=3, threshold=1e-12
    )
    assert float(everything.share[0, 0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dyt"):
        ch09.saturation_during_training(
            task, config("layer"), (0,), rate=0.1, steps=3, every=1
        )


def test_data_regime_pools_and_bad_pools():
    task, config = _small()
    out = ch09.data_regime(
        task,
        {"LN": config("layer")},
        (8, None),
        (0,),
        rate=0.03,
        steps=4,
        n_heldout=16,
    )
    assert set(out) == {("LN", 8), ("LN", None)}
    assert all(
        v.shape == (1,) and bool(torch.isfinite(v).all()) for v in out.values()
    )
    with pytest.raises(ValueError, match="pools"):
        ch09.data_regime(
            task, {"LN": config("layer")}, (4 * 8 + 1,), (0,), rate=0.03, steps=4
        )
    with pytest.raises(TypeError, match="configs"):
        ch09.data_regime(task, {}, (8,), (0,), rate=0.03, steps=4)


def test_pass_counts_the_chapter_prints():
    passes = ch09.dyt_passes((4, 64, 256))
    assert passes["F.layer_norm"] == (1.0, 2.0)
    assert passes["x * rsqrt(mean(x^2) + eps) * weight"] == (4.0, 15.0)
    assert passes["tanh(alpha * x) * weight + bias"] == (4.0, 12.0)
    assert passes["course_lib dynamic_tanh"] == (4.0, 12.0)


def test_dyt_column_of_the_invariance_table():
    cells = {
        (r.norm, r.transform): r for r in invariance_table(norms=INVARIANCE_ALL)
    }
    row = tuple(cells["dyt", t].invariant for t in INVARIANCE_TRANSFORMS)
    assert row == EXPECTED_INVARIANCE["dyt"] == (False,) * 6


# ------------------------------------------------------------------- the claims

MAIN = BOOK / "09_without_normalization.ipynb"
ABLATIONS = BOOK / "09_without_normalization_ablations.ipynb"


def _code(path: Path) -> str:
    return "\n".join(
        "".join(c["source"])
        for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
        if c["cell_type"] == "code"
    )


def test_settings_match_the_notebooks():
    main, ablations = _code(MAIN), _code(ABLATIONS)
    assert "small = ch07.TaskConfig(d_model=16, d_ff=64, batch_size=8)" in main
    assert "SEEDS, STEPS, WARMUP = (0, 1, 2), 40, 10" in main
    assert "POOLS = (32, 128, None)" in main
    assert "rate=0.03,\n    steps=STEPS,\n    warmup=WARMUP," in main
    assert (
        "RATES, SEEDS, STEPS, WARMUP = (0.01, 0.03, 0.1, 0.3), (0, 1, 2), 40, 10"
        in (ablations)
    )
    assert "ALPHA_INITS = (0.1, 0.5, 1.0, 2.0)" in ablations
    assert (
        "task = ch07.TaskConfig(d_model=d, d_ff=4 * d, batch_size=8)" in ablations
    )
    assert "return replace(model, n_layers=4)" in ablations


def test_only_the_identity_blows_up_at_the_largest_rate():
    setup()
    task, config = _small(n_layers=4)
    variants = {
        "identity": ch09.Variant(config("dyt"), squash="identity"),
        "tanh": ch09.Variant(config("dyt")),
    }
    grid = ch09.ablation_sweep(
        task, variants, (0.3,), (0, 1, 2), steps=40, warmup=10
    )
    assert bool((grid.final("identity")[0] > 10).all())
    assert bool((grid.final("tanh")[0] < 3).all())


def test_dyt_overfits_less_on_a_pool_of_32_and_ties_on_new_data():
    setup()
    task, config = _small(n_layers=4)
    out = ch09.data_regime(
        task,
        {"LN": config("layer"), "DyT": config("dyt")},
        (32, None),
        (0, 1, 2),
        rate=0.03,
        steps=40,
        warmup=10,
    )
    gap = {p: out["DyT", p] - out["LN", p] for p in (32, None)}
    assert bool((gap[32] < 0).all()) and float(gap[32].mean()) < -0.1
    assert bool((gap[None].abs() < 0.03).all())
