r"""Chapter 5: what gamma and beta restore, what they cannot, and how they train.

LayerNorm ends with a per-feature affine map, shared by every token:

.. math:: y_{tj} = \gamma_j \hat x_{tj} + \beta_j,\qquad
          \hat x_{tj} = \frac{x_{tj} - \mu_t}{\sqrt{\sigma_t^2 + \epsilon}}

(torch calls :math:`\gamma` ``weight`` and :math:`\beta` ``bias``). This module
holds the chapter's measurements:

* :func:`jacobian_singular_values`, :func:`best_affine_fit` - what normalization
  removes per token, and what a per-feature affine map can (BatchNorm) or cannot
  (LayerNorm) give back;
* :class:`NormNet`, :func:`affine_task`, :func:`magnitude_task`, :func:`fit_affine`,
  :func:`fit_magnitude` - the small training experiments (learnable, fixed or no
  normalization, over seeds);
* :func:`affine_grad_norms`, :func:`scale_invariance`, :func:`rescale_first_affine`
  - why gamma, beta and the weights feeding a LayerNorm do not run away;
* :func:`affine_curvature`, :func:`linear_curvature`, :func:`sharpest_rate`,
  :func:`fit_affine_lrs`, :func:`bare_layernorm_floor` - the learning rate at which
  gradient descent on an output layer turns unstable, a sweep across it, and what
  a bare LayerNorm can reach;
* :func:`fold_affine` - gamma and beta folded into the next linear layer for
  inference;
* :func:`plot_affine` - the figure behind the chapter's explorer.

Every run is tiny (width 16, a few hundred steps) so that the chapter executes in
seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .. import functional as CF
from .._checks import (
    check_choice,
    check_float_tensor,
    check_int,
    check_real,
    check_seed,
    check_seeds,
    check_sequence,
)
from ..data import scale_pair
from ..norms import LayerNorm, make_norm
from ..plotting import PALETTE, new_figure
from .common import default_dtype, train_sweep

__all__ = [
    "NORM_KINDS",
    "AffineTask",
    "FitResult",
    "MagnitudeTask",
    "NormNet",
    "affine_curvature",
    "affine_grad_norms",
    "affine_task",
    "bare_layernorm_floor",
    "best_affine_fit",
    "fit_affine",
    "fit_affine_lrs",
    "fit_magnitude",
    "fold_affine",
    "jacobian_singular_values",
    "linear_curvature",
    "magnitude_task",
    "make_variant",
    "plot_affine",
    "offset_sources",
    "rescale_first_affine",
    "scale_invariance",
    "sharpest_rate",
]

#: The three ways the chapter's models normalize: LayerNorm with learnable gamma and
#: beta, LayerNorm with gamma = 1 and beta = 0 frozen
#: (``elementwise_affine=False``), or nothing. Variants of the affine part, not
#: names of norms (those are course_lib.norms.NORMS).
NORM_KINDS: tuple[str, ...] = ("learnable", "fixed", "none")
#: How the learning rate moves over a run: falling linearly to 0, or held constant.
SCHEDULES: tuple[str, ...] = ("linear", "constant")
# The tasks and the training runs compute in float64. A run amplifies round-off from
# step to step; in float32 it reaches the printed digits, which then differ between
# processors whose kernels add in another order. In float64 it stays far below them,
# and the random draws are the same on every processor (see common.default_dtype).
DTYPE = torch.float64


# ----------------------------------------------------------------------------------
# What normalization removes, and what a per-feature affine map can give back
# ----------------------------------------------------------------------------------


def jacobian_singular_values(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    r"""Singular values of the Jacobian of one token's LayerNorm.

    .. math:: J_{jk} = \frac{\partial y_j}{\partial x_k},\qquad
              y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    Moving x along the all-ones direction (its mean) changes nothing: one singular
    value is 0. Moving it along :math:`x - \mu` (its scale) changes nothing either
    when
    :math:`\epsilon = 0`; with :math:`\epsilon > 0` that singular value is tiny,
    of order
    :math:`\epsilon / \sigma^3`. The other :math:`D
    - 2` directions pass. A per-feature
    affine map with non-zero gamma is invertible, so it cannot bring the two lost
    directions back. Computed in float64, largest singular value first.

    Shape:
        x ``(D,)``; weight and bias ``(D,)``; returns ``(D,)``.
    """
    x = check_float_tensor(x, "x")
    if x.dim() != 1:
        raise ValueError(f"x must be one token, shape (D,), got {tuple(x.shape)}")
    d = x.shape[0]
    x64 = x.detach().to(torch.float64)
    w64 = (
        None
        if weight is None
        else check_float_tensor(weight, "weight").detach().double()
    )
    b64 = (
        None if bias is None else check_float_tensor(bias, "bias").detach().double()
    )
    jac = torch.autograd.functional.jacobian(
        lambda v: CF.layer_norm(v, (d,), w64, b64, eps), x64
    )  # (D, D)
    return torch.linalg.svdvals(jac)


def best_affine_fit(
    normalized: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float]:
    r"""The per-feature gamma and beta that best map ``normalized`` back to
    ``target``.

    For each feature j, least squares over the rows t:

    .. math:: \min_{\gamma_j, \beta_j} \sum_t (\gamma_j \hat x_{tj} + \beta_j
        - x_{tj})^2

    Returns ``(gamma, beta, unexplained)``, where ``unexplained`` is the fraction of
    the target's variance (about each feature's mean) that the best fit leaves: 0
    when a per-feature affine map undoes the normalization exactly (BatchNorm),
    above 0 when it cannot (LayerNorm on rows with different means and scales).

    Shape:
        normalized and target ``(N, D)``; gamma and beta ``(D,)``.
    """
    xn = check_float_tensor(normalized, "normalized", min_dim=2)
    x = check_float_tensor(target, "target", min_dim=2)
    if xn.dim() != 2 or xn.shape != x.shape:
        raise ValueError(
            f"normalized and target must both be (N, D) with equal shapes, got "
            f"{tuple(xn.shape)} and {tuple(x.shape)}"
        )
    xn_c = xn - xn.mean(dim=0)  # (N, D)
    x_c = x - x.mean(dim=0)
    var_n = (xn_c * xn_c).sum(dim=0)  # (D,)
    gamma = torch.where(
        var_n > 0, (xn_c * x_c).sum(dim=0) / var_n, torch.zeros_like(var_n)
    )
    beta = x.mean(dim=0) - gamma * xn.mean(dim=0)
    residual = x - (gamma * xn + beta)
    unexplained = float((residual * residual).sum() / (x_c * x_c).sum())
    return gamma, beta, unexplained


# ----------------------------------------------------------------------------------
# Models and tasks
# ----------------------------------------------------------------------------------


def make_variant(kind: str, d: int) -> nn.Module:
    r"""LayerNorm with learnable gamma/beta, LayerNorm without them, or
    ``nn.Identity``.

    The kinds of :data:`NORM_KINDS` are variants of one normalization, built with
    the library's :func:`course_lib.norms.make_norm`: ``"layer"`` with or without
    its affine part, or ``"none"``.

    .. math::
        \text{learnable: } y = \gamma \odot \hat x + \beta,\qquad
        \text{fixed: } y = \hat x,\qquad
        \text{none: } y = x

    Shape:
        input ``(*, d)``; output as input.
    """
    kind = check_choice(kind, "norm", NORM_KINDS)
    d = check_int(d, "d")
    return make_norm(
        "none" if kind == "none" else "layer",
        d,
        elementwise_affine=kind == "learnable",
    )


class NormNet(nn.Module):
    r"""``depth`` blocks of Linear -> norm, joined by ReLU, with an optional linear
    head.

    .. math::
        h_1 = \mathrm{norm}_1(W_1 x + b_1),\quad
        h_{k} = \mathrm{norm}_k(W_k\,\mathrm{relu}(h_{k-1}) + b_k),\quad
        y = h_{\text{depth}} \;\text{or}\; W_{\text{head}} h_{\text{depth}}
        + b_{\text{head}}

    With ``head=False`` the last LayerNorm is the output, so its gamma and beta
    cannot be absorbed by a later layer; with ``head=True`` a linear layer follows
    and can absorb them (see :func:`fold_affine`). ``norm`` picks the normalization
    (:data:`NORM_KINDS`); ``bias=False`` drops the biases of the linear layers (as
    PaLM and LLaMA do).

    Shape:
        x ``(*, d_in)``; output ``(*, d)``.
    """

    def __init__(
        self,
        d_in: int,
        d: int,
        norm: str = "learnable",
        *,
        depth: int = 1,
        head: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        d_in = check_int(d_in, "d_in")
        d = check_int(d, "d")
        depth = check_int(depth, "depth")
        for name, flag in (("head", head), ("bias", bias)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
        self.norm_kind = check_choice(norm, "norm", NORM_KINDS)
        self.linears = nn.ModuleList(
            nn.Linear(d_in if k == 0 else d, d, bias=bias) for k in range(depth)
        )
        self.norms = nn.ModuleList(make_variant(norm, d) for _ in range(depth))
        self.head = nn.Linear(d, d, bias=bias) if head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for k, (linear, norm) in enumerate(
            zip(self.linears, self.norms, strict=True)
        ):
            if k > 0:
                h = torch.relu(h)
            h = norm(linear(h))  # (*, d)
        return h if self.head is None else self.head(h)


@dataclass(frozen=True)
class AffineTask:
    r"""Regression targets that need a per-feature scale and shift after
    normalization.

    ``y = scale * layer_norm(x @ mixing) + shift``: each token's target is a
    normalized pattern, then stretched and moved feature by feature.

    .. math:: y = a \odot \mathrm{LN}(xM) + c

    Shape:
        x and y ``(N, d)`` (train and test); scale and shift ``(d,)``.
    """

    x_train: torch.Tensor  # (N_train, d)
    y_train: torch.Tensor  # (N_train, d)
    x_test: torch.Tensor  # (N_test, d)
    y_test: torch.Tensor  # (N_test, d)
    scale: torch.Tensor  # (d,) the "a" a learnable gamma should find
    shift: torch.Tensor  # (d,) the "c" a learnable beta should find


def affine_task(
    d: int = 16, *, n_train: int = 4096, n_test: int = 1024, seed: int = 1234
) -> AffineTask:
    r"""Inputs :math:`x \sim N(0, I_d)` and targets
    :math:`y = a \odot \mathrm{LN}(xM) + c`.

    ``a`` is log-spaced from 1/4 to 4 and ``c`` evenly spaced from -2 to 2, both in
    a shuffled feature order; ``M`` is a random ``d x d`` mixing matrix.

    Shape:
        x and y ``(n, d)``; scale and shift ``(d,)``.
    """
    d = check_int(d, "d")
    if d < 3:
        raise ValueError(
            f"d must be at least 3 (LayerNorm needs two free directions), got {d}"
        )
    n_train = check_int(n_train, "n_train")
    n_test = check_int(n_test, "n_test")
    g = torch.Generator().manual_seed(check_seed(seed))
    # Drawn, computed and stored in float64 (see :data:`DTYPE`).
    mixing = torch.randn(d, d, generator=g, dtype=DTYPE) / math.sqrt(d)
    scale = torch.logspace(math.log10(0.25), math.log10(4.0), d, dtype=DTYPE)
    scale = scale[torch.randperm(d, generator=g)]
    shift = torch.linspace(-2.0, 2.0, d, dtype=DTYPE)[
        torch.randperm(d, generator=g)
    ]
    x = torch.randn(n_train + n_test, d, generator=g, dtype=DTYPE)
    y = scale * CF.layer_norm(x @ mixing, (d,)) + shift
    return AffineTask(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], scale, shift
    )


@dataclass(frozen=True)
class MagnitudeTask:
    r"""Tokens whose label is their own size: ``label = rms(x) > 1``.

    ``x = s * z`` with ``z ~ N(0, I_d)`` and ``s`` log-uniform on [1/10, 10], so the
    direction of a token says nothing about its label.

    .. math:: \text{label} = \mathbb{1}\!\left[\mathrm{rms}(x) > 1\right]

    Shape:
        x ``(N, d)``; labels ``(N,)`` (float 0. or 1.).
    """

    x_train: torch.Tensor  # (N_train, d)
    y_train: torch.Tensor  # (N_train,) float 0/1
    x_test: torch.Tensor  # (N_test, d)
    y_test: torch.Tensor  # (N_test,) float 0/1


def magnitude_task(
    d: int = 16, *, n_train: int = 4096, n_test: int = 1024, seed: int = 4321
) -> MagnitudeTask:
    r"""Binary labels that depend only on each token's magnitude.

    .. math:: x = s z,\quad \log_{10} s \sim U(-1, 1),\quad
              \text{label} = \mathbb{1}\!\left[\sqrt{\tfrac{1}{d}\textstyle\sum_j
              x_j^2} > 1\right]

    Shape:
        x ``(n, d)``; labels ``(n,)`` (float 0. or 1.).
    """
    d = check_int(d, "d")
    n_train = check_int(n_train, "n_train")
    n_test = check_int(n_test, "n_test")
    g = torch.Generator().manual_seed(check_seed(seed))
    n = n_train + n_test
    z = torch.randn(n, d, generator=g, dtype=DTYPE)  # drawn in float64 (see DTYPE)
    s = 10.0 ** (2.0 * torch.rand(n, 1, generator=g, dtype=DTYPE) - 1.0)  # (n, 1)
    x = s * z
    labels = (x.pow(2).mean(dim=-1).sqrt() > 1.0).to(x.dtype)  # (n,)
    return MagnitudeTask(
        x[:n_train], labels[:n_train], x[n_train:], labels[n_train:]
    )


# ----------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------


@dataclass
class FitResult:
    r"""One training run: per-step losses, the held-out score, the model, the
    history.

    ``history`` (filled when training with ``track=True``) maps a parameter name to
    its norm :math:`\lVert\theta_t\rVert` before each step t and after the last,
    ``name + ".grad"`` to the gradient norm :math:`\lVert g_t\rVert` of each step,
    and ``name + ".step"`` to the length of each update,
    :math:`\lVert\theta_{t+1} - \theta_t\rVert`.

    Shape:
        ``losses``: ``steps`` floats; ``history[name]``: ``steps + 1`` floats,
        ``history[name + ".grad"]`` and ``history[name + ".step"]``: ``steps``
        floats.
    """

    losses: list[float]
    test_score: float  # test MSE (affine task) or test accuracy (magnitude task)
    model: nn.Module
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def diverged_at(self) -> int | None:
        """The first step whose loss was not finite, or None."""
        for step, value in enumerate(self.losses):
            if not math.isfinite(value):
                return step
        return None

    def blow_up_step(self, limit: float = 1e6) -> int | None:
        r"""The first step at which the run has blown up, or None.

        A run has blown up at step t when its loss at t is not finite or, with a
        tracked ``history``, when some parameter's norm before step t exceeds
        ``limit``:

        .. math:: t^\ast = \min\{t : \mathcal{L}_t \notin \mathbb{R}
            \ \text{or}\ \max_p \lVert\theta_{p,t}\rVert > \text{limit}\}

        A norm threshold, not only a non-finite loss, because in float64 a runaway
        run can grow by a hundred orders of magnitude without overflowing.

        Shape:
            returns an int in ``[0, steps]`` or None.
        """
        if (
            isinstance(limit, bool)
            or not isinstance(limit, (int, float))
            or not limit > 0
        ):
            raise ValueError(f"limit must be a positive number, got {limit!r}")
        stops = [] if self.diverged_at is None else [self.diverged_at]
        for name, norms in self.history.items():
            if name.endswith((".grad", ".step")):
                continue
            for step, value in enumerate(norms):
                if not (math.isfinite(value) and value <= limit):
                    stops.append(step)
                    break
        return min(stops) if stops else None

    def relative_steps(self, names: Sequence[str]) -> list[float]:
        r"""The relative size of each update of the named parameters, taken as one
        vector.

        .. math:: r_t = \frac{\lVert\theta_{t+1} - \theta_t\rVert}
            {\lVert\theta_t\rVert},\qquad
            \lVert\theta\rVert^2 = \textstyle\sum_p \lVert\theta_p\rVert^2

        Needs a run trained with ``track=True``.

        Shape:
            returns ``steps`` floats.
        """
        names = check_sequence(names, "names", "parameter names")
        missing = [n for n in names if n + ".step" not in self.history]
        if missing:
            raise ValueError(
                f"names must be tracked parameters (train with track=True), "
                f"missing: {missing}"
            )
        sizes = [self.history[n] for n in names]
        moves = [self.history[n + ".step"] for n in names]
        return [
            math.sqrt(sum(m[t] ** 2 for m in moves))
            / math.sqrt(sum(v[t] ** 2 for v in sizes))
            for t in range(len(moves[0]))
        ]


def _weight_decay(
    model: nn.Module, weight_decay: float, decay_affine: bool
) -> dict[str, float]:
    """Weight decay per parameter: matrices always, LayerNorm's gamma/beta on
    request.

    Biases of linear layers are never decayed (common practice, as nanoGPT does).
    """
    decay = {}
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            decay[name] = weight_decay
        elif name.startswith("norms."):
            decay[name] = weight_decay if decay_affine else 0.0
        else:
            decay[name] = 0.0
    return decay


def _fit(
    models: list[nn.Module],
    task: AffineTask | MagnitudeTask,
    loss_fn,
    score,
    seeds: list[int],
    steps: int,
    lrs: list[float],
    batch_size: int,
    *,
    schedule: str = "linear",
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    decay_affine: bool = False,
    track: bool = False,
) -> list[FitResult]:
    """Train model i with seed ``seeds[i]`` at peak rate ``lrs[i]``, all as one
    sweep; ``score(model)`` is each one's held-out score, taken in eval mode
    without gradients."""
    steps = check_int(steps, "steps")
    batch_size = check_int(batch_size, "batch_size")
    check_choice(schedule, "schedule", SCHEDULES)
    weight_decay = check_real(
        weight_decay, "weight_decay", minimum=0.0, strict=False
    )
    check_choice(optimizer, "optimizer", ("adamw", "sgd"))
    x, y = task.x_train, task.y_train
    # Linear decay to zero: the last steps are small, so the end point is a clean
    # read-out. Constant: every step at the same rate (the learning-rate sweep).
    shape = [1.0 - k / steps if schedule == "linear" else 1.0 for k in range(steps)]
    rates = torch.tensor(
        [[lr * f for f in shape] for lr in lrs], dtype=torch.float64
    )  # (M, steps)
    # each run's batches
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    histories: list[dict[str, list[float]]] = [{} for _ in seeds]
    previous: list[dict[str, torch.Tensor]] = [{} for _ in seeds]

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.stack(
            [
                torch.randint(0, x.shape[0], (batch_size,), generator=g)
                for g in generators
            ]
        )  # (M, batch_size)
        return x[idx], y[idx]

    def record(step: int, i: int, m: nn.Module) -> None:
        # Called before step `step`'s update: parameters as they are now, and the
        # gradients left by step - 1.
        for pname, p in m.named_parameters():
            value = p.detach()
            histories[i].setdefault(pname, []).append(float(value.norm()))
            if p.grad is not None:
                histories[i].setdefault(pname + ".grad", []).append(
                    float(p.grad.norm())
                )
            if pname in previous[i]:  # the update just taken
                histories[i].setdefault(pname + ".step", []).append(
                    float((value - previous[i][pname]).norm())
                )
            previous[i][pname] = value.clone()

    losses = train_sweep(
        models,
        batch,
        loss_fn,
        rates,
        optimizer=optimizer,
        weight_decay=_weight_decay(models[0], weight_decay, decay_affine),
        on_step=record if track else None,
    )
    if track:
        for i, m in enumerate(models):
            # the weights after the last update, its step's gradients
            record(steps, i, m)
    results = []
    for model, row, history in zip(models, losses, histories, strict=True):
        model.eval()
        with torch.no_grad():
            results.append(FitResult(row.tolist(), score(model), model, history))
    return results


def _seeded(seeds: list[int], build) -> list[nn.Module]:
    """One model per seed, each built after ``torch.manual_seed(seed)``, in
    float64."""
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        with default_dtype(DTYPE):
            models.append(build())
    return models


def _test_mse(task: AffineTask):
    def test_mse(model: nn.Module) -> float:
        return float(nn.functional.mse_loss(model(task.x_test), task.y_test))

    return test_mse


def fit_affine(
    norm: str,
    seeds: Sequence[int],
    task: AffineTask,
    *,
    depth: int = 1,
    head: bool = False,
    steps: int = 200,
    lr: float = 0.1,
    batch_size: int = 128,
    optimizer: str = "adamw",
    weight_decay: float = 0.1,
    decay_affine: bool = False,
    track: bool = False,
    schedule: str = "linear",
) -> list[FitResult]:
    r"""Train a :class:`NormNet` per seed on an :class:`AffineTask` with mean
    squared error.

    Seed ``s`` fixes a run's initialization and the order of its mini-batches; the
    runs train together as one sweep
    (:func:`~course_lib.experiments.common.train_sweep`). The optimizer (AdamW by
    default, or SGD) decays weight matrices by ``weight_decay`` and decays gamma and
    beta only when ``decay_affine`` is True; the learning rate falls linearly to 0
    (``schedule="linear"``) or stays at ``lr`` (``"constant"``). ``test_score`` is
    the test MSE, :math:`\frac{1}{Nd}\sum (y - \hat y)^2`.

    Shape:
        the task's x and y ``(N, d)``; each model maps ``(*, d) -> (*, d)``; returns
        one :class:`FitResult` per seed.
    """
    if not isinstance(task, AffineTask):
        raise TypeError(f"task must be an AffineTask, got {type(task).__name__}")
    seeds = check_seeds(seeds)
    lr = check_real(lr, "lr", minimum=0.0)
    d = task.x_train.shape[1]
    models = _seeded(seeds, lambda: NormNet(d, d, norm, depth=depth, head=head))
    return _fit(
        models,
        task,
        nn.functional.mse_loss,
        _test_mse(task),
        seeds,
        steps,
        [lr] * len(seeds),
        batch_size,
        schedule=schedule,
        optimizer=optimizer,
        weight_decay=weight_decay,
        decay_affine=decay_affine,
        track=track,
    )


def fit_affine_lrs(
    norm: str,
    lrs: Sequence[float],
    seeds: Sequence[int],
    task: AffineTask,
    *,
    depth: int = 1,
    steps: int = 200,
    batch_size: int = 128,
    optimizer: str = "sgd",
    schedule: str = "constant",
    track: bool = True,
) -> list[list[FitResult]]:
    r"""A learning-rate sweep: :func:`fit_affine` at every rate in ``lrs`` and every
    seed, all trained as one sweep, without weight decay.

    Run ``[k][i]`` has learning rate ``lrs[k]`` (held constant by default) and seed
    ``seeds[i]``: the same initialization and mini-batches as seed ``seeds[i]`` at
    any other rate, so runs ``[k][i]`` and ``[k2][i]`` differ only in their rate.
    With the default plain SGD, each step is

    .. math:: \theta_{t+1} = \theta_t - \eta_k\, g_t

    Shape:
        returns ``len(lrs)`` lists of ``len(seeds)`` :class:`FitResult`.
    """
    if not isinstance(task, AffineTask):
        raise TypeError(f"task must be an AffineTask, got {type(task).__name__}")
    lrs = check_sequence(lrs, "lrs", "positive numbers")
    rates = [check_real(r, f"lrs[{k}]", minimum=0.0) for k, r in enumerate(lrs)]
    seeds = check_seeds(seeds)
    d = task.x_train.shape[1]
    all_seeds = [s for _ in rates for s in seeds]
    models = _seeded(all_seeds, lambda: NormNet(d, d, norm, depth=depth))
    flat = _fit(
        models,
        task,
        nn.functional.mse_loss,
        _test_mse(task),
        all_seeds,
        steps,
        [r for r in rates for _ in seeds],
        batch_size,
        schedule=schedule,
        optimizer=optimizer,
        track=track,
    )
    n = len(seeds)
    return [flat[k * n : (k + 1) * n] for k in range(len(rates))]


# ----------------------------------------------------------------------------------
# When gradient descent on an output layer turns unstable
# ----------------------------------------------------------------------------------


def affine_curvature(normalized: torch.Tensor) -> torch.Tensor:
    r"""The largest curvature of the MSE in each feature's (gamma_j, beta_j).

    For an output :math:`o_{tj} = \gamma_j \hat x_{tj} + \beta_j` and the loss
    :math:`L = \frac{1}{ND}\sum_{t,j}(o_{tj} - y_{tj})^2`, the Hessian in
    :math:`(\gamma, \beta)` is block diagonal, one 2 x 2 block per feature, and
    does not depend on gamma, beta or the targets:

    .. math:: H_j = \frac{2}{D}\begin{pmatrix} m_{2,j} & m_{1,j}\\ m_{1,j} & 1
        \end{pmatrix},\qquad m_{1,j} = \overline{\hat x_{tj}},\quad
        m_{2,j} = \overline{\hat x_{tj}^2}

    (means over the N rows). Returns each block's largest eigenvalue,
    :math:`\lambda_j = \frac{1}{D}\big(m_{2,j} + 1 + \sqrt{(m_{2,j} - 1)^2 +
    4 m_{1,j}^2}\big) \ge \frac{2}{D}`. Gradient descent on this quadratic
    diverges exactly when the learning rate exceeds :math:`2 / \max_j \lambda_j`,
    which is therefore at most D.

    Shape:
        normalized ``(N, D)`` (the LayerNorm's output before gamma and beta);
        returns ``(D,)``.
    """
    xn = check_float_tensor(normalized, "normalized", dim=2)
    d = xn.shape[1]
    m1 = xn.mean(dim=0)  # (D,)
    m2 = (xn * xn).mean(dim=0)  # (D,)
    return (m2 + 1.0 + torch.sqrt((m2 - 1.0) ** 2 + 4.0 * m1 * m1)) / d


def linear_curvature(inputs: torch.Tensor, d_out: int) -> float:
    r"""The largest curvature of the MSE in the weights and bias of a linear output
    layer.

    For :math:`o = W u + b` with ``d_out`` outputs and
    :math:`L = \frac{1}{N d_{out}}\sum_{t,j}(o_{tj} - y_{tj})^2`, each output row
    :math:`(w_j, b_j)` has the same Hessian block,

    .. math:: H = \frac{2}{d_{out}}\,\overline{\tilde u \tilde u^\top},\qquad
        \tilde u = (u, 1),

    and this returns its largest eigenvalue. Gradient descent diverges when the
    learning rate exceeds 2 over it.

    Shape:
        inputs ``(N, d_in)``; returns a float.
    """
    u = check_float_tensor(inputs, "inputs", dim=2)
    d_out = check_int(d_out, "d_out")
    ones = torch.ones(u.shape[0], 1, dtype=u.dtype)
    u1 = torch.cat([u, ones], dim=1)  # (N, d_in + 1)
    second = u1.T @ u1 / u.shape[0]
    return float(2.0 / d_out * torch.linalg.eigvalsh(second)[-1])


def sharpest_rate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    iters: int = 100,
    shift: float = 4.0,
) -> tuple[float, dict[str, float]]:
    r"""The learning rate above which full-batch gradient descent on the MSE leaves
    ``model``'s current point, ``2 / lambda_max`` of the Hessian of all parameters.

    Power iteration on :math:`H + s I` (Hessian-vector products by double
    backward, from a fixed random start): it finds the largest eigenvalue of H as
    long as ``shift`` s exceeds :math:`-\lambda_{\min}(H)`. It converges at the
    rate of the ratio of the top two eigenvalues of H + s I, so a shift far larger
    than the spectrum needs many more ``iters``.

    .. math:: \eta^\ast = \frac{2}{\lambda_{\max}(H)},\qquad
        H = \nabla^2_\theta\, \tfrac{1}{N D}\textstyle\sum (f_\theta(x) - y)^2

    Also returns the share of the top eigenvector's squared length on each
    parameter (which parameters the sharpest direction moves).

    Shape:
        x ``(N, d_in)``, y ``(N, d_out)``; returns a float and one share per
        parameter name.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    x = check_float_tensor(x, "x", dim=2)
    y = check_float_tensor(y, "y", dim=2)
    iters = check_int(iters, "iters")
    shift = check_real(shift, "shift", minimum=0.0)
    names, params = zip(*model.named_parameters(), strict=True)
    loss = nn.functional.mse_loss(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g = torch.Generator().manual_seed(0)
    v = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    top = float("nan")
    for _ in range(iters):
        hv = torch.autograd.grad(grads, params, v, retain_graph=True)
        hv = [a + shift * b for a, b in zip(hv, v, strict=True)]  # (H + s I) v
        length = math.sqrt(sum(float((h * h).sum()) for h in hv))
        v = [h / length for h in hv]
        top = length - shift  # the Rayleigh quotient of the unit v, once converged
    shares = {n: float((u * u).sum()) for n, u in zip(names, v, strict=True)}
    return 2.0 / top, shares


def bare_layernorm_floor(target: torch.Tensor) -> float:
    r"""The lowest MSE any model whose output is a bare LayerNorm can reach on
    ``target``.

    Every output row of a LayerNorm without gamma and beta has mean 0 and norm
    :math:`\sqrt{D \sigma^2 / (\sigma^2 + \epsilon)} \le \sqrt{D}`. The closest
    row of mean 0 and norm at most :math:`\sqrt{D}` to a target row y is its
    centred part :math:`y - \bar y`, shortened to length :math:`\sqrt{D}` if it is
    longer, :math:`o^\ast`; so no such model, however trained, scores below

    .. math:: \frac{1}{N D}\sum_t \lVert y_t - o^\ast_t\rVert^2 .

    Shape:
        target ``(N, D)``; returns a float.
    """
    y = check_float_tensor(target, "target", dim=2)
    d = y.shape[1]
    centred = y - y.mean(dim=1, keepdim=True)  # (N, D)
    length = centred.norm(dim=1, keepdim=True)  # (N, 1)
    best = centred * torch.clamp(math.sqrt(d) / length, max=1.0)
    return float(((y - best) ** 2).mean())


class _MagnitudeClassifier(nn.Module):
    """norm(x) -> Linear -> ReLU -> Linear -> one logit per token."""

    def __init__(self, d: int, norm: str, hidden: int = 32) -> None:
        super().__init__()
        self.norms = nn.ModuleList([make_variant(norm, d)])
        self.hidden = nn.Linear(d, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (*,)
        return self.out(torch.relu(self.hidden(self.norms[0](x)))).squeeze(-1)


def fit_magnitude(
    norm: str,
    seeds: Sequence[int],
    task: MagnitudeTask,
    *,
    steps: int = 100,
    lr: float = 0.03,
    batch_size: int = 128,
) -> list[FitResult]:
    r"""Train ``norm(x) -> Linear(d, 32) -> ReLU -> Linear(32, 1)`` per seed to
    predict the label.

    Binary cross-entropy on the logit :math:`z`, AdamW, the runs trained as one
    sweep; ``test_score`` is the test accuracy. With a LayerNorm first, learnable or
    not, the network sees only each token's normalized pattern, which carries no
    information about the label.

    .. math:: L = -\,\overline{t \log \sigma(z) + (1 - t)\log(1 - \sigma(z))}

    Shape:
        the task's x ``(N, d)`` and labels ``(N,)``; each model maps
        ``(*, d) -> (*,)``; returns one :class:`FitResult` per seed.
    """
    if not isinstance(task, MagnitudeTask):
        raise TypeError(f"task must be a MagnitudeTask, got {type(task).__name__}")
    seeds = check_seeds(seeds)
    norm = check_choice(norm, "norm", NORM_KINDS)
    models = _seeded(
        seeds, lambda: _MagnitudeClassifier(task.x_train.shape[1], norm)
    )

    def test_accuracy(model: nn.Module) -> float:
        predicted = (model(task.x_test) > 0).to(task.y_test.dtype)
        return float((predicted == task.y_test).to(torch.float64).mean())

    bce = nn.functional.binary_cross_entropy_with_logits
    # AdamW without weight decay
    lr = check_real(lr, "lr", minimum=0.0)
    return _fit(
        models,
        task,
        bce,
        test_accuracy,
        seeds,
        steps,
        [lr] * len(seeds),
        batch_size,
    )


# ----------------------------------------------------------------------------------
# Why gamma, beta and the weights before a LayerNorm do not run away
# ----------------------------------------------------------------------------------


def affine_grad_norms(
    input_scales: Sequence[float], *, d: int = 16, n: int = 64, seed: int = 0
) -> list[dict[str, float]]:
    r"""Gradient norms of gamma, beta and of a plain linear layer as the input
    grows.

    The same batch ``x`` is multiplied by each scale ``s`` and fed to (a) a
    LayerNorm with gamma and beta and (b) an ``nn.Linear`` with the same upstream
    gradient ``G`` (the loss is :math:`\sum G \odot y`). LayerNorm's parameter
    gradients,

    .. math:: \frac{\partial L}{\partial \gamma_j} = \sum_t G_{tj}\hat x_{tj},\qquad
              \frac{\partial L}{\partial \beta_j} = \sum_t G_{tj},

    see only the normalized :math:`\hat x`, so they do not change with ``s``; the
    linear layer's :math:`\partial L/\partial W = G^\top (s x)` grows with ``s``.

    Shape:
        returns one dict per scale with keys ``scale``, ``gamma``, ``beta``,
        ``linear``.
    """
    if not isinstance(input_scales, Sequence) or not input_scales:
        raise ValueError(
            "input_scales must be a non-empty sequence of positive numbers"
        )
    scales = [check_real(s, "input_scales[i]", minimum=0.0) for s in input_scales]
    g = torch.Generator().manual_seed(check_seed(seed))
    x = torch.randn(n, d, generator=g, dtype=torch.float64)  # (n, d)
    upstream = torch.randn(n, d, generator=g, dtype=torch.float64)  # (n, d)
    gamma0 = 1.0 + 0.5 * torch.randn(d, generator=g, dtype=torch.float64)
    beta0 = 0.5 * torch.randn(d, generator=g, dtype=torch.float64)
    w0 = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    rows = []
    for s in scales:
        gamma = gamma0.clone().requires_grad_(True)
        beta = beta0.clone().requires_grad_(True)
        w = w0.clone().requires_grad_(True)
        y_norm = CF.layer_norm(s * x, (d,), gamma, beta)
        y_lin = (s * x) @ w.T
        ((upstream * y_norm).sum() + (upstream * y_lin).sum()).backward()
        rows.append(
            {
                "scale": s,
                "gamma": float(gamma.grad.norm()),
                "beta": float(beta.grad.norm()),
                "linear": float(w.grad.norm()),
            }
        )
    return rows


def scale_invariance(
    factors: Sequence[float], *, d: int = 16, n: int = 64, seed: int = 0
) -> list[dict[str, float]]:
    r"""Loss and gradient of a Linear layer that feeds a LayerNorm, as its weights
    scale.

    :math:`L(cW, cb) = L(W, b)` because LayerNorm divides the scale out, so the
    gradient is orthogonal to :math:`(W, b)` and shrinks as :math:`1/c`:

    .. math:: \langle \nabla_W L, W\rangle + \langle \nabla_b L, b\rangle = 0,\qquad
              \nabla L(cW, cb) = \tfrac{1}{c}\nabla L(W, b).

    (Up to eps, which is negligible unless the pre-norm activations are tiny.)
    Computed in float64 with a fixed random loss
    :math:`\sum G \odot \mathrm{LN}(xW^\top + b)`.

    Shape:
        returns one dict per factor with keys ``factor``, ``loss``, ``grad_norm``,
        ``cosine`` (between the gradient and the weights).
    """
    if not isinstance(factors, Sequence) or not factors:
        raise ValueError("factors must be a non-empty sequence of positive numbers")
    cs = [check_real(c, "factors[i]", minimum=0.0) for c in factors]
    g = torch.Generator().manual_seed(check_seed(seed))
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    upstream = torch.randn(n, d, generator=g, dtype=torch.float64)
    w0 = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    b0 = 0.1 * torch.randn(d, generator=g, dtype=torch.float64)
    rows = []
    for c in cs:
        w = (c * w0).requires_grad_(True)
        b = (c * b0).requires_grad_(True)
        loss = (upstream * CF.layer_norm(x @ w.T + b, (d,))).sum()
        loss.backward()
        grad = torch.cat([w.grad.flatten(), b.grad])
        params = torch.cat([w.detach().flatten(), b.detach()])
        cosine = float(grad @ params / (grad.norm() * params.norm()))
        rows.append(
            {
                "factor": c,
                "loss": float(loss.detach()),
                "grad_norm": float(grad.norm()),
                "cosine": cosine,
            }
        )
    return rows


def offset_sources(model: NormNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""Split the per-feature mean of a one-block model's output into two sources.

    The output is :math:`o_{tj} = \gamma_j \hat x_{tj} + \beta_j`, so its mean over
    the tokens of ``x`` is :math:`\gamma_j m_{1,j} + \beta_j`, where
    :math:`m_{1,j}` is the mean of :math:`\hat x_{tj}`. Normalizing makes each
    *token* mean 0, not each feature: the layer before the norm (its bias above
    all) can give :math:`\hat x_j` a per-feature mean, which :math:`\gamma_j`
    turns into part of the output's offset. Returns ``beta``, ``gamma_m1`` and
    their sum ``mean`` (each ``(D,)``).

    Shape:
        x ``(N, d_in)``; model a ``NormNet`` of depth 1, no head, learnable norm.
    """
    if not isinstance(model, NormNet):
        raise TypeError(f"model must be a NormNet, got {type(model).__name__}")
    if (
        len(model.norms) != 1
        or model.norm_kind != "learnable"
        or model.head is not None
    ):
        raise ValueError("model must have depth 1, no head and norm='learnable'")
    x = check_float_tensor(x, "x", min_dim=2)
    norm = model.norms[0]
    with torch.no_grad():
        u = model.linears[0](x)
        m1 = CF.layer_norm(u, (u.shape[-1],), eps=norm.eps).mean(0)
        beta = norm.bias.detach().clone()
        gamma_m1 = norm.weight.detach() * m1
    return {"beta": beta, "gamma_m1": gamma_m1, "mean": beta + gamma_m1}


def rescale_first_affine(
    model: NormNet, x: torch.Tensor, factors: Sequence[float]
) -> list[dict[str, float]]:
    r"""Multiply the first LayerNorm's gamma and beta by each factor; measure
    downstream.

    For each factor ``c`` (the model is restored afterwards) this reports the root
    mean square of the first norm's output, of the second norm's input and of the
    model's output, and the relative change of the output,
    :math:`\lVert y_c - y_1\rVert / \lVert y_1\rVert`. The second LayerNorm divides
    whatever scale arrives back out, so the drift cannot grow the activations after
    it; it can still change the function through the biases that do not scale with
    ``c`` (with ``bias=False`` the output is unchanged up to eps).

    Shape:
        x ``(N, d_in)``; model must have ``depth >= 2`` and learnable gamma and
        beta.
    """
    if not isinstance(model, NormNet):
        raise TypeError(f"model must be a NormNet, got {type(model).__name__}")
    if len(model.norms) < 2 or model.norm_kind != "learnable":
        raise ValueError("model must have depth >= 2 and norm='learnable'")
    x = check_float_tensor(x, "x", min_dim=2)
    if not isinstance(factors, Sequence) or not factors:
        raise ValueError("factors must be a non-empty sequence of positive numbers")
    cs = [check_real(c, "factors[i]", minimum=0.0) for c in factors]
    first = model.norms[0]
    saved = (first.weight.detach().clone(), first.bias.detach().clone())

    def rms(t: torch.Tensor) -> float:
        return float(t.pow(2).mean().sqrt())

    rows = []
    with torch.no_grad():
        reference = model(x)
        try:
            for c in cs:
                first.weight.copy_(c * saved[0])
                first.bias.copy_(c * saved[1])
                h1 = first(model.linears[0](x))
                pre2 = model.linears[1](torch.relu(h1))
                out = model(x)
                rows.append(
                    {
                        "factor": c,
                        "norm1_out_rms": rms(h1),
                        "norm2_in_rms": rms(pre2),
                        "output_rms": rms(out),
                        "output_change": float(
                            (out - reference).norm() / reference.norm()
                        ),
                    }
                )
        finally:
            first.weight.copy_(saved[0])
            first.bias.copy_(saved[1])
    return rows


# ----------------------------------------------------------------------------------
# Folding gamma and beta into the next linear layer
# ----------------------------------------------------------------------------------


def fold_affine(norm: nn.Module, linear: nn.Linear) -> tuple[LayerNorm, nn.Linear]:
    r"""Fold a LayerNorm's gamma and beta into the linear layer that follows it.

    .. math::
        W(\gamma \odot \hat x + \beta) + b = (W\,\mathrm{diag}(\gamma))\,\hat x
        + (W\beta + b)

    Returns a LayerNorm without affine parameters and a new ``nn.Linear`` with
    :math:`W' = W\,\mathrm{diag}(\gamma)` and :math:`b' = W\beta + b`, so that
    ``linear(norm(x))`` equals ``new_linear(new_norm(x))`` up to rounding. Accepts
    ``course_lib`` or ``torch`` LayerNorms, with or without bias. Nothing is folded
    across a nonlinearity or a residual connection: there the identity does not
    hold.

    Shape:
        norm over ``(d,)``; linear ``d -> d_out``; the pair maps
        ``(*, d) -> (*, d_out)``.
    """
    if not isinstance(norm, (LayerNorm, nn.LayerNorm)):
        raise TypeError(f"norm must be a LayerNorm, got {type(norm).__name__}")
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
    shape = tuple(norm.normalized_shape)
    if len(shape) != 1 or shape[0] != linear.in_features:
        raise ValueError(
            "norm must normalize over (linear.in_features,) = "
            f"({linear.in_features},), got {shape}"
        )
    w = linear.weight.detach()  # (d_out, d)
    dtype = w.dtype
    gamma = (
        norm.weight.detach()
        if norm.weight is not None
        else torch.ones(shape, dtype=dtype)
    )
    beta = (
        norm.bias.detach()
        if norm.bias is not None
        else torch.zeros(shape, dtype=dtype)
    )
    bias = (
        linear.bias.detach()
        if linear.bias is not None
        else torch.zeros(w.shape[0], dtype=dtype)
    )
    new_norm = LayerNorm(shape[0], eps=float(norm.eps), elementwise_affine=False)
    new_linear = nn.Linear(
        linear.in_features, linear.out_features, bias=True, dtype=dtype
    )
    with torch.no_grad():
        # (d_out, d) * (d,): scales column j by gamma_j
        new_linear.weight.copy_(w * gamma)
        new_linear.bias.copy_(w @ beta + bias)
    return new_norm, new_linear


# ----------------------------------------------------------------------------------
# The explorer's figure
# ----------------------------------------------------------------------------------


def _demo_batch() -> torch.Tensor:
    """200 tokens of 3 features with very different means and scales (float64)."""
    g = torch.Generator().manual_seed(5)
    # 1 to 100
    scale = 10.0 ** (2.0 * torch.rand(200, 1, generator=g, dtype=torch.float64))
    offset = 50.0 * torch.randn(200, 1, generator=g, dtype=torch.float64)
    return offset + scale * torch.randn(200, 3, generator=g, dtype=torch.float64)


def plot_affine(
    gamma: float = 1.0, beta: float = 0.0, feature: int = 0
) -> tuple[Figure, np.ndarray]:
    r"""Left: one feature of a normalized batch before and after
    :math:`\gamma\hat x + \beta`.

    Right: the notes' tokens [10, 20, 30] and [100, 200, 300] after the same
    LayerNorm, with the chosen gamma and beta on that feature (1 and 0 on the
    others): the two bars of each feature always coincide, whatever gamma and beta
    are.

    Shape:
        a 200 x 3 demo batch; returns ``(fig, axes)`` with two axes.
    """
    gamma = float(gamma)
    beta = float(beta)
    if not (math.isfinite(gamma) and math.isfinite(beta)):
        raise ValueError(f"gamma and beta must be finite, got {gamma} and {beta}")
    if (
        isinstance(feature, bool)
        or not isinstance(feature, int)
        or not 0 <= feature < 3
    ):
        raise ValueError(f"feature must be 0, 1 or 2, got {feature!r}")
    weight = torch.ones(3, dtype=torch.float64)
    bias = torch.zeros(3, dtype=torch.float64)
    weight[feature] = gamma
    bias[feature] = beta
    normalized = CF.layer_norm(_demo_batch(), (3,))  # (200, 3)
    out = normalized * weight + bias
    pair_out = CF.layer_norm(scale_pair(), (3,), weight, bias)  # (2, 3)

    fig, axes = new_figure(2, width=7.0, height=3.2)
    ax_hist, ax_pair = axes
    bins = np.linspace(-8.0, 8.0, 41)
    affine_label = (
        rf"$\gamma\hat x+\beta$ ($\gamma$={gamma:.2f}, $\beta$={beta:.2f})"
    )
    for values, colour, alpha, label in (
        (normalized, "black", 0.35, r"normalized $\hat x$"),
        (out, "blue", 0.7, affine_label),
    ):
        ax_hist.hist(
            values[:, feature].numpy(),
            bins=bins,
            color=PALETTE[colour],
            alpha=alpha,
            label=label,
        )
    ax_hist.set_xlabel(f"feature {feature} over 200 tokens")
    ax_hist.set_ylabel("tokens")
    ax_hist.legend(loc="upper left")
    _pair_bars(ax_pair, pair_out)
    ax_pair.set_title("same gamma, beta on both tokens")
    return fig, axes


def _pair_bars(ax: Axes, pair_out: torch.Tensor) -> None:
    idx = np.arange(pair_out.shape[1])
    bars = ((-0.2, "orange", "[10, 20, 30]"), (0.2, "sky", "[100, 200, 300]"))
    for row, (shift, colour, label) in enumerate(bars):  # one bar per token
        ax.bar(
            idx + shift,
            pair_out[row].numpy(),
            0.4,
            color=PALETTE[colour],
            label=label,
        )
    ax.axhline(0.0, color=PALETTE["black"], linewidth=0.8)
    ax.set_xticks(idx, [f"feature {j}" for j in idx])
    ax.set_ylabel("LayerNorm output")
    ax.set_ylim(-8.0, 8.0)
    ax.legend(loc="upper left")
