r"""Chapter 1: internal covariate shift, shown and measured.

Everything the chapter's notebook, its explorer and its claim tests share:

* :func:`make_task` - a small synthetic classification task (Gaussian points
  labelled by a random two-layer "teacher" network);
* :class:`ShiftScaleNoise` - per-step random shift and scale of every unit, the
  noise of Santurkar et al.'s (2018) "noisy BatchNorm" experiment;
* :class:`DeepMLP` - ``depth`` blocks of Linear -> norm -> noise -> ReLU, with
  ``norm`` one of ``"none"``, ``"batch"``, ``"layer"`` (course_lib's ``BatchNorm``,
  with running statistics, and ``LayerNorm``);
* :class:`RunConfig`, :func:`train_runs`, :class:`RunRecord` - SGD training runs
  (one sweep of :func:`course_lib.experiments.common.train_sweep`) that record, in
  the same pass, every unit's pre-activation mean and standard deviation at every
  step and its 15th / 50th / 85th percentiles (as Ioffe & Szegedy (2015) plot them),
  Santurkar et al.'s internal covariate shift (:func:`gradient_shift`) and the loss
  along the gradient (:func:`loss_along_gradient`);
* :func:`pre_activation_stats`, :func:`distribution_drift` - those statistics, and
  how far each layer's distributions move from one step to the next;
* :func:`init_profile` - activation scale and weight-gradient norm per layer at
  initialization;
* :func:`plot_percentiles`, :func:`plot_activation_histograms` - the chapter's
  figures (the second one is also its explorer).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .._checks import (
    check_choice,
    check_float_tensor,
    check_int,
    check_labels,
    check_real,
    check_seed,
    check_seeds,
    check_sequence,
)
from ..norms import NORM_LABELS, BatchNorm, LayerNorm
from ..plotting import PALETTE, color, new_figure
from .common import default_dtype, in_processes, stream_seed, train_sweep

__all__ = [
    "LABELS",
    "NORMS",
    "STAT_NAMES",
    "STYLES",
    "DeepMLP",
    "RunConfig",
    "RunRecord",
    "ShiftScaleNoise",
    "distribution_drift",
    "gradient_shift",
    "init_profile",
    "loss_along_gradient",
    "make_task",
    "plot_activation_histograms",
    "plot_landscape_rise",
    "plot_loss_curves",
    "plot_percentiles",
    "pre_activation_stats",
    "run_label",
    "train_networks",
    "train_runs",
]

Norm = Literal["none", "batch", "layer"]

#: The three ways the chapter builds the same network.
NORMS: tuple[str, ...] = ("none", "batch", "layer")
#: What :func:`pre_activation_stats` records for each unit, in this order.
STAT_NAMES: tuple[str, ...] = ("mean", "std", "p15", "p50", "p85")

_QUANTILES = (0.15, 0.50, 0.85)  # the percentiles of Ioffe & Szegedy's Figure 1

#: How tables and figures name the three networks.
LABELS: dict[str, str] = {
    "none": "no normalization",
    "batch": "BatchNorm",
    "layer": "LayerNorm",
}
#: How every figure of the chapter draws each network: an Okabe-Ito colour and a
#: marker, both different for every network (see :func:`run_label`).
STYLES: dict[str, tuple[str, str]] = {
    "no normalization": (PALETTE["blue"], "o"),
    "BatchNorm": (PALETTE["orange"], "s"),
    "LayerNorm": (PALETTE["green"], "^"),
    "noisy BatchNorm": (PALETTE["purple"], "D"),
    "noisy, no normalization": (PALETTE["black"], "v"),
}


# --------------------------------------------------------------------------- checks


# ------------------------------------------------------------------------- the task


def make_task(
    n: int = 2048, d_in: int = 16, n_classes: int = 4, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Gaussian points labelled by a random two-layer teacher network.

    .. math::
        x \sim \mathcal{N}(0, I_{d}),\qquad
        y = \arg\max_k \big[\tanh(2\,x W_1)\, W_2\big]_k

    with ``W1`` of shape ``(d_in, 32)`` and ``W2`` of shape ``(32, n_classes)``,
    entries drawn from ``N(0, 1/fan_in)``. The labels are a smooth but non-linear
    function of the inputs, so a deep network has something to learn and a linear
    one cannot fit it.

    Shape:
        returns ``x`` ``(n, d_in)`` float64 and ``y`` ``(n,)`` int64 in
        ``[0, n_classes)``. Drawn in float64, so that the training runs of the
        chapter compute in float64: see :class:`DeepMLP`.
    """
    n = check_int(n, "n", minimum=2)
    d_in = check_int(d_in, "d_in")
    n_classes = check_int(n_classes, "n_classes", minimum=2)
    g = torch.Generator().manual_seed(check_seed(seed))
    f64 = torch.float64  # drawn in float64: the same numbers on every processor
    x = torch.randn(n, d_in, generator=g, dtype=f64)
    w1 = torch.randn(d_in, 32, generator=g, dtype=f64) / math.sqrt(d_in)
    w2 = torch.randn(32, n_classes, generator=g, dtype=f64) / math.sqrt(32)
    y = (torch.tanh(2.0 * x @ w1) @ w2).argmax(dim=1)
    return x, y


# ---------------------------------------------------------------------- the network


class ShiftScaleNoise(nn.Module):
    r"""A random shift and scale of every unit, redrawn at every training step.

    .. math::
        y_{ij} = s_j\, x_{ij} + m_j,\qquad
        \log s_j \sim \mathcal{U}(-\log(1+a), \log(1+a)),\quad
        m_j \sim \mathcal{U}(-a, a)

    where ``a`` is ``level``. Every sample of the batch gets the same ``s_j`` and
    ``m_j``, so the noise moves each unit's whole distribution (its mean and its
    spread), and it moves it to a new place at every step: a deliberately large,
    deliberately unstable "covariate shift". With ``level=1`` the scale ranges over
    [1/2, 2] and the shift over [-1, 1]. ``level=0`` is the identity. Call
    :meth:`resample` once per step.

    Shape:
        input ``(N, C)`` with ``C = num_features``; output as input.
    """

    def __init__(self, num_features: int, level: float = 0.0) -> None:
        super().__init__()
        self.num_features = check_int(num_features, "num_features")
        self.level = check_real(level, "level", minimum=0.0, strict=False)
        self.register_buffer("scale", torch.ones(num_features), persistent=False)
        self.register_buffer("shift", torch.zeros(num_features), persistent=False)

    def resample(self, generator: torch.Generator) -> None:
        """Draw a new scale and shift for every unit (does nothing when ``level`` is
        0)."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                "generator must be a torch.Generator, got "
                f"{type(generator).__name__}"
            )
        if self.level == 0.0:
            return
        log_range = math.log1p(self.level)
        u = torch.rand(
            2, self.num_features, generator=generator, dtype=self.scale.dtype
        )
        u = u * 2.0 - 1.0  # (2, C), U(-1, 1)
        self.scale = torch.exp(u[0] * log_range)
        self.shift = u[1] * self.level

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.level == 0.0:
            return input
        return input * self.scale + self.shift

    def extra_repr(self) -> str:
        return f"{self.num_features}, level={self.level}"


class DeepMLP(nn.Module):
    r"""``depth`` blocks of Linear -> normalization -> noise -> ReLU, then a linear
    head.

    .. math::
        z_\ell = \mathrm{noise}\big(\mathrm{norm}(h_{\ell-1} W_\ell^\top
        + b_\ell)\big),
        \qquad h_\ell = \max(z_\ell, 0),\qquad \text{logits}
        = h_L W_{\text{out}}^\top

    ``z_l`` is the **pre-activation** of layer ``l`` (the input of its ReLU, as in
    Ioffe & Szegedy's figures): what that layer's non-linearity sees. ``norm`` is
    ``"none"``, ``"batch"`` (course_lib ``BatchNorm`` with torch's defaults: it
    keeps running statistics, momentum 0.1, and in evaluation mode normalizes with
    them) or ``"layer"`` (course_lib ``LayerNorm``). A Linear that feeds a
    BatchNorm has no bias: BatchNorm subtracts each unit's mean over the batch,
    which cancels any constant added before it, and its own ``beta`` takes the
    bias's place (Ioffe & Szegedy 2015, section 3.2). Weights are drawn from
    ``N(0, gain^2 / fan_in)``, biases are 0;
    ``gain = sqrt(2)`` is He et al.'s (2015) initialization for ReLU, under which
    the scale of ``h_l`` neither grows nor shrinks on average from layer to layer.

    The weights are drawn and kept in ``dtype``, float64 by default: a training run
    amplifies round-off from step to step, and in float32 that reaches the printed
    digits (they then differ between processors whose kernels add in another order);
    in float64 it stays many digits below them (see also
    :func:`course_lib.experiments.common.default_dtype`).

    Shape:
        x ``(N, d_in)``; output ``(N, d_out)``; with ``return_preacts=True`` also
        the list of ``depth`` pre-activations, each ``(N, width)``.
    """

    def __init__(
        self,
        d_in: int,
        width: int,
        depth: int,
        d_out: int,
        *,
        norm: Norm = "none",
        gain: float = math.sqrt(2.0),
        noise: float = 0.0,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(
                f"dtype must be a floating-point torch.dtype, got {dtype!r}"
            )
        d_in = check_int(d_in, "d_in")
        self.width = check_int(width, "width", minimum=2)
        self.depth = check_int(depth, "depth")
        d_out = check_int(d_out, "d_out")
        self.norm = check_choice(norm, "norm", NORMS)
        gain = check_real(gain, "gain", minimum=0.0)
        g = torch.Generator().manual_seed(check_seed(seed))
        with default_dtype(dtype):
            self._build(d_in, norm, gain, noise, d_out, g)

    def _build(
        self,
        d_in: int,
        norm: str,
        gain: float,
        noise: float,
        d_out: int,
        g: torch.Generator,
    ) -> None:
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.noises = nn.ModuleList()
        fan_in = d_in
        for _ in range(self.depth):
            # the bias before a BatchNorm is redundant: the mean subtraction
            # cancels it
            linear = nn.Linear(fan_in, self.width, bias=norm != "batch")
            with torch.no_grad():
                linear.weight.normal_(0.0, gain / math.sqrt(fan_in), generator=g)
                if linear.bias is not None:
                    linear.bias.zero_()
            self.linears.append(linear)
            if norm == "batch":
                self.norms.append(BatchNorm(self.width))
            elif norm == "layer":
                self.norms.append(LayerNorm(self.width))
            else:
                self.norms.append(nn.Identity())
            self.noises.append(ShiftScaleNoise(self.width, noise))
            fan_in = self.width
        self.head = nn.Linear(self.width, d_out)
        with torch.no_grad():
            self.head.weight.normal_(0.0, 1.0 / math.sqrt(self.width), generator=g)
            self.head.bias.zero_()

    def resample_noise(self, generator: torch.Generator) -> None:
        """Draw new noise in every block (see :class:`ShiftScaleNoise`)."""
        for noise in self.noises:
            noise.resample(generator)

    def block_parameters(self, layer: int) -> list[tuple[str, nn.Parameter]]:
        """``(name, parameter)`` pairs of block ``layer`` (0-based): its linear and
        norm."""
        layer = check_int(layer, "layer", minimum=0)
        if layer >= self.depth:
            raise ValueError(f"layer must be < depth = {self.depth}, got {layer}")
        pairs = [
            (f"linears.{layer}.{n}", p)
            for n, p in self.linears[layer].named_parameters()
        ]
        pairs += [
            (f"norms.{layer}.{n}", p)
            for n, p in self.norms[layer].named_parameters()
        ]
        return pairs

    def forward(
        self, x: torch.Tensor, *, return_preacts: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        preacts = []
        h = x
        for linear, norm, noise in zip(
            self.linears, self.norms, self.noises, strict=True
        ):
            z = noise(norm(linear(h)))  # (N, width) pre-activation
            preacts.append(z)
            h = torch.relu(z)
        logits = self.head(h)  # (N, d_out)
        return (logits, preacts) if return_preacts else logits


# --------------------------------------------------------------------- measurements


@contextmanager
def _running_stats_kept(model: nn.Module) -> Iterator[None]:
    """Leave no trace in ``model``'s running statistics.

    A BatchNorm in training mode folds every batch it sees into ``running_mean``
    and ``running_var`` and counts it in ``num_batches_tracked``. A measurement
    pass (the probe, :func:`gradient_shift`, :func:`loss_along_gradient`) is not
    training data, so the buffers of every layer that tracks running statistics
    are put back as they were, bit for bit.
    """
    saved = [
        (b, b.clone())
        for m in model.modules()
        if getattr(m, "track_running_stats", False)
        for b in m.buffers(recurse=False)
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def pre_activation_stats(z: torch.Tensor) -> torch.Tensor:
    r"""Per-unit mean, standard deviation and 15th / 50th / 85th percentiles over a
    batch.

    .. math::
        \mu_j = \frac1N\sum_i z_{ij},\quad
        \sigma_j = \sqrt{\tfrac1N\textstyle\sum_i (z_{ij}-\mu_j)^2},\quad
        p_{q,j} = \text{quantile}_q(z_{\cdot j})

    (percentiles interpolated linearly, as ``torch.quantile`` does). These are the
    numbers Ioffe & Szegedy (2015, Figure 1) follow over training for one unit: if
    they move, the next layer is chasing a moving target. Leading dimensions (e.g.
    layers) are kept.

    Shape:
        z ``(*, N, C)``; returns ``(*, C, 5)``, the last axis in the order of
        :data:`STAT_NAMES`.
    """
    if not isinstance(z, torch.Tensor) or not z.is_floating_point():
        raise TypeError("z must be a floating-point torch.Tensor")
    if z.dim() < 2 or z.shape[-2] < 2:
        raise ValueError(f"z must have shape (*, N >= 2, C), got {tuple(z.shape)}")
    z = z.detach()
    n = z.shape[-2]
    mean = z.mean(dim=-2)  # (*, C)
    std = ((z - mean.unsqueeze(-2)) ** 2).mean(dim=-2).sqrt()
    ordered = z.sort(dim=-2).values  # (*, N, C)
    qs = []
    for q in _QUANTILES:  # linear interpolation between order statistics
        pos = q * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        qs.append(ordered[..., lo, :] * (1.0 - frac) + ordered[..., hi, :] * frac)
    return torch.stack([mean, std, *qs], dim=-1)  # (*, C, 5)


def distribution_drift(stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""How far each layer's unit distributions move between consecutive records.

    For unit ``j`` of layer ``l`` between records ``k-1`` and ``k``:

    .. math::
        \text{shift} = \frac{|\mu_k - \mu_{k-1}|}{\sigma_{k-1}},\qquad
        \text{rescale} = \left|\log\frac{\sigma_k}{\sigma_{k-1}}\right|

    both free of the unit's scale, so networks whose activations live on different
    scales can be compared. Each is averaged over units and over consecutive
    records. A diverged run (non-finite statistics) gives ``nan``.

    Shape:
        stats ``(R, L, C, K)`` (records, layers, units, statistics) whose last axis
        starts with the mean and the standard deviation (``K >= 2``, e.g.
        :attr:`RunRecord.moments` or the output of :func:`pre_activation_stats`),
        ``R >= 2``; returns two ``(L,)`` tensors: mean shift and mean rescale per
        layer.
    """
    if (
        not isinstance(stats, torch.Tensor)
        or stats.dim() != 4
        or stats.shape[-1] < 2
    ):
        raise ValueError(
            "stats must be a tensor of shape (records, layers, units, K >= 2)"
        )
    if stats.shape[0] < 2:
        raise ValueError(
            f"stats must hold at least 2 records, got {stats.shape[0]}"
        )
    mean, std = stats[..., 0], stats[..., 1].clamp_min(1e-12)  # (R, L, C)
    shift = (mean[1:] - mean[:-1]).abs() / std[:-1]
    rescale = (std[1:] / std[:-1]).log().abs()
    if not (torch.isfinite(shift).all() and torch.isfinite(rescale).all()):
        nan = torch.full((stats.shape[1],), math.nan, dtype=torch.float64)
        return nan, nan.clone()
    return shift.mean(dim=(0, 2)), rescale.mean(dim=(0, 2))


def gradient_shift(
    model: DeepMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Internal covariate shift as Santurkar et al. (2018, Definition 2.1) measure
    it.

    ``G_l`` is the gradient of the loss with respect to layer ``l``'s weight matrix;
    ``G'_l`` is the same gradient, on the same batch, after every layer *before*
    ``l`` has taken its SGD step ``theta <- theta - lr * grad`` (layer ``l`` and the
    ones after it unchanged):

    .. math::
        \mathrm{ICS}_l = \lVert G_l - G'_l \rVert_2,\qquad
        \cos_l = \frac{\langle G_l,
        G'_l\rangle}{\lVert G_l\rVert\,\lVert G'_l\rVert}

    A small difference (cosine near 1) means the update of the earlier layers barely
    changed what layer ``l`` should do: little covariate shift in the sense that
    matters for optimization. Layer 1 has no layers before it, so its shift is 0 and
    its cosine 1. The earlier layers are stepped in place one after the other and
    every parameter is restored bit for bit afterwards (``.grad`` is not touched),
    and so are BatchNorm's running statistics, which these ``depth`` training-mode
    passes would otherwise update.

    Shape:
        x ``(N, d_in)``; y ``(N,)`` int64; returns three ``(depth,)`` tensors:
        ``||G - G'||``, cosine, and ``||G||``.
    """
    if not isinstance(model, DeepMLP):
        raise TypeError(f"model must be a DeepMLP, got {type(model).__name__}")
    x = check_float_tensor(x, "x", dim=2)  # (N, d_in)
    y = check_labels(y, "y", x.shape[0])  # (N,) class labels
    lr = check_real(lr, "lr", minimum=0.0)
    with _running_stats_kept(model):
        return _gradient_shift(model, x, y, lr)


def _gradient_shift(
    model: DeepMLP, x: torch.Tensor, y: torch.Tensor, lr: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`gradient_shift` on checked arguments."""
    params = list(model.parameters())
    grads = dict(
        zip(
            params,
            torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params),
            strict=True,
        )
    )
    saved = [p.detach().clone() for p in params]
    l2, cos, norm = [0.0], [1.0], [float(grads[model.linears[0].weight].norm())]
    try:
        for layer in range(1, model.depth):
            with torch.no_grad():  # the layers before `layer` take their SGD step
                for _, p in model.block_parameters(layer - 1):
                    p -= lr * grads[p]
            w = model.linears[layer].weight
            (g_new,) = torch.autograd.grad(
                nn.functional.cross_entropy(model(x), y), [w]
            )
            g_old = grads[w]
            l2.append(float((g_old - g_new).norm()))
            norm.append(float(g_old.norm()))
            denom = float(g_old.norm() * g_new.norm())
            cos.append(
                float((g_old * g_new).sum()) / denom if denom > 0 else math.nan
            )
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, saved, strict=True):
                p.copy_(p0)
    return (
        torch.tensor(l2, dtype=torch.float64),
        torch.tensor(cos, dtype=torch.float64),
        torch.tensor(norm, dtype=torch.float64),
    )


def loss_along_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    step_sizes: Sequence[float],
) -> torch.Tensor:
    r"""The loss after a step of each size along the (negative) gradient.

    .. math:: \mathcal{L}\big(\theta - \eta\, \nabla\mathcal{L}(\theta)\big),\quad
        \eta \in \text{step\_sizes}

    on the same batch. Santurkar et al. (2018, Figure 4) plot the range of these
    values over training: a wide range means the loss changes abruptly along the
    very direction the optimizer follows (a rough landscape, where a step size that
    works at one point overshoots at the next); a narrow range means the gradient is
    a reliable guide. The parameters are moved in place and restored bit for bit
    afterwards, and so are any running statistics of BatchNorm layers.

    Shape:
        x ``(N, d_in)``; y ``(N,)``; returns ``(len(step_sizes),)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    x = check_float_tensor(x, "x", dim=2)  # (N, d_in)
    y = check_labels(y, "y", x.shape[0])  # (N,) class labels
    step_sizes = check_sequence(step_sizes, "step_sizes", "positive numbers")
    etas = [check_real(s, "step_sizes", minimum=0.0) for s in step_sizes]
    with _running_stats_kept(model):
        return _loss_along_gradient(model, x, y, etas)


def _loss_along_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, etas: list[float]
) -> torch.Tensor:
    """:func:`loss_along_gradient` on checked arguments."""
    params = list(model.parameters())
    grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params)
    saved = [p.detach().clone() for p in params]
    out = []
    try:
        with torch.no_grad():
            for eta in etas:
                for p, p0, g in zip(params, saved, grads, strict=True):
                    p.copy_(p0 - eta * g)
                out.append(float(nn.functional.cross_entropy(model(x), y)))
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, saved, strict=True):
                p.copy_(p0)
    return torch.tensor(out, dtype=torch.float64)


# -------------------------------------------------------------------- training runs


@dataclass(frozen=True)
class RunConfig:
    r"""One training run of the chapter: network, task, optimizer and what to
    record.

    .. math:: \theta_{t+1} = \theta_t
        - \text{lr}\cdot\nabla_\theta\mathcal{L}(\theta_t; B_t),
        \quad t = 0, \dots, \text{steps} - 1,\quad |B_t| = \text{batch\_size}

    Small on purpose: the chapter trains fifteen of these, with every measurement,
    inside its time budget on two CPU cores. ``landscape_at`` and ``ics_at`` are
    steps in ``[0, steps)``; an empty tuple skips that measurement.

    Shape:
        scalars, and tuples of step indices; the network is ``depth`` layers of
        ``width``.
    """

    # hidden layers: deep enough for effects to compound, fast to train
    depth: int = 8
    width: int = 32  # units per hidden layer
    steps: int = 80  # SGD steps
    batch_size: int = 64  # examples per step
    lr: float = 0.5  # plain SGD, no momentum: the update is exactly -lr * gradient
    # He initialization: the plain net starts well scaled
    gain: float = math.sqrt(2.0)
    noise: float = 0.0  # ShiftScaleNoise level after each norm (0: none)
    # percentiles every this many steps (mean, std: every step)
    percentile_every: int = 5
    # loss_along_gradient
    landscape_at: tuple[int, ...] = (0, 10, 20, 30, 40, 50, 60, 70)
    # gradient_shift (depth passes each: fewer steps)
    ics_at: tuple[int, ...] = (0, 40, 79)
    # landscape steps / lr
    step_multiples: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    probe_size: int = 128  # fixed probe batch for the statistics
    task_seed: int = 0  # the same task for every run

    def __post_init__(self) -> None:
        for name in ("depth", "steps", "batch_size", "percentile_every"):
            check_int(getattr(self, name), name)
        check_int(self.width, "width", minimum=2)
        check_int(self.probe_size, "probe_size", minimum=2)
        check_real(self.lr, "lr", minimum=0.0)
        check_real(self.gain, "gain", minimum=0.0)
        check_real(self.noise, "noise", minimum=0.0, strict=False)
        check_seed(self.task_seed)
        for name in ("landscape_at", "ics_at"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or any(
                isinstance(s, bool)
                or not isinstance(s, int)
                or not 0 <= s < self.steps
                for s in value
            ):
                raise ValueError(
                    f"{name} must be a tuple of steps in [0, {self.steps}), got "
                    f"{value!r}"
                )
        if not isinstance(self.step_multiples, tuple) or not self.step_multiples:
            raise ValueError(
                "step_multiples must be a non-empty tuple of positive numbers"
            )
        for m in self.step_multiples:
            check_real(m, "step_multiples", minimum=0.0)


@dataclass
class RunRecord:
    """Everything one run of :func:`train_runs` measured.

    ``moments[t]`` and ``percentiles`` are taken on a fixed probe batch with the
    weights after ``t`` updates (the last entry after the final update), in
    training mode: a BatchNorm normalizes the probe with the probe's own
    statistics. ``moments_eval[t]`` (BatchNorm runs only) is the same probe in
    evaluation mode, normalized with the running statistics of the ``t`` training
    batches seen so far. No probe pass changes the running statistics.
    ``losses[t]`` is the loss of step ``t``'s batch before its update.

    Shape:
        ``losses`` ``(steps,)``; ``moments`` ``(steps + 1, depth, width, 2)`` (mean,
        std of every unit's pre-activation); ``moments_eval`` the same shape for a
        BatchNorm run, ``(0, depth, width, 2)`` otherwise; ``percentiles``
        ``(R, depth, width, 3)`` (15th, 50th, 85th) at the ``R`` steps of
        ``percentile_steps``; ``ics_l2``, ``ics_cos``, ``grad_norm`` ``(M, depth)``
        at the ``M`` steps of ``ics_steps``; ``landscape``
        ``(K, len(step_multiples))`` at the ``K`` steps of ``landscape_steps``.
    """

    norm: str
    seed: int
    config: RunConfig
    losses: torch.Tensor
    moments: torch.Tensor
    moments_eval: torch.Tensor
    percentile_steps: list[int]
    percentiles: torch.Tensor
    ics_steps: list[int]
    ics_l2: torch.Tensor
    ics_cos: torch.Tensor
    grad_norm: torch.Tensor
    landscape_steps: list[int]
    landscape: torch.Tensor

    @property
    def diverged(self) -> bool:
        """True if the loss became non-finite (the remaining losses are ``nan``)."""
        return not bool(torch.isfinite(self.losses).all())

    def final_loss(self, window: int = 20) -> float:
        """Mean training loss over the last ``window`` steps (``nan`` if the run
        diverged)."""
        window = check_int(window, "window")
        return float(self.losses[-window:].mean())

    def drift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`distribution_drift` from one step to the next. Two ``(depth,)``
        tensors."""
        return distribution_drift(self.moments)

    def drift_eval(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`distribution_drift` of ``moments_eval``: a BatchNorm network's
        drift with the probe normalized by the running statistics (evaluation
        mode) instead of its own. Only for ``norm == "batch"``; two ``(depth,)``
        tensors."""
        if self.moments_eval.shape[0] == 0:
            raise ValueError(
                f"drift_eval needs a BatchNorm run, this one has norm={self.norm!r}"
            )
        return distribution_drift(self.moments_eval)

    def landscape_range(self) -> torch.Tensor:
        r"""Max minus min of the loss along the gradient, at each measured step.

        .. math:: \max_\eta \mathcal{L}(\theta - \eta g)
            - \min_\eta \mathcal{L}(\theta - \eta g)

        Santurkar et al.'s "variation of the loss"; it counts a large *decrease*
        along the gradient as variation too.

        Shape:
            ``(K,)``, one value per step of ``landscape_steps``.
        """
        return self.landscape.max(dim=1).values - self.landscape.min(dim=1).values

    def landscape_rise(self) -> torch.Tensor:
        r"""How far the loss can *rise* above its current value along the gradient.

        .. math:: \max\Big(0,\; \max_\eta \mathcal{L}(\theta - \eta g)
            - \mathcal{L}(\theta)\Big)

        over the step sizes of ``step_multiples``, at each measured step, where
        :math:`\mathcal{L}(\theta)` is that step's training loss (same weights,
        batch and
        noise). 0 means that every step size tried along the negative gradient
        lowered the loss; a large value means that a step a few times the learning
        rate overshoots badly: the landscape turns sharply along the very direction
        the optimizer follows.

        Shape:
            ``(K,)``, one value per step of ``landscape_steps``.
        """
        base = self.losses[self.landscape_steps]  # (K,)
        return (self.landscape.max(dim=1).values - base).clamp_min(0.0)


def _moments(z: torch.Tensor) -> torch.Tensor:
    """Mean and std of every unit over the probe batch: ``z`` ``(depth, probe_size,
    width)`` gives ``(depth, width, 2)``."""
    mean = z.mean(dim=1)
    std = ((z - mean[:, None]) ** 2).mean(dim=1).sqrt()
    return torch.stack([mean, std], dim=-1)


class _Recorder:
    """What one run of :func:`train_runs` measures as it trains (see
    :class:`RunRecord`)."""

    def __init__(self, config: RunConfig, seed: int, probe: torch.Tensor) -> None:
        self.config = config
        self.probe = probe  # (probe_size, d_in), the same at every step
        self.noise = torch.Generator().manual_seed(stream_seed(seed, "noise"))
        self.etas = [config.lr * m for m in config.step_multiples]
        self.moments: list[torch.Tensor] = []
        self.moments_eval: list[torch.Tensor] = []
        self.percentiles: list[torch.Tensor] = []
        self.percentile_steps: list[int] = []
        self.ics: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.ics_steps: list[int] = []
        self.landscape: list[torch.Tensor] = []
        self.landscape_steps: list[int] = []

    def record(self, step: int, net: DeepMLP) -> None:
        # the probe is a measurement, not training data: a training-mode BatchNorm
        # would fold its statistics into the running ones, so they are kept
        with torch.no_grad(), _running_stats_kept(net):
            _, preacts = net(self.probe, return_preacts=True)
        z = torch.stack(preacts)  # (depth, probe_size, width)
        self.moments.append(_moments(z))
        if net.norm == "batch":
            # the same probe normalized with the running statistics instead of its
            # own: what the network computes in evaluation mode
            net.eval()
            try:
                with torch.no_grad():
                    _, preacts_eval = net(self.probe, return_preacts=True)
            finally:
                net.train()
            self.moments_eval.append(_moments(torch.stack(preacts_eval)))
        if step % self.config.percentile_every == 0 or step == self.config.steps:
            # (depth, width, 3)
            self.percentiles.append(pre_activation_stats(z)[..., 2:])
            self.percentile_steps.append(step)

    def on_step(
        self, step: int, net: DeepMLP, x: torch.Tensor, y: torch.Tensor
    ) -> None:
        """Before step ``step``'s update: new noise, then everything measured at
        that step."""
        net.resample_noise(self.noise)
        self.record(step, net)
        if step in self.config.ics_at:
            self.ics.append(gradient_shift(net, x, y, self.config.lr))
            self.ics_steps.append(step)
        if step in self.config.landscape_at:
            self.landscape.append(loss_along_gradient(net, x, y, self.etas))
            self.landscape_steps.append(step)

    def finish(
        self, norm: str, seed: int, net: DeepMLP, losses: torch.Tensor
    ) -> RunRecord:
        config = self.config
        n_done = len(self.moments)
        # after the last update (with the last step's noise)
        self.record(config.steps, net)
        # diverged: training stopped; pad so shapes stay fixed
        if n_done < config.steps:
            pad = torch.full_like(self.moments[-1], math.nan)
            self.moments[n_done:] = [pad] * (config.steps + 1 - n_done)
            if self.moments_eval:
                self.moments_eval[n_done:] = [pad] * (config.steps + 1 - n_done)
        empty = torch.empty(0, config.depth, dtype=torch.float64)
        if self.ics:
            l2, cos, grad_norm = (
                torch.stack(column) for column in zip(*self.ics, strict=True)
            )
        else:
            l2, cos, grad_norm = empty, empty.clone(), empty.clone()
        return RunRecord(
            norm=norm,
            seed=seed,
            config=config,
            losses=losses,
            moments=torch.stack(self.moments),
            moments_eval=torch.stack(self.moments_eval)
            if self.moments_eval
            else torch.empty(0, config.depth, config.width, 2, dtype=torch.float64),
            percentile_steps=self.percentile_steps,
            percentiles=torch.stack(self.percentiles),
            ics_steps=self.ics_steps,
            ics_l2=l2,
            ics_cos=cos,
            grad_norm=grad_norm,
            landscape_steps=self.landscape_steps,
            landscape=torch.stack(self.landscape)
            if self.landscape
            else torch.empty(0, len(self.etas), dtype=torch.float64),
        )


def train_runs(
    norm: Norm, seeds: Sequence[int], config: RunConfig | None = None
) -> list[RunRecord]:
    r"""Train a :class:`DeepMLP` per seed on :func:`make_task` with SGD, measuring
    as it goes.

    .. math:: \theta_{t+1} = \theta_t
        - \eta\,\nabla_\theta \mathcal{L}(\theta_t; B_t)

    Before every update (and once after the last) each run passes a fixed probe
    batch through its network and records each unit's pre-activation mean and
    standard deviation, and every ``config.percentile_every`` steps its 15th / 50th
    / 85th percentiles; a BatchNorm run passes the probe a second time in
    evaluation mode (running statistics). No measurement changes the running
    statistics: only the training batches do. At the steps in
    ``config.landscape_at`` it measures :func:`loss_along_gradient` (step sizes
    ``lr * step_multiples``) and at those in ``config.ics_at``
    :func:`gradient_shift`, on that step's batch. With
    ``config.noise > 0`` a new :class:`ShiftScaleNoise` is drawn before every step,
    and everything measured at that step sees the same noise as its update. A run's
    seed sets its initialization, batch order and noise; the task is the same for
    every seed. The runs train together as one sweep
    (:func:`course_lib.experiments.common.train_sweep`); the measurements are taken
    on each run's own network.

    Shape:
        returns one :class:`RunRecord` per seed.
    """
    norm = check_choice(norm, "norm", NORMS)
    seeds = check_seeds(seeds)
    config = RunConfig() if config is None else config
    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    x, y = make_task(seed=config.task_seed)
    nets = [
        DeepMLP(
            x.shape[1],
            config.width,
            config.depth,
            int(y.max()) + 1,
            norm=norm,  # type: ignore[arg-type]
            gain=config.gain,
            noise=config.noise,
            seed=seed,
        )
        for seed in seeds
    ]
    order = torch.stack(
        [
            torch.randint(
                0,
                x.shape[0],
                (config.steps, config.batch_size),
                generator=torch.Generator().manual_seed(
                    stream_seed(seed, "batches")
                ),
            )
            for seed in seeds
        ]
    )  # (M, steps, batch_size): the examples each run sees at each step
    recorders = [_Recorder(config, seed, x[: config.probe_size]) for seed in seeds]

    def on_step(step: int, i: int, net: nn.Module) -> None:
        assert isinstance(net, DeepMLP)
        recorders[i].on_step(step, net, x[order[i, step]], y[order[i, step]])

    losses = train_sweep(
        nets,
        lambda step: (x[order[:, step]], y[order[:, step]]),
        nn.functional.cross_entropy,
        torch.full((len(seeds), config.steps), config.lr, dtype=torch.float64),
        optimizer="sgd",
        on_step=on_step,
    )
    return [
        recorder.finish(norm, seed, net, row)
        for recorder, seed, net, row in zip(
            recorders, seeds, nets, losses, strict=True
        )
    ]


def train_networks(
    networks: Mapping[str, tuple[Norm, RunConfig]], seeds: Sequence[int]
) -> dict[str, list[RunRecord]]:
    r""":func:`train_runs` for each named network, one network per core.

    ``networks`` maps a name to the ``(norm, config)`` of :func:`train_runs`. The
    networks are independent, so they train at the same time in processes of their
    own (:func:`course_lib.experiments.common.in_processes`); every record is the
    same, bit for bit, as ``train_runs(norm, seeds, config)`` called here.

    Shape:
        returns ``{name: [one RunRecord per seed]}``, in the order of ``networks``.
    """
    if not isinstance(networks, Mapping) or not networks:
        raise TypeError(
            "networks must be a non-empty mapping name -> (norm, RunConfig)"
        )
    jobs = []
    for name, spec in networks.items():
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise TypeError(
                f"networks[{name!r}] must be a (norm, RunConfig) pair, got {spec!r}"
            )
        norm, config = spec
        check_choice(norm, f"networks[{name!r}]'s norm", NORMS)
        if not isinstance(config, RunConfig):
            raise TypeError(
                f"networks[{name!r}]'s config must be a RunConfig, got "
                f"{type(config).__name__}"
            )
        jobs.append((train_runs, (norm, tuple(check_seeds(seeds)), config), {}))
    return dict(zip(networks, in_processes(jobs), strict=True))


# ------------------------------------------------------------------- initialization


def _fresh_net(
    depth: int, norm: Norm, scale: float, width: int, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, DeepMLP]:
    """``n`` task points and a :class:`DeepMLP` at initialization, weights of std
    ``scale * sqrt(2 / fan_in)`` (He et al. 2015 at ``scale = 1``)."""
    x, y = make_task(n=n, seed=stream_seed(seed, "task"))
    model = DeepMLP(
        x.shape[1],
        width,
        depth,
        int(y.max()) + 1,
        norm=norm,  # type: ignore[arg-type]
        gain=scale * math.sqrt(2.0),
        seed=seed,
    )
    return x, y, model


def init_profile(
    depth: int,
    norm: Norm = "none",
    *,
    scale: float = 1.0,
    width: int = 128,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Activation scale and weight-gradient norm of every layer at initialization.

    Weights are drawn from ``N(0, scale^2 * 2 / fan_in)``: ``scale = 1`` is He et
    al.'s (2015) initialization. Without normalization each ReLU layer multiplies
    the mean square of the activations by ``scale^2`` in expectation (the weights
    multiply the variance by ``2 scale^2``, the ReLU keeps half of it), so

    .. math::
        \mathrm{rms}(h_\ell) \approx \text{scale}\cdot\mathrm{rms}(h_{\ell-1})
        \quad\Rightarrow\quad
        \mathrm{rms}(h_L) \approx \text{scale}^{\,L-1}\,\mathrm{rms}(h_1)

    and at a finite width each factor is a random number near ``scale``. The input
    is a batch of :func:`make_task` points with their labels; one cross-entropy
    forward and backward pass.

    Shape:
        returns two ``(depth,)`` tensors: ``rms(h_l)`` (the root mean square of
        block ``l``'s ReLU output over the batch and the units) and
        ``||dL/dW_l||_F`` (the Frobenius norm of the gradient of block ``l``'s
        weight matrix).
    """
    depth = check_int(depth, "depth")
    norm = check_choice(norm, "norm", NORMS)
    scale = check_real(scale, "scale", minimum=0.0)
    width = check_int(width, "width", minimum=2)
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    x, y, model = _fresh_net(depth, norm, scale, width, batch_size, seed)
    logits, preacts = model(x, return_preacts=True)
    nn.functional.cross_entropy(logits, y).backward()
    act = torch.stack(
        [torch.relu(z.detach()).pow(2).mean().sqrt() for z in preacts]
    )
    grad = torch.stack([lin.weight.grad.norm() for lin in model.linears])
    return act, grad


# -------------------------------------------------------------------------- figures


def plot_percentiles(
    ax: Axes, record: RunRecord, layer: int, unit: int = 0
) -> tuple[Figure, Axes]:
    r"""One unit's 15th / 50th / 85th percentiles over training (Ioffe & Szegedy,
    Fig. 1).

    .. math:: p_{q}(t) = \text{quantile}_q\big(z_{\ell,
        j}(\text{probe}; \theta_t)\big),
        \quad q \in \{0.15, 0.5, 0.85\}

    The band spans the 15th to 85th percentile of the unit's pre-activation on the
    probe batch; the line is the median. The colour is the network's (its
    :func:`run_label` in :data:`STYLES`).

    Shape:
        draws ``len(record.percentile_steps)`` points; returns ``(fig, ax)``.
    """
    if not isinstance(record, RunRecord):
        raise TypeError(f"record must be a RunRecord, got {type(record).__name__}")
    layer = check_int(layer, "layer", minimum=0)
    unit = check_int(unit, "unit", minimum=0)
    _, depth, width, _ = record.percentiles.shape
    if layer >= depth or unit >= width:
        raise ValueError(
            f"layer must be < {depth} and unit < {width}, got {layer}, {unit}"
        )
    steps = record.percentile_steps
    q = record.percentiles[:, layer, unit]  # (R, 3)
    c, _ = STYLES[run_label(record)]
    ax.fill_between(steps, q[:, 0], q[:, 2], color=c, alpha=0.25, linewidth=0)
    ax.plot(steps, q[:, 1], color=c, linewidth=1.5)
    ax.plot(steps, q[:, 0], color=c, linewidth=0.8)
    ax.plot(steps, q[:, 2], color=c, linewidth=0.8)
    return ax.figure, ax


def run_label(record: RunRecord) -> str:
    """The name tables and figures give a run: its network's entry in
    :data:`LABELS`, with "noisy" in front when it trained with
    :class:`ShiftScaleNoise` (a key of :data:`STYLES`)."""
    if not isinstance(record, RunRecord):
        raise TypeError(f"record must be a RunRecord, got {type(record).__name__}")
    label = LABELS[record.norm]
    if record.config.noise == 0.0:
        return label
    return "noisy BatchNorm" if record.norm == "batch" else f"noisy, {label}"


def plot_loss_curves(
    ax: Axes, runs: Mapping[str, Sequence[RunRecord]], *, window: int = 10
) -> tuple[Figure, Axes]:
    r"""Training-loss curves, a moving average over ``window`` steps, one line per
    run, and the chance level.

    .. math:: \bar{\mathcal{L}}_t = \frac{1}{w}\sum_{s=t-w+1}^{t} \mathcal{L}_s,
        \qquad \text{chance} = \ln(\text{classes})

    The chance level is the loss of predicting every class with equal probability;
    its line is labelled on the plot, at its right end, and the legend is one row
    in the upper right, above the chance level, where the curves are not once
    training is under way.

    Shape:
        ``runs`` maps any names to lists of :class:`RunRecord` (colours from
        :data:`STYLES` by :func:`run_label`); draws ``steps - window + 1`` points
        per run; returns ``(fig, ax)``.
    """
    window = check_int(window, "window")
    if not isinstance(runs, Mapping) or not runs:
        raise TypeError("runs must be a non-empty mapping of name -> RunRecords")
    records = [r for rs in runs.values() for r in rs]
    if not records or not all(isinstance(r, RunRecord) for r in records):
        raise TypeError("runs must map names to lists of RunRecord")
    steps = records[0].config.steps
    if window > steps:
        raise ValueError(f"window must be <= steps = {steps}, got {window}")
    kernel = torch.ones(1, 1, window, dtype=torch.float64) / window
    for rs in runs.values():
        for k, r in enumerate(rs):
            # (steps - window + 1,) moving average
            smooth = torch.conv1d(r.losses.view(1, 1, -1), kernel).view(-1)
            label = run_label(r)
            ax.plot(
                range(window - 1, steps),
                smooth,
                color=STYLES[label][0],
                linewidth=1.2,
                alpha=0.9,
                label=label if k == 0 else None,
            )
    # the runs' task (the same for every run of a config): its number of classes
    n_classes = int(make_task(seed=records[0].config.task_seed)[1].max()) + 1
    chance = math.log(n_classes)
    ax.axhline(chance, color="grey", linestyle=":", linewidth=1.0)
    ax.annotate(
        f"chance (ln {n_classes} = {chance:.3f})",
        xy=(1.0, chance),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        ha="right",
        va="bottom",
        color="grey",
    )
    ax.legend(loc="upper right", ncols=len(ax.get_legend_handles_labels()[1]))
    return ax.figure, ax


def plot_landscape_rise(
    ax: Axes, rise: Mapping[str, torch.Tensor]
) -> tuple[Figure, Axes]:
    r"""Strip plot of :meth:`RunRecord.landscape_rise`: one column per network.

    .. math:: \max\Big(0,\; \max_\eta \mathcal{L}(\theta - \eta g)
        - \mathcal{L}(\theta)\Big)

    Small markers are the measured steps of each seed (seeds side by side), a large
    marker with a black edge is each seed's mean over its steps. Every network has
    its own colour and marker shape (:data:`STYLES`); the axis is symmetric-log,
    linear below 0.01, so the many exact zeros stay visible.

    Shape:
        ``rise`` maps keys of :data:`STYLES` to ``(seeds, K)`` tensors; returns
        ``(fig, ax)``.
    """
    if not isinstance(rise, Mapping) or not rise:
        raise TypeError("rise must be a non-empty mapping of name -> tensor")
    for name, values in rise.items():
        if name not in STYLES:
            raise ValueError(
                f"rise has an unknown network {name!r}; expected keys of STYLES"
            )
        if not isinstance(values, torch.Tensor) or values.dim() != 2:
            raise ValueError(f"rise[{name!r}] must be a (seeds, steps) tensor")
    for i, (name, values) in enumerate(rise.items()):
        c, marker = STYLES[name]
        n_seeds = values.shape[0]
        offsets = torch.linspace(-0.2, 0.2, n_seeds) if n_seeds > 1 else [0.0]
        for k in range(n_seeds):
            x = i + float(offsets[k])
            ax.plot(
                [x] * values.shape[1],
                values[k].tolist(),
                marker,
                linestyle="none",
                color=c,
                alpha=0.5,
                markersize=3.5,
            )
            ax.plot(
                x,
                float(values[k].mean()),
                marker,
                color=c,
                markersize=8,
                markeredgecolor="black",
                label=name if k == 0 else None,
            )
    ax.set_xticks(range(len(rise)), list(rise))
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(bottom=0)
    return ax.figure, ax


def plot_activation_histograms(
    depth: int = 16,
    scale: float = 1.0,
    norm: Norm = "none",
    *,
    n_layers_shown: int = 5,
    width: int = 128,
    seed: int = 0,
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    r"""Histograms of the pre-activations of several layers of a freshly built net.

    .. math:: W_\ell \sim \mathcal{N}\!\left(0,
        \frac{2\,\text{scale}^2}{\text{fan-in}}\right)

    The net is a :class:`DeepMLP` with these weights and zero biases, fed 256 points
    of :func:`make_task`; the layers shown are spread evenly from the first to the
    last. Values outside [-4, 4] are counted in the outermost bins, so a
    distribution that explodes piles up at the edges and one that vanishes collapses
    into the middle bins. Draws on ``ax`` if given, else on a new figure.

    Shape:
        one histogram of ``256 * width`` values per layer shown; returns
        ``(fig, ax)``.
    """
    depth = check_int(depth, "depth")
    scale = check_real(scale, "scale", minimum=0.0)
    norm = check_choice(norm, "norm", NORMS)
    n_layers_shown = check_int(n_layers_shown, "n_layers_shown")
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(
            f"ax must be a matplotlib Axes or None, got {type(ax).__name__}"
        )
    x, y, model = _fresh_net(depth, norm, scale, width, 256, seed)
    with torch.no_grad():
        _, preacts = model(x, return_preacts=True)
    k = min(n_layers_shown, depth)
    shown = sorted({round(i * (depth - 1) / max(k - 1, 1)) for i in range(k)})
    edges = torch.linspace(-4.0, 4.0, 81)
    if ax is None:
        fig, ax = new_figure(height=3.4)
    else:
        fig = ax.figure
    for i, layer in enumerate(shown):
        # out-of-range values -> edge bins
        z = preacts[layer].reshape(-1).clamp(-3.99, 3.99)
        counts = torch.histc(z, bins=80, min=-4.0, max=4.0) / z.numel()
        std = float(preacts[layer].std())
        ax.stairs(
            counts.numpy(),
            edges.numpy(),
            color=color(i),
            linewidth=1.5,
            label=f"layer {layer + 1}: std {std:.2g}",
        )
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 30.0)  # the top decades are room for the legend
    ax.set_xlabel("pre-activation value (clipped to [-4, 4])")
    ax.set_ylabel("fraction of values per bin")
    label = NORM_LABELS[norm]
    ax.set_title(f"{label}, s = {scale:g}, depth {depth}")
    ax.legend(
        ncols=3,
        loc="upper center",
        handlelength=1.2,
        columnspacing=0.8,
    )
    return fig, ax
