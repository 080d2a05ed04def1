"""Chapter 7 (PreNorm vs PostNorm): the experiments module and the chapter's claims.

The claim tests run the chapter's own experiments with the chapter's seeds and
settings (checked against the notebook's source below) and assert each claim the
chapter makes, as an inequality with a margin.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from contracts import torch_encoder_layer
from torch import nn

from course_lib.experiments import ch07_prenorm_vs_postnorm as ch07
from course_lib.notebook import setup
from course_lib.transformer import TransformerBlock

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "07_prenorm_vs_postnorm.ipynb"

# The chapter's settings; test_settings_match_the_notebook keeps them in step.
SEEDS = (0, 1, 2)
DEPTHS = (2, 4, 8, 16)
N_LAYERS, LR, STEPS, WARMUP = 2, 0.06, 150, 50
BETAS = (0.9, 0.98)
TASK = ch07.TaskConfig()
POST, PRE = (
    TASK.model(False, n_layers=N_LAYERS),
    TASK.model(True, n_layers=N_LAYERS),
)
RUNS = {
    "Post-LN, no warmup": (POST, 0),
    "Post-LN, warmup": (POST, WARMUP),
    "Pre-LN, no warmup": (PRE, 0),
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    setup()  # one thread, deterministic kernels: the same floats as the notebook


def test_settings_match_the_notebook():
    source = "\n".join(
        "".join(c["source"])
        for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
        if c["cell_type"] == "code"
    )
    assert f"SEEDS = {SEEDS}" in source
    assert f"DEPTHS = {DEPTHS}" in source
    assert (
        f"N_LAYERS, LR, STEPS, WARMUP = {N_LAYERS}, {LR}, {STEPS}, {WARMUP}"
        in source
    )
    assert f"BETAS = {BETAS}" in source
    assert "task = ch07.TaskConfig()" in source
    assert "POST = task.model(norm_first=False, n_layers=N_LAYERS)" in source
    assert "PRE = task.model(norm_first=True, n_layers=N_LAYERS)" in source
    for name, (config, warmup) in RUNS.items():
        variable = "PRE" if config.block.norm_first else "POST"
        assert f'"{name}": ({variable}, {"WARMUP" if warmup else 0})' in source, (
            name
        )


# ----------------------------------------------------------------------------------
# The Markov source and its loss floor
# ----------------------------------------------------------------------------------


def test_two_state_chain_by_hand():
    p = torch.tensor([[0.9, 0.1], [0.5, 0.5]], dtype=torch.float64)
    pi = ch07.stationary_distribution(p)
    assert torch.allclose(
        pi, torch.tensor([5 / 6, 1 / 6], dtype=torch.float64), atol=1e-12
    )

    def h(q: float) -> float:
        return -(q * math.log(q) + (1 - q) * math.log(1 - q))

    assert ch07.entropy_rate(p) == pytest.approx(
        5 / 6 * h(0.1) + 1 / 6 * h(0.5), abs=1e-12
    )


def test_entropy_rate_limits():
    v = 5
    uniform = torch.full((v, v), 1 / v, dtype=torch.float64)
    assert ch07.entropy_rate(uniform) == pytest.approx(math.log(v), abs=1e-12)
    cycle = torch.roll(torch.eye(v, dtype=torch.float64), 1, dims=1)  # i -> i + 1
    assert ch07.entropy_rate(cycle) == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(
        ch07.stationary_distribution(cycle), torch.full((v,), 1 / v).double()
    )


def test_random_source_is_a_stationary_chain():
    source = ch07.MarkovSource.random(16, 0.3, seed=0)
    p, pi = source.transition, source.stationary
    assert p.shape == (16, 16) and p.dtype == torch.float64
    assert torch.allclose(p.sum(1), torch.ones(16, dtype=torch.float64))
    assert torch.allclose(pi @ p, pi, atol=1e-12)
    assert 0 < source.entropy_rate < source.unigram_entropy <= math.log(16) + 1e-12
    again = ch07.MarkovSource.random(16, 0.3, seed=0)
    assert torch.equal(again.transition, p)
    assert not torch.equal(ch07.MarkovSource.random(16, 0.3, seed=1).transition, p)


def test_sampled_loss_of_the_true_model_is_the_entropy_rate():
    source = TASK.source()
    tokens = source.sample(4096, TASK.seq_len, torch.Generator().manual_seed(1))
    assert tokens.shape == (4096, TASK.seq_len) and tokens.dtype == torch.long
    assert int(tokens.min()) >= 0 and int(tokens.max()) < TASK.vocab_size
    assert abs(source.cross_entropy(tokens) - source.entropy_rate) < 0.02


def test_samples_follow_the_transition_matrix():
    source = ch07.MarkovSource.random(4, 1.0, seed=3)
    tokens = source.sample(2000, 20, torch.Generator().manual_seed(0))
    counts = torch.zeros(4, 4, dtype=torch.float64)
    counts.index_put_(
        (tokens[:, :-1].reshape(-1), tokens[:, 1:].reshape(-1)),
        torch.ones(tokens[:, 1:].numel(), dtype=torch.float64),
        accumulate=True,
    )
    freq = counts / counts.sum(1, keepdim=True)
    assert (freq - source.transition).abs().max() < 0.03


# ----------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_first", [False, True])
def test_block_equals_torch_encoder_layer_with_a_causal_mask(norm_first):
    layer = torch_encoder_layer(norm_first, shape=(32, 2, 128), seed=0)
    block = TransformerBlock.from_torch(layer)
    x = torch.randn(4, 10, 32, dtype=torch.float64)
    allowed = ch07.causal_mask(10)
    assert torch.allclose(
        block(x, attn_mask=allowed), layer(x, src_mask=~allowed), atol=1e-12
    )


def test_causal_mask():
    m = ch07.causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert torch.equal(m, torch.tril(torch.ones(4, 4, dtype=torch.bool)))


def test_tiny_lm_is_causal():
    model = ch07.make_model(TASK, TASK.model(True, n_layers=2), seed=0)
    tokens = TASK.source().sample(2, 12, torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % TASK.vocab_size
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert a.shape == (2, 12, TASK.vocab_size)
    # earlier positions cannot see later tokens
    assert torch.equal(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_same_seed_same_weights_for_both_placements():
    post = ch07.make_model(TASK, TASK.model(False, n_layers=3), seed=5).state_dict()
    pre = ch07.make_model(TASK, TASK.model(True, n_layers=3), seed=5).state_dict()
    assert set(pre) - set(post) == {
        "stack.final_norm.weight",
        "stack.final_norm.bias",
    }
    assert all(torch.equal(post[k], pre[k]) for k in post)
    other = ch07.make_model(
        TASK, TASK.model(False, n_layers=3), seed=6
    ).state_dict()
    assert not torch.equal(post["embedding.weight"], other["embedding.weight"])


def test_make_model_leaves_the_global_rng_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    ch07.make_model(TASK, TASK.model(False, n_layers=2), seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_warmup_linear_decay_factors():
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = ch07.warmup_linear_decay(opt, 4, 10)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [min(1.0, (s + 1) / 4) * (1 - s / 10) for s in range(10)]
    assert seen == pytest.approx(expected)
    opt2 = torch.optim.SGD([param], lr=1.0)
    ch07.warmup_linear_decay(opt2, 0, 10)
    assert opt2.param_groups[0]["lr"] == pytest.approx(1.0)


def test_loglog_slope_recovers_a_power_law():
    x = [2.0, 4.0, 8.0, 16.0]
    assert ch07.loglog_slope(x, [3.0 * v**-0.5 for v in x]) == pytest.approx(-0.5)
    assert ch07.loglog_slope(x, [1.0, 1.0, 1.0, 1.0]) == pytest.approx(0.0)


def test_hidden_rms_of_a_layernorm_output_is_one():
    y = nn.functional.layer_norm(torch.randn(3, 5, 32) * 7 + 2, (32,))
    assert ch07.hidden_rms([y]).item() == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: ch07.causal_mask(0), ValueError, "length"),
        (lambda: ch07.causal_mask(2.0), TypeError, "length"),
        (lambda: ch07.entropy_rate(torch.ones(2, 3)), ValueError, "transition"),
        (lambda: ch07.entropy_rate(torch.ones(2, 2)), ValueError, "transition"),
        (
            lambda: ch07.entropy_rate(torch.eye(2, dtype=torch.long)),
            TypeError,
            "transition",
        ),
        (lambda: ch07.entropy_rate([[1.0]]), TypeError, "transition"),
        (lambda: ch07.MarkovSource.random(0, 0.3, 0), ValueError, "vocab_size"),
        (lambda: ch07.MarkovSource.random(4, -1.0, 0), ValueError, "concentration"),
        (lambda: ch07.MarkovSource.random(4, 0.3, "0"), TypeError, "seed"),
        (
            lambda: TASK.source().sample(2, 0, torch.Generator()),
            ValueError,
            "length",
        ),
        (lambda: TASK.source().sample(2, 3, 0), TypeError, "generator"),
        (lambda: ch07.TaskConfig(vocab_size=0), ValueError, "vocab_size"),
        (lambda: ch07.TaskConfig(seq_len=1), ValueError, "seq_len"),
        (
            lambda: ch07.make_model("task", TASK.model(True, n_layers=2), 0),
            TypeError,
            "task",
        ),
        (
            lambda: ch07.make_model(TASK, 2, 0),
            TypeError,
            "config must be a ModelConfig",
        ),
        (lambda: TASK.model(True, n_layers=0), ValueError, "n_layers"),
        (lambda: TASK.model(True, final_norm=1), TypeError, "final_norm"),
        (
            lambda: ch07.init_statistics(TASK, TASK.model(True, n_layers=2), []),
            ValueError,
            "seeds",
        ),
        (
            lambda: ch07.init_statistics(TASK, TASK.model(True, n_layers=2), "01"),
            TypeError,
            "seeds",
        ),
        (
            lambda: ch07.init_statistics(
                TASK, TASK.model(True, n_layers=2), [0], parameter="W9"
            ),
            ValueError,
            "parameter",
        ),
        (lambda: ch07.depth_sweep(TASK, PRE, [], [0]), TypeError, "depths"),
        (lambda: ch07.depth_sweep(TASK, PRE, [0], [0]), ValueError, "depths"),
        (lambda: ch07.loglog_slope([1.0], [1.0]), ValueError, "x and y"),
        (lambda: ch07.loglog_slope([1.0, 2.0], [0.0, 1.0]), ValueError, "positive"),
        (
            lambda: ch07.warmup_linear_decay(_sgd(), -1, 10),
            ValueError,
            "warmup_steps",
        ),
        (
            lambda: ch07.warmup_linear_decay(_sgd(), 11, 10),
            ValueError,
            "warmup_steps",
        ),
        (
            lambda: ch07.train_lm(TASK, PRE, 0, lr=0.0, warmup_steps=0, steps=1),
            ValueError,
            "lr",
        ),
        (
            lambda: ch07.next_token_loss(torch.zeros(2, 3), torch.zeros(2)),
            ValueError,
            "logits",
        ),
        (
            lambda: ch07.make_model(TASK, TASK.model(True, n_layers=1), 0)(
                torch.zeros(1, 3)
            ),
            TypeError,
            "tokens",
        ),
        (lambda: ch07.heldout_loss(nn.Linear(2, 2), TASK), TypeError, "model"),
    ],
)
def test_bad_input_is_named(call, error, name):
    with pytest.raises(error, match=name):
        call()


def _sgd() -> torch.optim.Optimizer:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)


# ----------------------------------------------------------------------------------
# The chapter's claims, with the chapter's seeds
# ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def init_stats():
    return {
        (name, depth): ch07.init_statistics(
            TASK, TASK.model(norm_first, n_layers=depth), SEEDS
        )
        for name, norm_first in ch07.PLACEMENTS.items()
        for depth in DEPTHS
    }


def _last(stats, name: str, field: str) -> torch.Tensor:
    """Mean over seeds of the last layer's value of ``field``, per depth."""
    return torch.stack(
        [getattr(stats[(name, d)], field)[:, -1].mean() for d in DEPTHS]
    )  # (len(DEPTHS),)


def test_claim_post_ln_last_layer_gradient_does_not_fall_with_depth(init_stats):
    g = _last(init_stats, "Post-LN", "grad_norms")
    assert abs(ch07.loglog_slope(DEPTHS, g)) < 0.1
    assert g[DEPTHS.index(16)] / g[DEPTHS.index(4)] > 0.85


def test_claim_pre_ln_last_layer_gradient_falls_with_depth(init_stats):
    g = _last(init_stats, "Pre-LN", "grad_norms")
    assert bool((g.diff() < 0).all())  # falls at every step in depth
    slope = ch07.loglog_slope(DEPTHS, g)
    # falls, but more slowly than 1/sqrt(L) at these depths
    assert -0.5 < slope < -0.2
    assert g[DEPTHS.index(16)] / g[DEPTHS.index(4)] < 0.8


def test_claim_pre_ln_gradient_tracks_one_over_stream_size(init_stats):
    g = _last(init_stats, "Pre-LN", "grad_norms")
    r = _last(init_stats, "Pre-LN", "hidden_rms")
    product = g * r
    assert (product.max() / product.min()) < 1.3 < (g.max() / g.min())
    depths = torch.tensor(DEPTHS, dtype=torch.float64)
    c = ((r.double() ** 2 - 1) * depths).sum() / (depths**2).sum()
    assert 0.05 < c < 0.25  # rms(x_L)^2 ~ 1 + cL with a small c
    assert torch.allclose(torch.sqrt(1 + c * depths), r.double(), rtol=0.03)


def test_claim_per_layer_profile_at_sixteen_layers(init_stats):
    post = init_stats[("Post-LN", 16)].grad_norms.mean(0)
    pre = init_stats[("Pre-LN", 16)].grad_norms.mean(0)
    assert pre[-1] / pre[0] < 0.8  # Pre-LN falls from the first layer to the last
    ratio = {
        name: init_stats[(name, 16)].grad_norms[:, -1]
        / init_stats[(name, 16)].grad_norms[:, 0]
        for name in ch07.PLACEMENTS
    }  # (seeds,) layer 16 / layer 1
    # Post-LN: no consistent direction, the seeds' ratios straddle 1
    assert ratio["Post-LN"].min() < 0.95 and ratio["Post-LN"].max() > 1.05
    assert post[-1] / post[0] < 1.25  # the mean rises mildly at most
    # Pre-LN: falls on every seed
    assert bool((ratio["Pre-LN"] < 0.8).all())


def test_claim_pre_ln_residual_stream_grows_post_ln_stays_at_one(init_stats):
    pre, post = init_stats[("Pre-LN", 16)], init_stats[("Post-LN", 16)]
    # grows after every block
    assert bool((pre.hidden_rms.mean(0).diff() > 0).all())
    # every seed
    assert bool((pre.hidden_rms[:, -1] / pre.hidden_rms[:, 0] > 1.4).all())
    assert bool(((post.hidden_rms[:, 1:] - 1).abs() < 1e-4).all())
    ratio = pre.update_ratio.mean(0)
    # deeper blocks change the stream relatively less
    assert ratio[-1] < 0.8 * ratio[0]
    absolute = (pre.update_ratio * pre.hidden_rms[:, :-1]).mean(0)
    # by about the same absolute amount
    assert absolute.max() / absolute.min() < 1.3


def test_claim_final_layernorm_fixes_the_logit_scale():
    batch = TASK.source().sample(
        TASK.batch_size, TASK.seq_len, torch.Generator().manual_seed(7)
    )
    spread = {}
    for with_final in (True, False):
        scale = []
        for d in DEPTHS:
            rms = []
            for seed in SEEDS:
                model = ch07.make_model(
                    TASK, TASK.model(True, n_layers=d, final_norm=with_final), seed
                )
                with torch.no_grad():
                    rms.append(model(batch[:, :-1]).pow(2).mean().sqrt().item())
            scale.append(sum(rms) / len(rms))
        spread[with_final] = max(scale) / min(scale)
    assert spread[True] < 1.15
    assert spread[False] > 1.3


def test_claim_without_final_norm_the_pre_ln_gradient_does_not_fall():
    g, _ = ch07.depth_sweep(TASK, TASK.model(True, final_norm=False), DEPTHS, SEEDS)
    assert ch07.loglog_slope(DEPTHS, g.mean(0)) > -0.1


def test_claim_rmsnorm_gives_the_same_depth_trend():
    slopes = {}
    for name, norm_first in ch07.PLACEMENTS.items():
        g, _ = ch07.depth_sweep(
            TASK, TASK.model(norm_first, norm="rms"), DEPTHS, SEEDS
        )
        slopes[name] = ch07.loglog_slope(DEPTHS, g.mean(0))
    assert abs(slopes["Post-LN"]) < 0.1
    assert slopes["Pre-LN"] < -0.2


@pytest.fixture(scope="module")
def warmup_result():
    result = ch07.warmup_experiment(
        TASK, RUNS, SEEDS, lr=LR, steps=STEPS, betas=BETAS
    )
    heldout = {
        name: torch.tensor([ch07.heldout_loss(m, TASK) for m in models])
        for name, models in result.models.items()
    }
    share = {
        name: (result.unigram - h) / (result.unigram - result.floor)
        for name, h in heldout.items()
    }
    return result, share


def test_claim_warmup_three_way_comparison_holds_on_every_seed(warmup_result):
    result, share = warmup_result
    assert result.floor == pytest.approx(TASK.source().entropy_rate)
    # stalls: less than half learned
    assert bool((share["Post-LN, no warmup"] < 0.5).all())
    assert bool((share["Post-LN, warmup"] > 0.85).all())  # trains
    assert bool((share["Pre-LN, no warmup"] > 0.85).all())  # trains without warmup
    # the training curves agree with the held-out scores
    final = {name: result.final(name) for name in RUNS}
    gap = result.unigram - result.floor
    assert bool((final["Post-LN, no warmup"] > result.floor + 0.5 * gap).all())
    assert bool((final["Post-LN, warmup"] < result.floor + 0.15 * gap).all())
    assert bool((final["Pre-LN, no warmup"] < result.floor + 0.15 * gap).all())


def test_claim_post_ln_trains_without_warmup_at_a_quarter_of_the_rate():
    source = TASK.source()
    _, model = ch07.train_lm(
        TASK, POST, 0, lr=LR / 4, warmup_steps=0, steps=STEPS, betas=BETAS
    )
    share = (source.unigram_entropy - ch07.heldout_loss(model, TASK)) / (
        source.unigram_entropy - source.entropy_rate
    )
    assert share > 0.85


def test_training_is_deterministic():
    a, _ = ch07.train_lm(
        TASK, TASK.model(True, n_layers=1), 3, lr=0.01, warmup_steps=2, steps=5
    )
    b, _ = ch07.train_lm(
        TASK, TASK.model(True, n_layers=1), 3, lr=0.01, warmup_steps=2, steps=5
    )
    assert a == b and len(a) == 5


# --- training a sweep at once -----------------------------------------------------


def _adam_alone(task, config, seed, *, lr, warmup_steps, steps, betas=(0.9, 0.98)):
    """The same run with torch.optim.Adam and the chapter's scheduler, one model
    alone."""
    model = ch07.make_model(task, config, seed)
    data = ch07.training_batches(task, seed, steps)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    scheduler = ch07.warmup_linear_decay(optimizer, warmup_steps, steps)
    losses = []
    for step in range(steps):
        optimizer.zero_grad()
        loss = ch07.next_token_loss(model(data[step, :, :-1]), data[step, :, 1:])
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    return losses, model


def test_warmup_sweep_ends_where_each_torch_adam_run_ends():
    task, steps = ch07.TaskConfig(), 40
    post, pre = TASK.model(False, n_layers=2), TASK.model(True, n_layers=2)
    runs = {"post": (post, 0), "post, warmup": (post, 10), "pre": (pre, 0)}
    result = ch07.warmup_experiment(task, runs, (0, 1), lr=0.01, steps=steps)
    for name, (config, warmup) in runs.items():
        for i, seed in enumerate((0, 1)):
            curve, alone = _adam_alone(
                task, config, seed, lr=0.01, warmup_steps=warmup, steps=steps
            )
            torch.testing.assert_close(
                result.losses[name][i],
                torch.tensor(curve, dtype=torch.float64),
                rtol=1e-9,
                atol=1e-9,
            )
            for (pname, a), b in zip(
                alone.named_parameters(),
                result.models[name][i].parameters(),
                strict=True,
            ):
                torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9, msg=pname)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ch07.training_batches("task", 0, 5), TypeError, "task"),
        (
            lambda: ch07.training_batches(ch07.TaskConfig(), 0.5, 5),
            TypeError,
            "seed",
        ),
        (
            lambda: ch07.training_batches(ch07.TaskConfig(), 0, 0),
            ValueError,
            "steps",
        ),
        (lambda: ch07.schedule_factors(-1, 5), ValueError, "warmup_steps"),
        (lambda: ch07.schedule_factors(6, 5), ValueError, "warmup_steps"),
    ],
)
def test_sweep_helpers_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_schedule_factors_are_the_schedulers_rates():
    factors = ch07.schedule_factors(4, 10)
    assert factors.dtype == torch.float64 and factors.shape == (10,)
    expected = [min(1.0, (s + 1) / 4) * (1 - s / 10) for s in range(10)]
    torch.testing.assert_close(factors, torch.tensor(expected, dtype=torch.float64))
    batches = ch07.training_batches(ch07.TaskConfig(), 3, 4)
    assert batches.shape == (4, 16, 16) and batches.dtype == torch.long
    assert torch.equal(batches, ch07.training_batches(ch07.TaskConfig(), 3, 4))
