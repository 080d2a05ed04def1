"""A training loop every chapter's experiments can share."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["default_dtype", "train"]


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
