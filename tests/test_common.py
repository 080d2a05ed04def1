"""common.train_sweep: each model of a sweep ends where torch.optim would end it;
common.in_processes: the same results as the calls made here."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib.experiments.common import OPTIMIZERS, in_processes, train_sweep


class _Net(nn.Module):
    """A two-layer ReLU MLP with a buffer that a hook can change."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(5, 7)
        self.out = nn.Linear(7, 3)
        self.register_buffer("offset", torch.zeros(7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x) + self.offset))


def _models(seeds):
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        out.append(_Net().double())
    return out


def _data(n_models: int, steps: int):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n_models, steps, 16, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n_models, steps, 16), generator=g)
    return x, y


def _torch_run(model, x, y, rates, optimizer, decay):
    """The same run with torch.optim, one model alone; rates[t] is step t's rate."""
    groups = [
        {"params": [p], "weight_decay": decay.get(name, 0.0)}
        for name, p in model.named_parameters()
    ]
    if optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=1.0)
    elif optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=1.0, betas=(0.9, 0.98))
    else:
        opt = torch.optim.AdamW(groups, lr=1.0, betas=(0.9, 0.98))
    losses = []
    for t in range(len(rates)):
        for group in opt.param_groups:
            group["lr"] = float(rates[t])
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[t]), y[t])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return torch.tensor(losses, dtype=torch.float64)


def _sgd(sweep, x, y, **options):
    """Train ``sweep`` with SGD at rate 0.1 on the data of :func:`_data`."""
    rates = torch.full((len(sweep), x.shape[1]), 0.1, dtype=torch.float64)

    def batch(t):
        return x[:, t], y[:, t]

    return train_sweep(
        sweep, batch, nn.functional.cross_entropy, rates, optimizer="sgd", **options
    )


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_model_of_a_sweep_ends_where_torch_optim_ends_it(optimizer):
    steps, seeds = 25, (0, 1, 2)
    x, y = _data(len(seeds), steps)
    rates = torch.stack(
        [
            torch.full((steps,), 0.05, dtype=torch.float64),
            torch.linspace(0.1, 0.0, steps, dtype=torch.float64),  # a schedule
            torch.full((steps,), 0.01, dtype=torch.float64),
        ]
    )
    decay = {"hidden.weight": 0.1, "out.weight": 0.01}  # biases not decayed
    sweep = _models(seeds)
    losses = train_sweep(
        sweep,
        lambda t: (x[:, t], y[:, t]),
        nn.functional.cross_entropy,
        rates,
        optimizer=optimizer,
        betas=(0.9, 0.98),
        weight_decay=decay,
    )
    assert losses.shape == (3, steps) and losses.dtype == torch.float64
    for i, alone in enumerate(_models(seeds)):
        expected = _torch_run(alone, x[i], y[i], rates[i], optimizer, decay)
        torch.testing.assert_close(losses[i], expected, rtol=1e-10, atol=1e-12)
        for (name, a), b in zip(
            alone.named_parameters(), sweep[i].parameters(), strict=True
        ):
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12, msg=name)
            torch.testing.assert_close(
                b.grad, a.grad, rtol=1e-9, atol=1e-12, msg=name
            )


def test_a_model_whose_loss_is_not_finite_stops_and_keeps_its_weights():
    steps = 6
    x, y = _data(2, steps)
    sweep = _models((0, 1))
    with torch.no_grad():
        # model 1's loss is nan from the first step
        sweep[1].out.weight[0, 0] = math.inf
    before = sweep[1].hidden.weight.clone()
    losses = _sgd(sweep, x, y, weight_decay=0.1)
    assert torch.isfinite(losses[0]).all() and torch.isnan(losses[1]).all()
    # the stopped model never moved
    assert torch.equal(sweep[1].hidden.weight, before)
    assert sweep[1].hidden.weight.grad is None


def test_the_hook_sees_each_models_current_weights_and_its_buffer_changes_count():
    steps = 4
    x, y = _data(2, steps)
    sweep = _models((0, 1))
    seen: list[tuple[int, int, torch.Tensor, torch.Tensor | None]] = []

    def on_step(step: int, i: int, model: nn.Module) -> None:
        grad = model.out.weight.grad
        seen.append((step, i, model.out.weight.detach().clone(), grad))
        # the next forward pass uses it
        model.offset = torch.full((7,), float(step + i))

    losses = _sgd(sweep, x, y, on_step=on_step)
    assert [(s, i) for s, i, _, _ in seen] == [
        (s, i) for s in range(steps) for i in (0, 1)
    ]
    # step 1 sees step 0's gradient
    assert seen[0][3] is None and seen[2][3] is not None
    # replay model 1 by hand: SGD with the offsets the hook set
    (alone,) = _models((1,))
    opt = torch.optim.SGD(alone.parameters(), lr=0.1)
    for t in range(steps):
        torch.testing.assert_close(seen[2 * t + 1][2], alone.out.weight.detach())
        alone.offset = torch.full((7,), float(t + 1))
        opt.zero_grad()
        loss = nn.functional.cross_entropy(alone(x[1, t]), y[1, t])
        loss.backward()
        opt.step()
        assert float(losses[1, t]) == pytest.approx(float(loss.detach()), rel=1e-12)
    # the buffers are written back
    assert torch.equal(sweep[1].offset, alone.offset)


def _ok():
    sweep = _models((0, 1))
    x, y = _data(2, 3)
    return sweep, (lambda t: (x[:, t], y[:, t])), torch.full((2, 3), 0.1)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"models": []}, TypeError, "models"),
        ({"models": nn.Linear(2, 2)}, TypeError, "models"),
        (
            {"models": [nn.Linear(2, 2), nn.Linear(2, 3)]},
            ValueError,
            "same parameter",
        ),
        ({"models": [nn.ReLU(), nn.ReLU()]}, ValueError, "parameters"),
        (
            {"lr": torch.full((3, 3), 0.1)},
            ValueError,
            r"lr must be a tensor of shape \(2",
        ),
        ({"lr": torch.full((2, 3), -0.1)}, ValueError, "lr must hold"),
        ({"lr": torch.full((2, 0), 0.1)}, ValueError, r"lr.shape\[1\]"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer"),
        ({"betas": (0.9, 1.0)}, ValueError, "betas"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"weight_decay": -1.0}, ValueError, "weight_decay"),
        ({"weight_decay": {"nope": 0.1}}, ValueError, "unknown parameters"),
        ({"loss_fn": lambda out, y: out.sum(-1)}, ValueError, "scalar per model"),
    ],
)
def test_train_sweep_rejects_bad_arguments(change, error, match):
    sweep, batch, lr = _ok()
    kwargs = {
        "models": sweep,
        "batch": batch,
        "loss_fn": nn.functional.cross_entropy,
        "lr": lr,
    }
    kwargs.update(change)
    with pytest.raises(error, match=match):
        train_sweep(**kwargs)


def _train_one(seed: int, steps: int) -> torch.Tensor:
    """A small training run: its losses and final weights, as one tensor."""
    (model,) = _models([seed])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (32,), generator=g)
    losses = train_sweep(
        [model],
        lambda step: (x, y),
        nn.functional.cross_entropy,
        torch.full((1, steps), 0.1, dtype=torch.float64),
        optimizer="adam",
    )
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return torch.cat([losses.reshape(-1), weights])


@pytest.mark.parametrize("processes", [None, 1, 2, 3])
def test_in_processes_gives_the_results_of_the_calls_made_here_bit_for_bit(
    processes,
):
    jobs = [(_train_one, (seed,), {"steps": 6}) for seed in (0, 1, 2)]
    here = [_train_one(seed, steps=6) for seed in (0, 1, 2)]
    there = in_processes(jobs, processes=processes)
    assert len(there) == 3
    assert all(torch.equal(a, b) for a, b in zip(here, there, strict=True))
    # different seeds give different runs, so the order is checked too
    assert not torch.equal(there[0], there[1])


def test_in_processes_with_no_jobs_and_bad_jobs():
    assert in_processes([]) == []
    with pytest.raises(TypeError, match="jobs"):
        in_processes("abc")
    with pytest.raises(TypeError, match="jobs"):
        in_processes([(_train_one, 0, {})])
    with pytest.raises(TypeError, match="jobs"):
        in_processes([(_train_one, (0,))])
    with pytest.raises(ValueError, match="processes"):
        in_processes([(_train_one, (0,), {"steps": 1})], processes=0)
