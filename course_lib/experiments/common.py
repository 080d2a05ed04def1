"""A training loop every chapter's experiments can share, and a way to run
independent runs on every core."""

from __future__ import annotations

import copy
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .._checks import (
    check_choice,
    check_instance,
    check_int,
    check_real,
    check_seed,
)

__all__ = [
    "OPTIMIZERS",
    "STREAMS",
    "default_dtype",
    "in_processes",
    "stream_seed",
    "train_sweep",
]

#: The named random streams of one run. A run with seed ``s`` draws its initial
#: weights from ``s`` itself and every other kind of randomness from its own
#: generator, seeded ``s + STREAMS[kind]``. So drawing more of one kind (more steps,
#: a bigger batch) never shifts the numbers of another kind, and because the offsets
#: lie further apart than any chapter's seeds (0 to 9), two runs or two kinds never
#: share a stream.
STREAMS: dict[str, int] = {
    "weights": 0,  # a model's initial weights: torch.manual_seed(s)
    "task": 1_000,  # chapter 1: the points fed to a network at initialization
    # the training data: which examples each step sees, or its sequences
    "batches": 10_000,
    # chapter 1: the noise injected into the noisy BatchNorm's statistics
    "noise": 20_000,
    # chapter 9: synthetic activations (heavy-tailed token rows)
    "synthetic": 30_000,
    # chapter 7: held-out sequences, far from every training stream
    "heldout": 123_456,
}


def stream_seed(seed: int, stream: str) -> int:
    """The seed of random stream ``stream`` (a key of :data:`STREAMS`) for run
    ``seed``.

    Example:
        >>> stream_seed(2, "batches")
        10002
    """
    return (
        check_seed(seed) + STREAMS[check_choice(stream, "stream", tuple(STREAMS))]
    )


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Create tensors and modules in ``dtype`` inside the block; restore the default
    after.

    The experiments build their models and draw their data in float64. Besides
    keeping a training run's round-off far below the printed digits, this makes the
    random draws themselves the same on every processor: torch's float32 ``normal_``
    has a vectorized AVX2 path whose transcendental functions round differently from
    its scalar path, while its float64 path is the same everywhere.

    Shape:
        no tensors; a context manager.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a floating-point torch.dtype, got {dtype!r}"
        )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _usable_cores() -> int:
    """How many cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _call(job: tuple[Callable[..., object], tuple, dict]) -> object:
    fn, args, kwargs = job
    return fn(*args, **kwargs)


def in_processes(
    jobs: Sequence[tuple[Callable[..., object], tuple, dict]],
    *,
    processes: int | None = None,
) -> list[object]:
    r"""``[fn(*args, **kwargs) for fn, args, kwargs in jobs]``, run on every core.

    Every experiment here computes on one thread (:func:`course_lib.notebook.setup`
    pins it, so that no result depends on the number of cores). Independent runs
    can still use the other cores: each job runs in a process forked from this one,
    which inherits its imports, settings and random state, computes exactly what the
    same call computes here, and sends its result back. The results are the same,
    bit for bit, as running the jobs one after another; the tests hold it to that.

    ``processes`` defaults to the cores this process may use, at most one per job.
    Where ``fork`` does not exist (Windows), or with one process, the jobs simply
    run here, in order. ``fn`` must be a function importable by name (a module's or
    a notebook's top-level function), and its result picklable.

    Shape:
        returns one result per job, in the jobs' order.
    """
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Sequence):
        raise TypeError("jobs must be a sequence of (fn, args, kwargs) tuples")
    for job in jobs:
        if (
            not isinstance(job, tuple)
            or len(job) != 3
            or not callable(job[0])
            or not isinstance(job[1], tuple)
            or not isinstance(job[2], dict)
        ):
            raise TypeError(
                f"each of jobs must be a (fn, args tuple, kwargs dict), got {job!r}"
            )
    if processes is None:
        processes = min(_usable_cores(), len(jobs))
    else:
        processes = check_int(processes, "processes")
    forkable = "fork" in multiprocessing.get_all_start_methods()
    if processes <= 1 or len(jobs) <= 1 or not forkable:
        return [_call(job) for job in jobs]
    context = multiprocessing.get_context("fork")
    with context.Pool(min(processes, len(jobs))) as pool:
        return pool.map(_call, jobs, chunksize=1)


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
    r"""Train ``M`` models of one architecture at once, as one batched model; return
    the losses.

    The book's models are tiny, so a training step costs mostly per-operation
    overhead. This loop stacks the ``M`` models' parameters on a leading dimension
    (``torch.func.stack_module_state``) and runs each step's forward pass for all of
    them as one ``vmap`` over ``functional_call``: the ``M`` models share that
    overhead. Model ``i``'s loss depends only on its own parameters, so the gradient
    of the summed loss at row ``i`` is model ``i``'s own gradient. A sweep is any
    set of runs of one architecture: seeds, learning rates, schedules.

    Each model then takes its own optimizer step with its own learning rate
    ``lr[i, t]`` at step ``t``, in PyTorch's arrangement of each rule (one model
    alone ends where ``torch.optim`` would take it, up to round-off; the tests check
    it):

    .. math::
        \text{sgd: } \theta_t = \theta_{t-1} - \eta_{i,t}\,(g_t
        + \lambda\theta_{t-1})

        \text{adam: } m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        \theta_t = \theta_{t-1} - \frac{\eta_{i,t}}{1-\beta_1^t}\,
        \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    where Adam's :math:`g_t` includes :math:`\lambda\theta_{t-1}` (L2, as
    ``torch.optim.Adam``), and ``"adamw"`` instead decays the weights directly,
    :math:`\theta \leftarrow (1 - \eta_{i,t}\lambda)\,\theta`, before the Adam step
    (Loshchilov & Hutter 2019, as ``torch.optim.AdamW``). ``weight_decay`` is one
    :math:`\lambda` for every parameter or a mapping from parameter name to its
    :math:`\lambda` (names missing from it get 0).

    A model whose loss is not finite stops there: its remaining losses are ``nan``
    and its parameters keep the values of that step. ``on_step(step, i, model)`` is
    called at the start of each step for every model ``i`` still training, with
    ``model`` holding that model's current parameters and, in ``.grad``, the
    previous step's gradients; buffers it changes (new noise, say) are used by that
    step's forward pass. At the end the trained parameters and buffers are written
    back into ``models``, and the last step's gradients into ``.grad`` of every
    model that trained to the end.

    Args:
        models: ``M`` modules with the same parameter names and shapes.
        batch: ``batch(step)`` returns ``(inputs, targets)``, each with a leading
            model dimension ``M``: model ``i`` sees ``inputs[i]`` and
            ``targets[i]``.
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
        >>> mse = nn.functional.mse_loss
        >>> losses = train_sweep(models, lambda t: (x, y), mse, rates)
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
            raise ValueError(
                "models must all have the same parameter names and shapes"
            )
    if not names:
        raise ValueError("models must have parameters to train")
    n = len(models)
    if not isinstance(lr, torch.Tensor) or lr.shape[:1] != (n,) or lr.dim() != 2:
        raise ValueError(
            f"lr must be a tensor of shape ({n}, steps), one row per model"
        )
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
            raise ValueError(
                f"weight_decay names unknown parameters: {sorted(unknown)}"
            )
        decay = {
            k: check_real(
                weight_decay.get(k, 0.0), "weight_decay", minimum=0.0, strict=False
            )
            for k in names
        }
    else:
        lam = check_real(weight_decay, "weight_decay", minimum=0.0, strict=False)
        decay = dict.fromkeys(names, lam)

    for m in models:
        m.train()
    # One model trains as itself; several as one vmapped model with stacked
    # parameters.
    sweep = _One(models[0], loss_fn) if n == 1 else _Stacked(models, loss_fn)
    update = _Update(sweep.values, [decay[k] for k in names], optimizer, betas, eps)
    alive = torch.ones(n, dtype=torch.bool)
    all_alive = True
    losses = torch.full((n, steps), math.nan, dtype=torch.float64)
    for step in range(steps):
        if on_step is not None:
            sweep.hook(on_step, step, alive)
        inputs, targets = batch(step)
        for p in sweep.leaves:
            p.grad = None
        per_model = sweep.losses(inputs, targets)
        if per_model.shape != (n,):
            raise ValueError(
                "loss_fn must return a scalar per model, got "
                f"{tuple(per_model.shape)}"
            )
        values = per_model.detach().to(torch.float64)
        finite = torch.isfinite(values)
        if all_alive and bool(finite.all()):
            losses[:, step] = values
            rate = lr[:, step]
        else:
            all_alive = False
            alive &= finite
            if not bool(alive.any()):
                break
            losses[alive, step] = values[alive]
            # a stopped model does not move
            rate = torch.where(alive, lr[:, step], 0.0)
        per_model.sum().backward()
        with torch.no_grad():
            update(sweep.grads(), rate, step + 1, None if all_alive else alive)
    sweep.finish(alive)
    return losses


class _One:
    """A sweep of one model: the model itself, its parameters seen as
    ``(1, *shape)``."""

    def __init__(self, model, loss_fn):
        self.model = model
        self.loss_fn = loss_fn
        self.leaves = list(model.parameters())
        # views: updates land
        self.values = [p.detach().unsqueeze(0) for p in self.leaves]

    def losses(self, inputs, targets):
        return self.loss_fn(self.model(inputs[0]), targets[0])[None]

    def grads(self):
        return [p.grad.unsqueeze(0) for p in self.leaves]

    def hook(self, on_step, step, alive):
        on_step(step, 0, self.model)

    def finish(self, alive):
        pass  # trained in place; .grad holds the last step's gradients


class _Stacked:
    """``M`` models as one: parameters and buffers stacked on a leading dimension,
    the forward pass one ``vmap`` over ``functional_call``."""

    def __init__(self, models, loss_fn):
        self.models = models
        self.params, self.buffers = stack_module_state(models)  # leaves with grads
        self.leaves = list(self.params.values())
        self.values = [p.detach() for p in self.leaves]
        # the architecture, no storage
        template = copy.deepcopy(models[0]).to("meta")

        def one_loss(p, b, inputs, targets):
            return loss_fn(functional_call(template, (p, b), (inputs,)), targets)

        self.batched_loss = vmap(one_loss, randomness="error")
        self.shared = False

    def losses(self, inputs, targets):
        return self.batched_loss(self.params, self.buffers, inputs, targets)

    def grads(self):
        return [p.grad for p in self.leaves]

    def _share(self):
        """Each model's parameters become views of its row (nothing is copied
        after)."""
        self.named = [list(m.named_parameters()) for m in self.models]
        self.owners = []  # per model: (name, submodule, attribute) of each buffer
        for m in self.models:
            owned = []
            for name in self.buffers:
                path, _, attr = name.rpartition(".")
                owned.append((name, m.get_submodule(path), attr))
            self.owners.append(owned)
        for i, named in enumerate(self.named):
            for k, p in named:
                p.data = self.params[k].detach()[i]
        self.shared = True

    def hook(self, on_step, step, alive):
        """Run ``on_step`` on every live model, with its last gradients and current
        buffers; then re-stack the buffers, which the hook may have replaced."""
        if not self.shared:
            self._share()
        with torch.no_grad():
            for i in range(len(self.models)):
                if not alive[i]:
                    continue
                for k, p in self.named[i]:
                    grad = self.params[k].grad
                    p.grad = None if grad is None else grad[i]
                for k, owner, attr in self.owners[i]:
                    getattr(owner, attr).copy_(self.buffers[k][i])
        for i, m in enumerate(self.models):
            if alive[i]:
                on_step(step, i, m)
        self.buffers = {
            k: torch.stack(
                [getattr(owned[j][1], owned[j][2]) for owned in self.owners]
            )
            for j, k in enumerate(self.buffers)
        }

    def finish(self, alive):
        """Write each model's trained parameters, last gradients and buffers
        back."""
        with torch.no_grad():
            for i, m in enumerate(self.models):
                for k, p in m.named_parameters():
                    p.data = self.params[k][i].detach().clone()
                    grad = self.params[k].grad
                    if alive[i] and grad is not None:
                        p.grad = grad[i].clone()
                for k, b in m.named_buffers():
                    b.copy_(self.buffers[k][i])


class _Update:
    """One optimizer step of every model, on all the stacked parameters at once.

    The arithmetic is the formulas of :func:`train_sweep`, one elementwise operation
    at a time, applied to the list of parameters with torch's ``_foreach``
    operations (one call per operation instead of one per parameter).
    """

    def __init__(self, params, decays, optimizer, betas, eps):
        self.params = params
        self.decays = decays
        self.optimizer = optimizer
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def _per_param(self, values):
        """A (M,) tensor as one broadcastable view per parameter, in its dtype."""
        return [
            values.view((p.shape[0],) + (1,) * (p.dim() - 1)).to(p.dtype)
            for p in self.params
        ]

    def __call__(self, grads, rate, t, alive):
        params = self.params
        # a stopped model's gradient may be nan: it counts as 0
        if alive is not None:
            live = self._per_param(alive)
            grads = [
                torch.where(a.bool(), g, 0.0)
                for a, g in zip(live, grads, strict=True)
            ]
        rates = self._per_param(rate)
        # decoupled: theta <- theta * (1 - rate * lambda)
        if self.optimizer == "adamw":
            theta = [
                p * (1.0 - r * d) if d else p
                for p, r, d in zip(params, rates, self.decays, strict=True)
            ]
        else:  # L2: the decay joins the gradient
            theta = params
            grads = [
                g + d * p if d else g
                for g, p, d in zip(grads, params, self.decays, strict=True)
            ]
        if self.optimizer == "sgd":
            steps = torch._foreach_mul(grads, rates)
        else:
            beta1, beta2 = self.beta1, self.beta2
            m = torch._foreach_add(
                torch._foreach_mul(self.m, beta1),
                torch._foreach_mul(grads, 1.0 - beta1),
            )
            v = torch._foreach_add(
                torch._foreach_mul(self.v, beta2),
                torch._foreach_mul(torch._foreach_mul(grads, grads), 1.0 - beta2),
            )
            if alive is not None:  # a stopped model's moments keep their values
                m = [
                    torch.where(a.bool(), new, old)
                    for a, new, old in zip(live, m, self.m, strict=True)
                ]
                v = [
                    torch.where(a.bool(), new, old)
                    for a, new, old in zip(live, v, self.v, strict=True)
                ]
            self.m, self.v = m, v
            denom = torch._foreach_add(
                torch._foreach_div(
                    torch._foreach_sqrt(v), math.sqrt(1.0 - beta2**t)
                ),
                self.eps,
            )
            scaled = self._per_param(rate / (1.0 - beta1**t))
            steps = torch._foreach_div(torch._foreach_mul(m, scaled), denom)
        new = torch._foreach_sub(theta, steps)
        if alive is not None:  # a stopped model keeps its values
            new = [
                torch.where(a.bool(), x, p)
                for a, x, p in zip(live, new, params, strict=True)
            ]
        torch._foreach_copy_(params, new)
