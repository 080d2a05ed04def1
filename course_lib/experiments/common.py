"""A training loop every chapter's experiments can share."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .._checks import check_choice, check_seed

__all__ = ["STREAMS", "default_dtype", "stream_seed", "train", "train_stacked"]

#: The named random streams of one run. A run with seed ``s`` draws its initial weights
#: from ``s`` itself and every other kind of randomness from its own generator, seeded
#: ``s + STREAMS[kind]``. So drawing more of one kind (more steps, a bigger batch) never
#: shifts the numbers of another kind, and because the offsets lie further apart than
#: any chapter's seeds (0 to 9), two runs or two kinds never share a stream.
STREAMS: dict[str, int] = {
    "weights": 0,  # a model's initial weights: torch.manual_seed(s)
    "task": 1_000,  # chapter 1: the points fed to a network at initialization
    "batches": 10_000,  # the training data: which examples each step sees, or its sequences
    "noise": 20_000,  # chapter 1: the noise injected into the noisy BatchNorm's statistics
    "heldout": 123_456,  # chapter 7: held-out sequences, far from every training stream
}


def stream_seed(seed: int, stream: str) -> int:
    """The seed of random stream ``stream`` (a key of :data:`STREAMS`) for run ``seed``.

    Example:
        >>> stream_seed(2, "batches")
        10002
    """
    return check_seed(seed) + STREAMS[check_choice(stream, "stream", tuple(STREAMS))]


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create tensors and modules in ``dtype`` inside the block; restore the default after.

    The experiments build their models and draw their data in float64. Besides keeping a
    training run's round-off far below the printed digits, this makes the random draws
    themselves the same on every processor: torch's float32 ``normal_`` has a vectorized
    AVX2 path whose transcendental functions round differently from its scalar path,
    while its float64 path is the same everywhere.

    Shape:
        no tensors; a context manager.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def train(
    model: nn.Module,
    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    steps: int,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> list[float]:
    """Run ``steps`` optimizer steps and return the loss of each step.

    ``batch(step)`` returns ``(inputs, targets)``; ``on_step(step, model)`` is called
    at the start of each step, before the gradients are zeroed: parameters are
    those the step starts from, and any ``.grad`` read there is the previous
    step's. A non-finite loss ends the run early:
    the remaining losses are recorded as ``nan``, so a diverged run is visible.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    losses: list[float] = []
    model.train()
    for step in range(steps):
        inputs, targets = batch(step)
        if on_step is not None:
            on_step(step, model)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        value = float(loss.detach())
        if not math.isfinite(value):
            losses.extend([math.nan] * (steps - step))
            break
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(value)
    return losses


def train_stacked(
    model: nn.Module,
    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lr: torch.Tensor,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.Tensor:
    r"""Train ``M`` models at once: one module whose every parameter is ``M`` models' stacked.

    ``model`` holds the parameters of ``M`` independent models stacked on a leading
    dimension (for example chapter 7's
    :class:`~course_lib.experiments.ch07_prenorm_vs_postnorm.StackedTinyLM`), and
    ``loss_fn(model(inputs), targets)`` returns the ``M`` losses, one per model. Their sum
    is differentiated once: since model ``i``'s loss depends only on its own parameters,
    the gradient of the sum at row ``i`` is model ``i``'s own gradient. For models this
    small a step costs mostly per-operation overhead, which the ``M`` models then share.

    Each model takes its own Adam step (Kingma & Ba 2015, in PyTorch's arrangement) with
    its own learning rate at every step, ``lr[i, t]``:

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        \theta_t = \theta_{t-1} - \frac{\eta_{i,t}}{1-\beta_1^t}\,
        \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    so each model ends where its own run with ``torch.optim.Adam`` ends, up to round-off
    (the tests check it). As in :func:`train`, a model whose loss is not finite stops
    there: its remaining losses are ``nan`` and its parameters keep their values.

    Shape:
        ``lr`` ``(M, steps)``; ``batch(step)`` returns ``(inputs, targets)``, each with the
        leading model dimension ``M``; returns the losses ``(M, steps)``. ``model`` is
        trained in place.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model must have parameters to train")
    if not isinstance(lr, torch.Tensor) or lr.dim() != 2:
        raise ValueError("lr must be a tensor of shape (M, steps), one row per model")
    n, steps = lr.shape
    if any(p.dim() == 0 or p.shape[0] != n for p in params):
        raise ValueError(f"every parameter must have a leading model dimension of {n}")
    if not bool(torch.isfinite(lr).all()) or bool((lr < 0).any()):
        raise ValueError("lr must hold finite learning rates >= 0")
    beta1, beta2 = betas
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"eps must be a positive number, got {eps!r}")

    exp_avg = [torch.zeros_like(p) for p in params]
    exp_avg_sq = [torch.zeros_like(p) for p in params]
    alive = torch.ones(n, dtype=torch.bool)
    losses = torch.full((n, steps), math.nan, dtype=torch.float64)
    model.train()
    for step in range(steps):
        inputs, targets = batch(step)
        for p in params:
            p.grad = None
        per_model = loss_fn(model(inputs), targets)  # (M,)
        if per_model.shape != (n,):
            raise ValueError(f"loss_fn must return ({n},) losses, got {tuple(per_model.shape)}")
        values = per_model.detach().to(torch.float64)
        alive &= torch.isfinite(values)
        if not bool(alive.any()):
            break
        losses[alive, step] = values[alive]
        per_model.sum().backward()
        t = step + 1
        bias1, bias2 = 1.0 - beta1**t, 1.0 - beta2**t
        rate = torch.where(alive, lr[:, step], 0.0)  # (M,): a stopped model does not move
        with torch.no_grad():
            for p, m, v in zip(params, exp_avg, exp_avg_sq, strict=True):
                shape = (n,) + (1,) * (p.dim() - 1)
                live = alive.view(shape)
                g = torch.where(live, p.grad, 0.0)
                m.copy_(torch.where(live, m * beta1 + g * (1.0 - beta1), m))
                v.copy_(torch.where(live, v * beta2 + g * g * (1.0 - beta2), v))
                denom = v.sqrt() / math.sqrt(bias2) + eps
                p.sub_((rate / bias1).view(shape).to(p.dtype) * m / denom)
    return losses
