r"""Chapter 9's experiments: Transformers without normalization (Dynamic Tanh).

* :class:`Squash` and :class:`Variant`: the ablations of Zhu, Chen, He, LeCun &
  Liu (2025), section 6: DyT's tanh replaced by the identity, a hardtanh or a
  sigmoid, and its learned slope ``alpha`` fixed at 1;
* :func:`ablation_sweep`: every variant trained on chapter 7's task at every
  learning rate and seed, as one batched sweep per variant;
* :func:`norm_points` and :func:`tail_gain`: LayerNorm's input against its
  output, the S shape the paper starts from, and a number for how S-shaped a
  cloud of points is; :func:`heavy_tailed_rows` makes synthetic rows whose
  extreme channels bend the cloud;
* :func:`saturation_during_training`: the share of DyT's inputs whose
  :math:`|\alpha x|` exceeds a threshold, step by step;
* :func:`data_regime`: LayerNorm against DyT when the training data is a small
  pool seen again and again, and when every batch is new.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .. import functional as CF
from .._checks import (
    check_bool,
    check_choice,
    check_instance,
    check_int,
    check_real,
    check_seed,
    check_seeds,
    check_sequence,
)
from ..norms import DynamicTanh, LayerNorm
from ..profiling import count_passes
from .ch07_prenorm_vs_postnorm import (
    ModelConfig,
    TaskConfig,
    TinyLM,
    heldout_loss,
    make_model,
    schedule_factors,
    sweep_runs,
    training_batches,
)
from .ch08_rmsnorm import SPEED_EPS, SPEED_SHAPE, _check_shape, _no_fill
from .common import in_processes, stream_seed

__all__ = [
    "SQUASHES",
    "AblationResult",
    "Saturation",
    "Squash",
    "Variant",
    "ablation_sweep",
    "build",
    "data_regime",
    "dyt_passes",
    "fit_tanh",
    "heavy_tailed_rows",
    "norm_points",
    "saturation_during_training",
    "tail_gain",
]

#: The element-wise functions of the paper's Table 7, in its order.
SQUASHES: tuple[str, ...] = ("identity", "tanh", "hardtanh", "sigmoid")

_FUNCTIONS = {
    "identity": lambda z: z,
    "tanh": torch.tanh,
    "hardtanh": nn.functional.hardtanh,  # clamp to [-1, 1]
    "sigmoid": torch.sigmoid,
}


class Squash(nn.Module):
    r"""DyT with another element-wise function, and with its slope learned or fixed.

    .. math:: y = \gamma \odot f(\alpha x) + \beta, \qquad f \in
        \{\text{identity}, \tanh, \text{hardtanh}, \text{sigmoid}\}

    With ``f = tanh`` and ``learn_alpha=True`` this is
    :class:`~course_lib.norms.DynamicTanh`, parameter for parameter. With
    ``learn_alpha=False``, ``alpha`` is a buffer fixed at ``alpha_init`` (the
    paper's "without alpha" is ``alpha_init = 1``, :math:`f(x)` itself). The
    identity keeps :math:`\alpha`: it is then a learned scalar gain with nothing
    bounded, the closest a DyT network comes to having no normalization.

    Shape:
        input ``(*, *normalized_shape)``; output the same.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        fn: str = "tanh",
        alpha_init: float = 0.5,
        learn_alpha: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.fn = check_choice(fn, "fn", SQUASHES)
        alpha_init = check_real(alpha_init, "alpha_init", minimum=0.0)
        self.learn_alpha = check_bool(learn_alpha, "learn_alpha")
        # DynamicTanh validates the shape and the factory arguments, and makes
        # weight and bias as the authors' module does
        inner = DynamicTanh(
            normalized_shape, alpha_init, device=device, dtype=dtype
        )
        self.normalized_shape = inner.normalized_shape
        alpha = inner.alpha.detach().clone()
        if self.learn_alpha:
            self.alpha = nn.Parameter(alpha)
        else:
            self.register_buffer("alpha", alpha)
        self.weight = inner.weight
        self.bias = inner.bias

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.weight * _FUNCTIONS[self.fn](self.alpha * input) + self.bias

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, fn={self.fn!r}, "
            f"learn_alpha={self.learn_alpha}"
        )


@dataclass(frozen=True)
class Variant:
    """One architecture of the ablations: a :class:`ModelConfig`, and for a DyT
    model which element-wise function replaces the tanh and whether ``alpha``
    learns.

    ``squash=None`` trains ``config`` as it is (LayerNorm, RMSNorm or DyT); any
    other value needs ``config.block.norm == "dyt"`` and swaps every DyT for a
    :class:`Squash` of that function, starting at the config's ``alpha_init`` (or
    fixed at it, ``learn_alpha=False``).

    Shape:
        see :class:`~course_lib.experiments.ch07_prenorm_vs_postnorm.TinyLM`.
    """

    config: ModelConfig
    squash: str | None = None
    learn_alpha: bool = True

    def __post_init__(self) -> None:
        check_instance(self.config, "config", ModelConfig)
        if self.squash is not None:
            check_choice(self.squash, "squash", SQUASHES)
            if self.config.block.norm != "dyt":
                raise ValueError(
                    "squash needs a config with norm='dyt', got norm="
                    f"{self.config.block.norm!r}"
                )
        check_bool(self.learn_alpha, "learn_alpha")
        if not self.learn_alpha and self.squash is None:
            raise ValueError("learn_alpha=False needs a squash (e.g. 'tanh')")


def _swap(module: nn.Module, fn: str, learn_alpha: bool) -> None:
    for name, child in module.named_children():
        if isinstance(child, DynamicTanh):
            p = child.alpha
            new = Squash(
                child.normalized_shape,
                fn,
                child.alpha_init,
                learn_alpha,
                device=p.device,
                dtype=p.dtype,
            )
            setattr(module, name, new)
        else:
            _swap(child, fn, learn_alpha)


def build(task: TaskConfig, variant: Variant, seed: int) -> TinyLM:
    r""":func:`~course_lib.experiments.ch07_prenorm_vs_postnorm.make_model` of the
    variant's config, with its DyT layers swapped for :class:`Squash` where the
    variant says so.

    .. math:: \theta_0 \text{ as } \texttt{make\_model}(\text{task}, \text{config},
        s); \quad \mathrm{DyT} \to \gamma \odot f(\alpha x) + \beta

    Every other weight is the one ``make_model`` draws for the seed, so the
    variants of one seed differ in the element-wise function only.

    Shape:
        see :class:`~course_lib.experiments.ch07_prenorm_vs_postnorm.TinyLM`.
    """
    check_instance(variant, "variant", Variant)
    model = make_model(task, variant.config, seed)
    if variant.squash is not None:
        _swap(model, variant.squash, variant.learn_alpha)
    return model


@dataclass(frozen=True)
class AblationResult:
    """Losses of :func:`ablation_sweep`: ``losses[(variant, rate)]`` holds one row
    per seed (``nan`` after a run stopped on a non-finite loss).

    Shape:
        losses[key] ``(S, steps)``.
    """

    losses: dict[tuple[str, float], torch.Tensor]
    rates: tuple[float, ...]
    seeds: tuple[int, ...]
    floor: float
    unigram: float

    def final(self, name: str, *, last: int = 10) -> torch.Tensor:
        r"""Held-out loss of every run: the mean of its last ``last`` losses, each
        on a batch it had never seen (every batch is new); ``inf`` for a run that
        stopped.

        .. math:: \bar{\mathcal{L}}_{r,s} = \frac{1}{k}\sum_{t=T-k}^{T-1}
            \mathcal{L}_{r,s,t}

        Shape:
            output ``(len(rates), S)`` float64.
        """
        check_int(last, "last")
        rows = []
        for rate in self.rates:
            if (name, rate) not in self.losses:
                raise ValueError(
                    f"name must be one of the sweep's variants, got {name!r}"
                )
            tail = self.losses[(name, rate)][:, -last:].mean(dim=1)
            rows.append(torch.where(torch.isfinite(tail), tail, math.inf))
        return torch.stack(rows)

    def best(self, name: str, *, last: int = 10) -> tuple[float, torch.Tensor]:
        r"""The learning rate whose mean held-out loss over the seeds is lowest, and
        that rate's loss per seed.

        .. math:: r^\star = \arg\min_r \tfrac{1}{S}\sum_s \bar{\mathcal{L}}_{r,s}

        Shape:
            returns ``(rate, (S,) losses)``.
        """
        final = self.final(name, last=last)
        k = int(final.mean(dim=1).argmin())
        return self.rates[k], final[k]


def _architecture(variant: Variant) -> tuple:
    """Variants with equal keys build models of one architecture (their DyT slopes
    may start apart), which can train as one batched sweep."""
    config = variant.config
    block = replace(config.block, alpha_init=0.5)
    return (replace(config, block=block), variant.squash, variant.learn_alpha)


def _train_runs(
    task: TaskConfig,
    runs: list[tuple[Variant, float, int]],
    steps: int,
    warmup: int,
    betas: tuple[float, float],
) -> torch.Tensor:
    """Losses ``(len(runs), steps)`` of ``(variant, peak rate, seed)`` runs whose
    variants share one architecture, trained as one sweep."""
    factors = schedule_factors(warmup, steps)
    data = {s: training_batches(task, s, steps) for s in {s for _, _, s in runs}}
    models = [build(task, v, s) for v, _, s in runs]
    lr = torch.stack([r * factors for _, r, _ in runs])  # (M, steps)
    batches = torch.stack([data[s] for _, _, s in runs])  # (M, steps, B, T)
    return sweep_runs(models, batches, lr, betas=betas)


def ablation_sweep(
    task: TaskConfig,
    variants: Mapping[str, Variant],
    rates: Sequence[float],
    seeds: Sequence[int],
    *,
    steps: int,
    warmup: int = 0,
    betas: tuple[float, float] = (0.9, 0.98),
    chunk: int = 24,
    processes: int | None = None,
) -> AblationResult:
    r"""Train every (variant, peak learning rate, seed); return the losses.

    .. math:: \eta_{r,t} = r \cdot f_t \quad \text{(}f_t\text{ of
        :func:`~course_lib.experiments.ch07_prenorm_vs_postnorm.schedule_factors`)}

    Per seed every variant starts from the same weights (see :func:`build`) and
    sees the same batches, so the variants differ only in their norm. Variants of
    one architecture (DyT at several ``alpha_init``, say) train together as one
    batched sweep (:func:`~course_lib.experiments.ch07_prenorm_vs_postnorm.\
    sweep_runs`) of at most ``chunk`` runs, and the sweeps share the cores
    (:func:`~course_lib.experiments.common.in_processes`, with ``processes``): the
    same losses, bit for bit, as the same sweeps run one after another.

    Shape:
        see :class:`AblationResult`.
    """
    check_instance(task, "task", TaskConfig)
    if not isinstance(variants, Mapping) or not variants:
        raise TypeError("variants must be a non-empty mapping name -> Variant")
    for v in variants.values():
        check_instance(v, "variants' values", Variant)
    rates = tuple(
        check_real(r, "rates", minimum=0.0)
        for r in check_sequence(rates, "rates", "positive numbers")
    )
    seeds = tuple(check_seeds(seeds))
    check_int(steps, "steps")
    check_int(warmup, "warmup", minimum=0)
    chunk = check_int(chunk, "chunk")
    groups: dict[tuple, list[tuple[str, float, int]]] = {}
    for name, v in variants.items():
        runs = groups.setdefault(_architecture(v), [])
        runs.extend((name, r, s) for r in rates for s in seeds)
    # each architecture's runs in about equal pieces of at most `chunk`
    pieces = []
    for runs in groups.values():
        n = math.ceil(len(runs) / chunk)
        size = math.ceil(len(runs) / n)
        pieces += [runs[i : i + size] for i in range(0, len(runs), size)]
    jobs = [
        (
            _train_runs,
            (
                task,
                [(variants[n], r, s) for n, r, s in piece],
                steps,
                warmup,
                betas,
            ),
            {},
        )
        for piece in pieces
    ]
    rows: dict[tuple[str, float, int], torch.Tensor] = {}
    for piece, curves in zip(
        pieces, in_processes(jobs, processes=processes), strict=True
    ):
        rows.update(zip(piece, curves, strict=True))
    losses = {
        (name, r): torch.stack([rows[(name, r, s)] for s in seeds])
        for name in variants
        for r in rates
    }
    source = task.source()
    return AblationResult(
        losses, rates, seeds, source.entropy_rate, source.unigram_entropy
    )


# --------------------------------------------------------------- the S shape


def norm_points(
    model: TinyLM, tokens: torch.Tensor, layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""What the first LayerNorm of block ``layer`` receives and what it makes of
    it, before its affine part.

    .. math:: x \mapsto \hat{x} = \frac{y - \beta}{\gamma}, \qquad y =
        \text{the module's output}

    Both are read off the running model with a forward hook; the module's
    :math:`\gamma` and :math:`\beta` are divided out of its output (a
    :math:`\gamma` of exactly 0 would lose the feature; training does not produce
    one). The paper plots exactly these pairs (Zhu et al. 2025, Figure 2): one
    point per (token, channel).

    Shape:
        tokens ``(B, T)``; returns ``x`` and ``x_hat``, each ``(B * T, d_model)``.
    """
    check_instance(model, "model", TinyLM)
    blocks = model.stack.layers
    check_int(layer, "layer", minimum=0)
    if layer >= len(blocks):
        raise ValueError(f"layer must be < {len(blocks)}, got {layer}")
    norm = blocks[layer].norm1
    if not isinstance(norm, LayerNorm):
        raise ValueError("norm_points needs a model whose blocks use LayerNorm")
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = norm.register_forward_hook(
        lambda m, args, out: seen.append((args[0], out))
    )
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        handle.remove()
    x, y = seen[0]
    d = x.shape[-1]
    y = y.reshape(-1, d)  # (B * T, d)
    if norm.bias is not None:
        y = y - norm.bias.detach()
    if norm.weight is not None:
        y = y / norm.weight.detach()
    return x.reshape(-1, d), y


def tail_gain(x: torch.Tensor, y: torch.Tensor, *, tail: float = 0.01) -> float:
    r"""How much a cloud of points :math:`(x, y)` bends at its ends: the gain
    :math:`y/x` of the most extreme inputs over the gain of the central half.

    .. math:: g = \frac{\operatorname{mean}_{|x| \ge q_{1-\tau}} (y / x)}
        {\sum_{|x| \le q_{1/2}} x y \,/\, \sum_{|x| \le q_{1/2}} x^2}

    where :math:`q_p` is the :math:`p` quantile of :math:`|x|` and :math:`\tau`
    is ``tail``. A straight line through the origin has :math:`g = 1`; a tanh
    flattens its ends, :math:`g < 1`. Both clouds are centred first (``x`` and
    ``y`` minus their means), so a shift does not count as a bend.

    Shape:
        ``x`` and ``y`` of one shape; returns a float.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be tensors")
    if x.shape != y.shape or x.numel() < 8:
        raise ValueError("x and y must have one shape, with at least 8 points")
    check_real(tail, "tail", minimum=0.0)
    if not tail < 0.5:
        raise ValueError(f"tail must be in (0, 0.5), got {tail}")
    x = (x - x.mean()).flatten().to(torch.float64)
    y = (y - y.mean()).flatten().to(torch.float64)
    size = x.abs()
    centre = size <= torch.quantile(size, 0.5)
    slope = (x[centre] * y[centre]).sum() / (x[centre] ** 2).sum()
    ends = size >= torch.quantile(size, 1.0 - tail)
    return float((y[ends] / x[ends]).mean() / slope)


def fit_tanh(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    r"""The curve :math:`\gamma \tanh(\alpha x)` closest to a cloud of points, in
    least squares: what one DyT layer would need to imitate it.

    .. math:: (\alpha^\star, \gamma^\star) = \arg\min_{\alpha, \gamma}
        \sum_i \big(y_i - \gamma \tanh(\alpha x_i)\big)^2, \qquad
        \gamma^\star(\alpha) = \frac{\sum_i y_i t_i}{\sum_i t_i^2},\ t_i =
        \tanh(\alpha x_i)

    :math:`\alpha` is searched on 400 values spaced evenly in
    :math:`\log\alpha` from :math:`10^{-3}` to :math:`10^{2}` (in units of
    :math:`1/\mathrm{std}(x)`), :math:`\gamma` solved for each. Returns
    :math:`\alpha^\star`, :math:`\gamma^\star` and the root mean square of the
    residual.

    Shape:
        ``x`` and ``y`` of one shape; returns three floats.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be tensors")
    if x.shape != y.shape or x.numel() < 2:
        raise ValueError("x and y must have one shape, with at least 2 points")
    x = x.flatten().to(torch.float64)
    y = y.flatten().to(torch.float64)
    alphas = torch.logspace(-3, 2, 400, dtype=torch.float64) / x.std()
    t = torch.tanh(alphas[:, None] * x)  # (400, N)
    gammas = (t * y).sum(dim=1) / (t * t).sum(dim=1)
    errors = ((y - gammas[:, None] * t) ** 2).mean(dim=1)
    k = int(errors.argmin())
    return float(alphas[k]), float(gammas[k]), float(errors[k].sqrt())


def heavy_tailed_rows(
    n: int,
    d: int,
    *,
    extreme_channels: int = 2,
    extreme_scale: float = 10.0,
    extreme_share: float = 0.1,
    seed: int = 0,
) -> torch.Tensor:
    r"""Synthetic token rows: standard normal channels, where a share of tokens
    carry a few channels ``extreme_scale`` times larger.

    .. math:: x_{ij} \sim \mathcal{N}(0, 1), \qquad x_{ij} \leftarrow s\,x_{ij}
        \text{ for } j < k \text{ and } i \in \text{the extreme tokens}

    Large activations concentrated in a few channels of a few tokens are what the
    paper's Figure 4 colours; with ``extreme_share=0`` every token is alike.

    Shape:
        output ``(n, d)`` float64.
    """
    check_int(n, "n")
    check_int(d, "d", minimum=2)
    check_int(extreme_channels, "extreme_channels", minimum=0)
    if extreme_channels >= d:
        raise ValueError(
            f"extreme_channels must be < d = {d}, got {extreme_channels}"
        )
    check_real(extreme_scale, "extreme_scale", minimum=0.0)
    check_real(extreme_share, "extreme_share", minimum=0.0, strict=False)
    if extreme_share > 1:
        raise ValueError(f"extreme_share must be in [0, 1], got {extreme_share}")
    g = torch.Generator().manual_seed(stream_seed(check_seed(seed), "synthetic"))
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    extreme = torch.rand(n, generator=g, dtype=torch.float64) < extreme_share
    x[extreme, :extreme_channels] *= extreme_scale
    return x


# --------------------------------------------------------------- saturation


@dataclass(frozen=True)
class Saturation:
    """What :func:`saturation_during_training` records, every ``every`` steps.

    Shape:
        steps ``(K,)``; share, alpha and inv_std ``(S, K)``, one row per seed.
    """

    steps: torch.Tensor  # the steps measured
    share: torch.Tensor  # share of DyT inputs with |alpha x| > threshold
    alpha: torch.Tensor  # mean slope alpha of the model's DyT layers
    inv_std: torch.Tensor  # mean over the DyT layers of 1 / std of their input


def saturation_during_training(
    task: TaskConfig,
    config: ModelConfig,
    seeds: Sequence[int],
    *,
    rate: float,
    steps: int,
    every: int,
    threshold: float = 2.0,
    warmup: int = 0,
    betas: tuple[float, float] = (0.9, 0.98),
) -> Saturation:
    r"""Train a DyT model once per seed; every ``every`` steps, the share of the
    inputs of its DyT layers in the tanh's flat part, their slopes ``alpha`` and
    the scale of their inputs.

    .. math:: \text{share}_t = \frac{\#\{|\alpha x| > c\}}{\#\{x\}},
        \qquad \overline{1/\mathrm{std}} = \frac{1}{L}\sum_\ell
        \frac{1}{\mathrm{std}(x_\ell)}

    over every input element of that step's batch, :math:`c` = ``threshold``
    (the measure of arXiv 2604.23434's released code, :math:`c = 2`; :math:`\tanh
    2 = 0.964`, and beyond it an input's gradient through the tanh is below
    :math:`1 - \tanh^2 2 = 0.071` of its value at 0). Zhu et al. (2025, Figure 8)
    find that :math:`\alpha` tracks :math:`1/\mathrm{std}` of the input.

    Shape:
        see :class:`Saturation`; ``K = ceil(steps / every)``.
    """
    check_instance(config, "config", ModelConfig)
    if config.block.norm != "dyt":
        raise ValueError(f"config must use norm='dyt', got {config.block.norm!r}")
    seeds = tuple(check_seeds(seeds))
    check_real(rate, "rate", minimum=0.0)
    check_int(steps, "steps")
    check_int(every, "every")
    check_real(threshold, "threshold", minimum=0.0)
    data = torch.stack([training_batches(task, s, steps) for s in seeds])
    at = list(range(0, steps, every))
    shares, alphas, inv_std = (
        torch.zeros(len(seeds), len(at), dtype=torch.float64) for _ in range(3)
    )

    def on_step(step: int, i: int, model: nn.Module) -> None:
        if step % every:
            return
        layers = [m for m in model.modules() if isinstance(m, DynamicTanh)]
        seen: list[torch.Tensor] = []
        hooks = [
            m.register_forward_hook(lambda m, args, out: seen.append(args[0]))
            for m in layers
        ]
        try:
            with torch.no_grad():
                model(data[i, step, :, :-1])
        finally:
            for h in hooks:
                h.remove()
        k = step // every
        scaled = [(m.alpha * x).abs() for m, x in zip(layers, seen, strict=True)]
        big = sum(int((z > threshold).sum()) for z in scaled)
        shares[i, k] = big / sum(z.numel() for z in scaled)
        alphas[i, k] = torch.cat([m.alpha.detach() for m in layers]).mean()
        inv_std[i, k] = torch.stack([1 / x.std() for x in seen]).mean()

    models = [make_model(task, config, s) for s in seeds]
    lr = torch.stack([rate * schedule_factors(warmup, steps) for _ in seeds])
    sweep_runs(models, data, lr, betas=betas, on_step=on_step)
    return Saturation(torch.tensor(at), shares, alphas, inv_std)


# --------------------------------------------------------------- data regimes


def data_regime(
    task: TaskConfig,
    configs: Mapping[str, ModelConfig],
    pools: Sequence[int | None],
    seeds: Sequence[int],
    *,
    rate: float,
    steps: int,
    warmup: int = 0,
    betas: tuple[float, float] = (0.9, 0.98),
    n_heldout: int = 512,
) -> dict[tuple[str, int | None], torch.Tensor]:
    r"""Held-out loss after training on a pool of ``P`` sequences, seen again and
    again, or on new sequences every step (``P = None``).

    .. math:: \text{batch}_t = \text{pool}[(tB \ldots tB + B - 1) \bmod P]

    The pool is the first ``P`` training sequences of the seed; the held-out
    loss is :func:`~course_lib.experiments.ch07_prenorm_vs_postnorm.heldout_loss`
    on ``n_heldout`` sequences no run trains on. With a small pool the model can
    memorize its data, and the held-out loss measures how well it generalizes.

    Shape:
        returns ``{(name, P): (S,) held-out losses}``.
    """
    check_instance(task, "task", TaskConfig)
    if not isinstance(configs, Mapping) or not configs:
        raise TypeError("configs must be a non-empty mapping name -> ModelConfig")
    pools = tuple(
        None if p is None else check_int(p, "pools")
        for p in check_sequence(pools, "pools", "ints or None")
    )
    seeds = tuple(check_seeds(seeds))
    check_real(rate, "rate", minimum=0.0)
    check_int(steps, "steps")
    check_int(warmup, "warmup", minimum=0)
    check_int(n_heldout, "n_heldout")
    for config in configs.values():
        check_instance(config, "configs' values", ModelConfig)
    most = steps * task.batch_size
    for p in pools:
        if p is not None and p > most:
            raise ValueError(f"pools must be at most {most}, got {p}")
    grid = [(p, s) for p in pools for s in seeds]
    args = (task, grid, rate, steps, warmup, betas, n_heldout)
    jobs = [(_regime_runs, (config, *args), {}) for config in configs.values()]
    out: dict[tuple[str, int | None], torch.Tensor] = {}
    for name, losses in zip(configs, in_processes(jobs), strict=True):
        for k, pool in enumerate(pools):
            out[(name, pool)] = losses[k * len(seeds) : (k + 1) * len(seeds)]
    return out


def _regime_runs(
    config: ModelConfig,
    task: TaskConfig,
    grid: list[tuple[int | None, int]],
    rate: float,
    steps: int,
    warmup: int,
    betas: tuple[float, float],
    n_heldout: int,
) -> torch.Tensor:
    """Held-out losses ``(len(grid),)`` of one config trained on each (pool, seed)
    of ``grid`` (see :func:`data_regime`), as one sweep."""
    b = task.batch_size

    def batches(seed: int, pool: int | None) -> torch.Tensor:
        fresh = training_batches(task, seed, steps)  # (steps, B, T)
        if pool is None:
            return fresh
        seqs = fresh.reshape(-1, task.seq_len)[:pool]  # the first `pool` sequences
        return seqs[torch.arange(steps * b) % pool].view(steps, b, task.seq_len)

    models = [make_model(task, config, s) for _, s in grid]
    data = torch.stack([batches(s, p) for p, s in grid])  # (M, steps, B, T)
    factors = schedule_factors(warmup, steps)
    sweep_runs(
        models, data, torch.stack([rate * factors for _ in grid]), betas=betas
    )
    return torch.tensor(
        [
            heldout_loss(m, task, seed=s, n_sequences=n_heldout)
            for m, (_, s) in zip(models, grid, strict=True)
        ],
        dtype=torch.float64,
    )


# --------------------------------------------------------------- passes over memory


def dyt_passes(
    shape: tuple[int, ...] = SPEED_SHAPE,
) -> dict[str, tuple[float, float]]:
    """Passes over memory of DyT against torch's LayerNorm, forward and forward +
    backward, counted from a profile (:func:`course_lib.profiling.count_passes`).

    The four calls, on one float32 input of ``shape`` with a weight and a bias
    that take gradients: ``F.layer_norm`` (torch's fused kernel), an RMSNorm
    written out as LLaMA's reference code writes it (eager, unfused: the kind of
    norm Zhu et al. time DyT against, uncompiled), the authors' expression
    ``torch.tanh(alpha * x) * weight + bias`` as eager PyTorch runs it, and
    :func:`course_lib.functional.dynamic_tanh`.

    Args:
        shape (sequence of int): the input's shape; its last dimension is the
            features. Default: chapter 8's ``SPEED_SHAPE``, (8, 512, 1024).

    Returns:
        dict: name -> (forward passes, forward + backward passes).
    """
    shape = _check_shape(shape)
    n, d = math.prod(shape[:-1]), shape[-1]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).requires_grad_()  # (B, T, C)
    grad_y = torch.randn(shape, generator=gen)
    weight = (1 + 0.1 * torch.randn(d, generator=gen)).requires_grad_()
    bias = (0.1 * torch.randn(d, generator=gen)).requires_grad_()
    alpha = torch.full((1,), 0.5).requires_grad_()
    forward = {
        "F.layer_norm": (
            lambda: F.layer_norm(x, (d,), weight, bias, SPEED_EPS),
            (x, weight, bias),
        ),
        "x * rsqrt(mean(x^2) + eps) * weight": (
            lambda: (
                x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight
            ),
            (x, weight),
        ),
        "tanh(alpha * x) * weight + bias": (
            lambda: torch.tanh(alpha * x) * weight + bias,
            (x, alpha, weight, bias),
        ),
        "course_lib dynamic_tanh": (
            lambda: CF.dynamic_tanh(x, alpha, weight, bias),
            (x, alpha, weight, bias),
        ),
    }
    out = {}
    with _no_fill():
        for name, (fn, wrt) in forward.items():
            both = lambda fn=fn, wrt=wrt: torch.autograd.grad(fn(), wrt, grad_y)  # noqa: E731
            out[name] = (count_passes(fn, n, d), count_passes(both, n, d))
    return out
