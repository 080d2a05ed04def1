"""A training loop every chapter's experiments can share."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .._checks import check_choice, check_instance, check_int, check_real, check_seed

__all__ = ["OPTIMIZERS", "STREAMS", "default_dtype", "stream_seed", "train_sweep"]

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


OPTIMIZERS = ("adam", "adamw", "sgd")


def train_sweep(
    models: Sequence[nn.Module],
    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lr: torch.Tensor,
    *,
    optimizer: str = "adam",
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float | Mapping[str, float] = 0.0,
    on_step: Callable[[int, int, nn.Module], None] | None = None,
) -> torch.Tensor:
    r"""Train ``M`` models of one architecture at once, as one batched model; return the losses.

    The book's models are tiny, so a training step costs mostly per-operation overhead.
    This loop stacks the ``M`` models' parameters on a leading dimension
    (``torch.func.stack_module_state``) and runs each step's forward pass for all of them
    as one ``vmap`` over ``functional_call``: the ``M`` models share that overhead. Model
    ``i``'s loss depends only on its own parameters, so the gradient of the summed loss at
    row ``i`` is model ``i``'s own gradient. A sweep is any set of runs of one
    architecture: seeds, learning rates, schedules.

    Each model then takes its own optimizer step with its own learning rate ``lr[i, t]``
    at step ``t``, in PyTorch's arrangement of each rule (one model alone ends where
    ``torch.optim`` would take it, up to round-off; the tests check it):

    .. math::
                ext{sgd: } 	heta_t = 	heta_{t-1} - \eta_{i,t}\,(g_t + \lambda	heta_{t-1})

                ext{adam: } m_t = eta_1 m_{t-1} + (1-eta_1) g_t,\quad
        v_t = eta_2 v_{t-1} + (1-eta_2) g_t^2,\quad
                heta_t = 	heta_{t-1} - rac{\eta_{i,t}}{1-eta_1^t}\,
        rac{m_t}{\sqrt{v_t}/\sqrt{1-eta_2^t} + \epsilon}

    where Adam's :math:`g_t` includes :math:`\lambda	heta_{t-1}` (L2, as
    ``torch.optim.Adam``), and ``"adamw"`` instead decays the weights directly,
    :math:`	heta \leftarrow (1 - \eta_{i,t}\lambda)\,	heta`, before the Adam step
    (Loshchilov & Hutter 2019, as ``torch.optim.AdamW``). ``weight_decay`` is one
    :math:`\lambda` for every parameter or a mapping from parameter name to its
    :math:`\lambda` (names missing from it get 0).

    A model whose loss is not finite stops there: its remaining losses are ``nan`` and its
    parameters keep the values of that step. ``on_step(step, i, model)`` is called at the
    start of each step for every model ``i`` still training, with ``model`` holding that
    model's current parameters and, in ``.grad``, the previous step's gradients; buffers
    it changes (new noise, say) are used by that step's forward pass. At the end the
    trained parameters and buffers are written back into ``models``, and the last step's
    gradients into ``.grad`` of every model that trained to the end.

    Args:
        models: ``M`` modules with the same parameter names and shapes.
        batch: ``batch(step)`` returns ``(inputs, targets)``, each with a leading model
            dimension ``M``: model ``i`` sees ``inputs[i]`` and ``targets[i]``.
        loss_fn: ``loss_fn(output, target)`` of one model, a scalar.
        lr: the learning rates, one row per model and one column per step.
        optimizer: one of :data:`OPTIMIZERS`.
        betas, eps: Adam's coefficients.
        weight_decay: :math:`\lambda`, one number or one per parameter name.
        on_step: an optional per-model hook, see above.

    Shape:
        ``lr`` ``(M, steps)``; returns the losses ``(M, steps)`` float64.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> models = [nn.Linear(3, 1) for _ in range(2)]
        >>> x = torch.randn(2, 8, 3)  # (M, batch, features)
        >>> y = x.sum(-1, keepdim=True)
        >>> rates = torch.tensor([[0.1] * 50, [0.0] * 50])  # model 1 never moves
        >>> losses = train_sweep(models, lambda t: (x, y), nn.functional.mse_loss, rates)
        >>> bool(losses[0, -1] < losses[0, 0]), bool(losses[1, -1] == losses[1, 0])
        (True, True)
    """
    models = list(check_instance(models, "models", (list, tuple)))
    if not models or not all(isinstance(m, nn.Module) for m in models):
        raise TypeError("models must be a non-empty list of nn.Module")
    optimizer = check_choice(optimizer, "optimizer", OPTIMIZERS)
    layout = [(name, p.shape) for name, p in models[0].named_parameters()]
    names = [name for name, _ in layout]
    for m in models:
        if [(name, p.shape) for name, p in m.named_parameters()] != layout:
            raise ValueError("models must all have the same parameter names and shapes")
    if not names:
        raise ValueError("models must have parameters to train")
    n = len(models)
    if not isinstance(lr, torch.Tensor) or lr.shape[:1] != (n,) or lr.dim() != 2:
        raise ValueError(f"lr must be a tensor of shape ({n}, steps), one row per model")
    steps = check_int(lr.shape[1], "lr.shape[1]")
    if not bool(torch.isfinite(lr).all()) or bool((lr < 0).any()):
        raise ValueError("lr must hold finite learning rates >= 0")
    beta1, beta2 = betas
    check_real(beta1, "betas[0]", minimum=0.0, strict=False)
    check_real(beta2, "betas[1]", minimum=0.0, strict=False)
    if not (beta1 < 1.0 and beta2 < 1.0):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    check_real(eps, "eps", minimum=0.0)
    if isinstance(weight_decay, Mapping):
        unknown = set(weight_decay) - set(names)
        if unknown:
            raise ValueError(f"weight_decay names unknown parameters: {sorted(unknown)}")
        decay = {
            k: check_real(weight_decay.get(k, 0.0), "weight_decay", minimum=0.0, strict=False)
            for k in names
        }
    else:
        lam = check_real(weight_decay, "weight_decay", minimum=0.0, strict=False)
        decay = dict.fromkeys(names, lam)

    for m in models:
        m.train()
    params, buffers = stack_module_state(models)  # name -> (M, *shape), leaves with grads
    template = copy.deepcopy(models[0]).to("meta")  # the architecture, without storage

    def one_loss(p, b, inputs, targets):
        return loss_fn(functional_call(template, (p, b), (inputs,)), targets)

    batched_loss = vmap(one_loss, randomness="error")
    state = {k: (torch.zeros_like(p), torch.zeros_like(p)) for k, p in params.items()}
    alive = torch.ones(n, dtype=torch.bool)
    losses = torch.full((n, steps), math.nan, dtype=torch.float64)
    for step in range(steps):
        if on_step is not None:
            buffers = _call_hook(on_step, step, models, params, buffers, alive)
        inputs, targets = batch(step)
        for p in params.values():
            p.grad = None
        per_model = batched_loss(params, buffers, inputs, targets)
        if per_model.shape != (n,):
            raise ValueError(
                f"loss_fn must return a scalar per model, got {tuple(per_model.shape)}"
            )
        values = per_model.detach().to(torch.float64)
        alive &= torch.isfinite(values)
        if not bool(alive.any()):
            break
        losses[alive, step] = values[alive]
        per_model.sum().backward()
        rate = torch.where(alive, lr[:, step], 0.0)  # (M,): a stopped model does not move
        with torch.no_grad():
            for k, p in params.items():
                _update(p, state[k], rate, alive, step + 1, optimizer, betas, eps, decay[k])
    with torch.no_grad():
        for i, m in enumerate(models):
            for k, p in m.named_parameters():
                p.copy_(params[k][i])
                if alive[i] and params[k].grad is not None:
                    p.grad = params[k].grad[i].clone()
            for k, b in m.named_buffers():
                b.copy_(buffers[k][i])
    return losses


def _call_hook(on_step, step, models, params, buffers, alive):
    """Give every live model its current parameters, run the hook, re-stack the buffers."""
    with torch.no_grad():
        for i, m in enumerate(models):
            if not alive[i]:
                continue
            for k, p in m.named_parameters():
                p.copy_(params[k][i])
                grad = params[k].grad
                p.grad = None if grad is None else grad[i].clone()
            for k, b in m.named_buffers():
                b.copy_(buffers[k][i])
    for i, m in enumerate(models):
        if alive[i]:
            on_step(step, i, m)
    if not buffers:
        return buffers
    return {k: torch.stack([dict(m.named_buffers())[k] for m in models]) for k in buffers}


def _update(p, moments, rate, alive, t, optimizer, betas, eps, decay):
    """One optimizer step of every live model on the stacked parameter ``p``, in place."""
    shape = (p.shape[0],) + (1,) * (p.dim() - 1)
    live = alive.view(shape)
    rate = rate.view(shape).to(p.dtype)
    g = torch.where(live, p.grad, 0.0)
    theta = p * (1.0 - rate * decay) if optimizer == "adamw" else p
    if decay and optimizer != "adamw":
        g = g + decay * p  # L2: the decay joins the gradient
    if optimizer == "sgd":
        step = rate * g
    else:
        beta1, beta2 = betas
        m, v = moments
        m.copy_(torch.where(live, m * beta1 + g * (1.0 - beta1), m))
        v.copy_(torch.where(live, v * beta2 + g * g * (1.0 - beta2), v))
        denom = v.sqrt() / math.sqrt(1.0 - beta2**t) + eps
        step = rate / (1.0 - beta1**t) * m / denom
    p.copy_(torch.where(live, theta - step, p))  # a stopped model keeps its values
