"""Chapter 8 (RMSNorm): its library (the exact Pre-LN -> Pre-RMSNorm conversion of
Jiang et al. 2023, the residual stream's row means and their share, the speed
measurements) and the chapter's claims, run with the chapter's settings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import functional as CF
from course_lib.experiments import ch07_prenorm_vs_postnorm as ch07
from course_lib.experiments.ch07_prenorm_vs_postnorm import TinyLM
from course_lib.experiments.ch08_rmsnorm import (
    NORM_CALLS,
    mean_shares,
    norm_passes,
    norm_seconds,
    pre_rmsnorm_from_pre_layernorm,
    stream_means,
)
from course_lib.notebook import setup
from course_lib.transformer import BlockConfig

VOCAB = 16


def _pre_ln(seed: int, n_layers: int = 3, **block) -> TinyLM:
    """A float64 Pre-LN TinyLM whose norms are not at their identity init and
    whose embedding rows have a large mean, so that every step of the conversion
    is exercised."""
    config = BlockConfig(
        **{"d_model": 32, "n_heads": 4, "d_ff": 64, "norm_first": True, **block}
    )
    torch.manual_seed(seed)
    model = TinyLM(config, n_layers, VOCAB).double()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.5 * torch.randn_like(param))
        model.embedding.weight.add_(3.0)
    return model


def _tokens(seed: int) -> torch.Tensor:
    return torch.randint(
        0, VOCAB, (4, 12), generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize(
    "block",
    [{}, {"bias": False}, {"activation": "gelu"}, {"eps": 1e-6}],
    ids=["default", "no-bias", "gelu", "eps-1e-6"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_converted_model_computes_the_same_logits(seed: int, block: dict):
    ln = _pre_ln(seed, **block)
    rms = pre_rmsnorm_from_pre_layernorm(ln)
    assert rms.stack.config.norm == "rms"
    assert all(
        type(m).__name__ == "RMSNorm"
        for layer in rms.stack.layers
        for m in (layer.norm1, layer.norm2)
    )
    tokens = _tokens(seed)
    ours, theirs = rms(tokens), ln(tokens)
    assert theirs.abs().max() > 0.1  # not a vacuous comparison
    assert (ours - theirs).abs().max() < 1e-12


def test_the_converted_stream_is_zero_mean_and_the_original_is_not():
    ln = _pre_ln(3)
    rms = pre_rmsnorm_from_pre_layernorm(ln)
    tokens = _tokens(3)
    assert stream_means(ln, tokens).abs().min() > 1.0
    assert stream_means(rms, tokens).abs().max() < 1e-12
    assert stream_means(rms, tokens).shape == (len(ln.stack.layers) + 1, 4, 12)


def test_swapping_the_norms_alone_is_not_the_same_function():
    """The projection is what makes it exact: with the original embedding and
    stream-writing matrices put back, the RMSNorm model computes something else."""
    ln = _pre_ln(4)
    rms = pre_rmsnorm_from_pre_layernorm(ln)
    with torch.no_grad():
        rms.embedding.weight.copy_(ln.embedding.weight)
        for theirs, ours in zip(ln.stack.layers, rms.stack.layers, strict=True):
            ours.self_attn.out_proj.load_state_dict(
                theirs.self_attn.out_proj.state_dict()
            )
            ours.linear2.load_state_dict(theirs.linear2.state_dict())
    tokens = _tokens(4)
    assert (rms(tokens) - ln(tokens)).abs().max() > 1e-2


def test_float32_agrees_to_rounding():
    ln = _pre_ln(5).float()
    rms = pre_rmsnorm_from_pre_layernorm(ln)
    assert rms.head.weight.dtype == torch.float32
    tokens = _tokens(5)
    assert (rms(tokens) - ln(tokens)).abs().max() < 1e-4


def test_the_model_and_the_random_state_are_left_alone():
    ln = _pre_ln(6)
    before = {k: v.clone() for k, v in ln.state_dict().items()}
    state = torch.random.get_rng_state()
    pre_rmsnorm_from_pre_layernorm(ln)
    assert torch.equal(torch.random.get_rng_state(), state)
    after = ln.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_models_are_refused_by_name():
    with pytest.raises(TypeError, match="model"):
        pre_rmsnorm_from_pre_layernorm(nn.Linear(2, 2))
    post = TinyLM(BlockConfig(d_model=16, n_heads=2, d_ff=32), 2, VOCAB)
    with pytest.raises(ValueError, match="Pre-LN"):
        pre_rmsnorm_from_pre_layernorm(post)
    rms = TinyLM(
        BlockConfig(d_model=16, n_heads=2, d_ff=32, norm="rms", norm_first=True),
        2,
        VOCAB,
    )
    with pytest.raises(ValueError, match="Pre-LN"):
        pre_rmsnorm_from_pre_layernorm(rms)
    bare = TinyLM(
        BlockConfig(d_model=16, n_heads=2, d_ff=32, norm_first=True),
        2,
        VOCAB,
        final_norm=False,
    )
    with pytest.raises(ValueError, match="final LayerNorm"):
        pre_rmsnorm_from_pre_layernorm(bare)
    with pytest.raises(TypeError, match="model"):
        stream_means(nn.Linear(2, 2), _tokens(0))


def test_mean_shares_of_constant_and_zero_mean_streams():
    model = _pre_ln(0)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.full_like(model.embedding.weight, 2.0))
    shares = mean_shares(model, _tokens(0))  # (n_layers + 1,)
    assert shares.shape == (4,)
    assert abs(shares[0].item() - 1.0) < 1e-12  # constant rows: all mean
    rms = pre_rmsnorm_from_pre_layernorm(_pre_ln(1))
    assert mean_shares(rms, _tokens(1)).max() < 1e-20  # centred: no mean at all
    with pytest.raises(TypeError, match="model"):
        mean_shares(nn.Linear(2, 2), _tokens(0))


def test_pass_counts_of_the_four_norms():
    """The counts the chapter prints: native LayerNorm is one fused kernel each
    way; native RMSNorm on the CPU is several; among the two written-out formulas
    RMSNorm takes fewer passes. Counts do not depend on the number of rows."""
    small = norm_passes((4, 8, 64))
    assert small == norm_passes((2, 32, 64))
    assert small["F.layer_norm"] == (1, 2)
    assert small["F.rms_norm"][1] > 4 * small["F.layer_norm"][1]
    ours_ln, ours_rms = small["course_lib layer_norm"], small["course_lib rms_norm"]
    assert ours_rms[0] < ours_ln[0] and ours_rms[1] < ours_ln[1]


def test_norm_seconds_returns_every_norm():
    seconds = norm_seconds((2, 4, 32), repeat=1, warmup=0)
    assert set(seconds) == set(NORM_CALLS)
    assert all(f > 0 and b > 0 for f, b in seconds.values())


@pytest.mark.parametrize("fn", [norm_passes, norm_seconds])
def test_bad_shapes_are_refused_by_name(fn):
    with pytest.raises(TypeError, match="shape"):
        fn(64)
    with pytest.raises(ValueError, match="shape"):
        fn((64,))
    with pytest.raises(ValueError, match=r"shape\[1\]"):
        fn((4, 0))


# ----------------------------------------------------------------------------------
# The chapter's claims, with the chapter's settings
# ----------------------------------------------------------------------------------

NOTEBOOK = Path(__file__).resolve().parents[1] / "book" / "08_rmsnorm.ipynb"
STEPS, RATE, WARMUP = 100, 0.02, 10
SWEEP_STEPS, SWEEP_WARMUP = 40, 10
RATES, SEEDS = (0.01, 0.02, 0.04, 0.08), (0, 1, 2)


def test_settings_match_the_notebook():
    source = "\n".join(
        "".join(c["source"])
        for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
        if c["cell_type"] == "code"
    )
    assert f"STEPS, RATE, WARMUP = {STEPS}, {RATE}, {WARMUP}" in source
    assert f"SWEEP_STEPS, SWEEP_WARMUP = {SWEEP_STEPS}, {SWEEP_WARMUP}" in source
    assert f"RATES, SEEDS = {RATES}, {SEEDS}" in source
    assert "task = ch07.TaskConfig()" in source
    assert "PRE = task.model(norm_first=True)" in source
    assert "sweep_task = ch07.TaskConfig(batch_size=8)" in source
    assert '"RMSNorm": sweep_task.model(norm_first=True, norm="rms")' in source
    assert (
        "task.source().sample(64, task.seq_len, torch.Generator().manual_seed(7))"
        in (source)
    )


@pytest.fixture(scope="module")
def chapter():
    """The trained chapter-7 model of the chapter, its untrained twin and the
    token batch the chapter reads the stream on."""
    setup()  # one thread, deterministic kernels: the same floats as the notebook
    task = ch07.TaskConfig()
    config = task.model(norm_first=True)
    _, trained = ch07.train_lm(
        task, config, 0, lr=RATE, warmup_steps=WARMUP, steps=STEPS
    )
    untrained = ch07.make_model(task, config, 0)
    tokens = task.source().sample(
        64, task.seq_len, torch.Generator().manual_seed(7)
    )
    return task, trained, untrained, tokens


def test_training_makes_the_stream_carry_less_mean(chapter):
    task, trained, untrained, tokens = chapter
    d = task.d_model
    init, after = mean_shares(untrained, tokens), mean_shares(trained, tokens)
    assert bool(((init > 0.5 / d) & (init < 2 / d)).all())
    assert bool((after[1:] < 0.2 / d).all())  # "more than an order of magnitude"
    assert bool((after[1:] < init[1:] / 10).all())
    mean_init = stream_means(untrained, tokens).pow(2).mean(dim=(1, 2)).sqrt()
    mean_after = stream_means(trained, tokens).pow(2).mean(dim=(1, 2)).sqrt()
    assert bool((mean_after < 1.4 * mean_init).all())  # "grow by less than 40%"
    rows = []
    for m in (untrained, trained):
        _, hidden = m(tokens, return_hidden=True)
        rows.append(torch.stack([h.pow(2).mean().sqrt() for h in hidden]))
    assert bool((rows[1][1:] > 4 * rows[0][1:]).all())  # "several times larger"


def test_the_loss_gradient_has_zero_row_mean_at_every_depth(chapter):
    task, trained, _, tokens = chapter
    logits, hidden = trained(tokens, return_hidden=True)
    for h in hidden:
        h.retain_grad()
    ch07.next_token_loss(logits, tokens).backward()
    trained.zero_grad()
    for h in hidden:
        assert h.grad.abs().max() > 1e-8  # not vacuous
        assert h.grad.mean(dim=-1).abs().max() < 1e-12 * h.grad.abs().max()


def test_the_trained_model_converts_exactly_and_the_swap_does_not(chapter):
    task, trained, _, tokens = chapter
    converted = pre_rmsnorm_from_pre_layernorm(trained)
    with torch.no_grad():
        assert (converted(tokens) - trained(tokens)).abs().max() < 1e-12
        assert stream_means(converted, tokens).abs().max() < 1e-12
    # the swap alone: RMSNorm for LayerNorm, beta folded, nothing centred
    swapped = pre_rmsnorm_from_pre_layernorm(trained)
    with torch.no_grad():
        swapped.embedding.weight.copy_(trained.embedding.weight)
        for ours, theirs in zip(
            swapped.stack.layers, trained.stack.layers, strict=True
        ):
            for name in ("self_attn.out_proj", "linear2"):
                ours.get_submodule(name).load_state_dict(
                    theirs.get_submodule(name).state_dict()
                )
        assert (swapped(tokens) - trained(tokens)).abs().max() > 0.1
    no_beta = ch07.make_model(task, task.model(norm_first=True), 0)
    no_beta.load_state_dict(
        {
            k: torch.zeros_like(v) if "norm" in k and k.endswith("bias") else v
            for k, v in trained.state_dict().items()
        }
    )
    before, after, beta = (
        ch07.heldout_loss(m, task) for m in (trained, swapped, no_beta)
    )
    assert 0 < after - before < 0.002  # "costs little here"
    assert beta > after  # "dropping beta instead costs more"
    # the exercise: the uncentred embedding alone breaks exactness
    with torch.no_grad():
        converted.embedding.weight.copy_(trained.embedding.weight)
        assert (converted(tokens) - trained(tokens)).abs().max() > 1e-3


def test_layernorm_and_rmsnorm_tie_within_the_seed_spread():
    setup()
    task = ch07.TaskConfig(batch_size=8)
    configs = {
        "LayerNorm": task.model(norm_first=True),
        "RMSNorm": task.model(norm_first=True, norm="rms"),
    }
    sweep = ch07.warmup_sweep(
        task, configs, RATES, (SWEEP_WARMUP,), SEEDS, steps=SWEEP_STEPS
    )
    final = {
        (n, r): sweep.losses[(n, SWEEP_WARMUP, r)][:, -10:].mean(dim=1)
        for n in configs
        for r in RATES
    }
    # "both norms start from the same weights": every non-norm tensor is equal
    ln, rms = (ch07.make_model(task, c, 0).state_dict() for c in configs.values())
    betas = {k for k in ln if "norm" in k and k.endswith("bias")}
    assert betas and ln.keys() - rms.keys() == betas
    assert all(torch.equal(ln[k], rms[k]) for k in rms)
    diff = torch.stack([final["RMSNorm", r] - final["LayerNorm", r] for r in RATES])
    spread = max(
        (final["LayerNorm", r].max() - final["LayerNorm", r].min()).item()
        for r in RATES
    )
    assert diff.abs().max() < 0.05  # "within a few hundredths"
    assert 0 < int((diff < 0).sum()) < diff.numel()  # neither wins every pair
    assert diff.abs().max() < 1.5 * spread  # "of the same order as the seed spread"


def _llama_rms_norm(x, weight, eps=1e-6):
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return weight * y.to(x.dtype)


def _gemma_rms_norm(x, weight, eps=1e-6):
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (y * (1.0 + weight.float())).to(x.dtype)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_rounding_stays_within_u_and_two_do_not(seed: int):
    gen = torch.Generator().manual_seed(seed)
    xb = torch.randn(256, 1024, generator=gen).bfloat16()
    gain = (
        1 + (0.3 * torch.randn(1024, generator=gen)).bfloat16().float()
    ).bfloat16()
    x64 = xb.double()
    exact = (
        x64 / torch.sqrt(x64.pow(2).mean(-1, keepdim=True) + 1e-6) * gain.double()
    )
    u = 2.0**-8

    def rel(y):
        return ((y.double() - exact).abs() / exact.abs()).max().item()

    one = rel(_gemma_rms_norm(xb, (gain.float() - 1).bfloat16()))
    two = rel(_llama_rms_norm(xb, gain))
    assert one <= 1.01 * u < two


def test_float16_squares_overflow_and_f_rms_norm_upcasts():
    gen = torch.Generator().manual_seed(5)
    big = (300 + 20 * torch.randn(4, 1024, generator=gen)).half()
    assert (big * big).isinf().float().mean() > 0.9
    naive = big / torch.sqrt((big * big).mean(dim=-1, keepdim=True) + 1e-6)
    assert naive.abs().max() == 0
    reference = F.rms_norm(big.double(), (1024,), eps=1e-6)
    for y in (F.rms_norm(big, (1024,), eps=1e-6), CF.rms_norm(big, 1024, eps=1e-6)):
        assert (y.double() - reference).abs().max() < 1e-3


def test_the_eps_threshold_of_the_exercise():
    q = 0.99**2
    r_star = math.sqrt((q * 1e-5 - 1e-6) / (1 - q))
    assert 0.020 < r_star < 0.022
    for r, more in ((0.9 * r_star, True), (1.1 * r_star, False)):
        probe = torch.full((1, 8), r, dtype=torch.float64)
        shrink = (
            1
            - (
                F.rms_norm(probe, (8,), eps=1e-5)
                / F.rms_norm(probe, (8,), eps=1e-6)
            ).mean()
        )
        assert bool(shrink > 0.01) is more
