r"""Chapter 7's experiments: where the LayerNorm goes, Post-LN or Pre-LN.

Everything here is small enough to run in seconds on two CPU cores:

* a random order-1 **Markov source** (:class:`MarkovSource`), a language-like task
  whose best possible loss, the entropy rate, is known exactly;
* a tiny causal language model (:class:`TinyLM`): token embedding, a
  :class:`~course_lib.transformer.TransformerStack` with a causal mask, a linear
  head;
* **gradients at initialization** per layer and per depth, as in Xiong et al. (2020)
  (:func:`init_statistics`, :func:`depth_sweep`);
* the **warmup** runs: Adam at a high learning rate, with and without a linear
  warmup (:func:`train_lm`, :func:`warmup_experiment`);
* the size of the **residual stream** per layer (:func:`hidden_rms`);
* the chapter's figures (``plot_*``), each returning ``(fig, ax)``.

Post-LN and Pre-LN models built with the same seed start from *identical* weights:
the two placements have the same parameters, and LayerNorm's ``weight = 1``,
``bias = 0`` draw no random numbers. Only where the normalization sits differs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .._checks import (
    check_instance,
    check_int,
    check_seed,
    check_seeds,
    check_stochastic_matrix,
)
from ..plotting import color
from ..transformer import BlockConfig, TransformerStack
from .common import default_dtype, stream_seed, train_sweep

__all__ = [
    "PLACEMENTS",
    "InitStats",
    "MarkovSource",
    "ModelConfig",
    "TaskConfig",
    "TinyLM",
    "WarmupResult",
    "causal_mask",
    "depth_sweep",
    "entropy_rate",
    "heldout_loss",
    "hidden_rms",
    "init_statistics",
    "loglog_slope",
    "make_model",
    "next_token_loss",
    "plot_depth_trend",
    "plot_layer_gradients",
    "plot_loss_curves",
    "plot_residual_rms",
    "schedule_factors",
    "stationary_distribution",
    "train_lm",
    "training_batches",
    "warmup_experiment",
    "warmup_linear_decay",
]

#: The two placements: name -> ``norm_first`` (the switch's name in
#: ``nn.TransformerEncoderLayer`` and :class:`~course_lib.transformer.BlockConfig`).
PLACEMENTS: dict[str, bool] = {"Post-LN": False, "Pre-LN": True}


# ----------------------------------------------------------------------------------
# The task: a random order-1 Markov source and its loss floor
# ----------------------------------------------------------------------------------


def stationary_distribution(transition: torch.Tensor) -> torch.Tensor:
    r"""The distribution :math:`\pi` that one step of the chain leaves unchanged.

    .. math:: \pi^\top P = \pi^\top, \qquad \textstyle\sum_i \pi_i = 1

    Solved as a linear system: ``V - 1`` equations of :math:`(P^\top - I)\pi = 0`
    plus the normalization (unique for an irreducible chain, e.g. one with all
    ``P > 0``).

    Shape:
        transition ``(V, V)``, rows summing to 1; output ``(V,)`` float64.
    """
    p = check_stochastic_matrix(transition, "transition")
    v = p.shape[0]
    a = p.T - torch.eye(v, dtype=torch.float64)  # (V, V)
    a[-1] = 1.0  # replace one (redundant) equation by sum(pi) = 1
    rhs = torch.zeros(v, dtype=torch.float64)
    rhs[-1] = 1.0
    pi = torch.linalg.solve(a, rhs)
    if bool((pi < -1e-12).any()):
        raise ValueError(
            "transition has no unique stationary distribution (not irreducible)"
        )
    return pi.clamp_min(0.0) / pi.clamp_min(0.0).sum()


def entropy_rate(transition: torch.Tensor) -> float:
    r"""Entropy rate of a stationary order-1 Markov chain, in nats per symbol.

    .. math:: H = -\sum_i \pi_i \sum_j P_{ij} \log P_{ij}

    It is the smallest expected cross-entropy any predictor of the next symbol can
    reach on sequences drawn from the chain started in :math:`\pi`: the loss floor.

    Shape:
        transition ``(V, V)``; output a float.
    """
    p = check_stochastic_matrix(transition, "transition")
    pi = stationary_distribution(p)
    row_entropy = -torch.xlogy(p, p).sum(dim=1)  # (V,): H(next | current = i)
    return float((pi * row_entropy).sum())


@dataclass(frozen=True)
class MarkovSource:
    r"""A stationary order-1 Markov source over ``V`` symbols.

    .. math:: x_0 \sim \pi, \qquad x_{t+1} \mid x_t = i \;\sim\; P_{i,:}

    ``entropy_rate`` is the loss floor of next-symbol prediction;
    ``unigram_entropy`` (:math:`-\sum_i \pi_i \log \pi_i`) is the loss of the best
    predictor that ignores the context, the level at which a model that has learned
    nothing but symbol frequencies sits.

    Shape:
        transition ``(V, V)`` float64; :meth:`sample` returns ``(B, length)`` int64.
    """

    transition: torch.Tensor
    stationary: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p = check_stochastic_matrix(self.transition, "transition")
        object.__setattr__(self, "transition", p)
        object.__setattr__(self, "stationary", stationary_distribution(p))

    @classmethod
    def random(
        cls, vocab_size: int, concentration: float, seed: int
    ) -> MarkovSource:
        r"""A source whose rows are drawn from a symmetric
        Dirichlet(``concentration``).

        .. math:: P_{i,:} \sim \mathrm{Dirichlet}(\alpha, \dots, \alpha)

        :math:`\alpha < 1` gives peaked rows (a few likely next symbols). Entries
        are
        floored at 1e-12 and the rows renormalized, so every transition stays
        possible and the chain has a unique stationary distribution.

        Shape:
            a source with ``transition`` ``(vocab_size, vocab_size)``.
        """
        check_int(vocab_size, "vocab_size")
        if isinstance(concentration, bool) or not isinstance(
            concentration, (int, float)
        ):
            raise TypeError(
                f"concentration must be a real number, got {concentration!r}"
            )
        if not (math.isfinite(concentration) and concentration > 0):
            raise ValueError(
                f"concentration must be finite and > 0, got {concentration}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        rng = np.random.default_rng(seed)
        rows = rng.dirichlet(
            np.full(vocab_size, float(concentration)), size=vocab_size
        )
        # keep every transition possible (irreducible)
        rows = np.maximum(rows, 1e-12)
        rows /= rows.sum(axis=1, keepdims=True)
        return cls(torch.from_numpy(rows))

    @property
    def vocab_size(self) -> int:
        """Number of symbols ``V``."""
        return int(self.transition.shape[0])

    @property
    def entropy_rate(self) -> float:
        r"""The loss floor :math:`H = -\sum_i \pi_i \sum_j P_{ij} \log P_{ij}`
        (nats)."""
        return entropy_rate(self.transition)

    @property
    def unigram_entropy(self) -> float:
        r"""The no-context level :math:`H(\pi) = -\sum_i \pi_i \log \pi_i`
        (nats)."""
        return float(-torch.xlogy(self.stationary, self.stationary).sum())

    def sample(
        self, batch_size: int, length: int, generator: torch.Generator
    ) -> torch.Tensor:
        r"""``batch_size`` sequences of ``length`` symbols, each started in
        ``stationary``.

        .. math:: x_{b,0} \sim \pi, \qquad x_{b,t+1} \sim P_{x_{b,t},:}

        Shape:
            output ``(batch_size, length)`` int64.
        """
        check_int(batch_size, "batch_size")
        check_int(length, "length")
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                "generator must be a torch.Generator, got "
                f"{type(generator).__name__}"
            )
        x = torch.empty(batch_size, length, dtype=torch.long)  # (B, length)
        x[:, 0] = torch.multinomial(
            self.stationary, batch_size, True, generator=generator
        )
        for t in range(length - 1):
            rows = self.transition[x[:, t]]  # (B, V): the next-symbol distributions
            x[:, t + 1] = torch.multinomial(rows, 1, generator=generator)[:, 0]
        return x

    def cross_entropy(self, tokens: torch.Tensor) -> float:
        r"""Mean loss of the true model on ``tokens``: an estimate of
        ``entropy_rate``.

        .. math:: -\frac{1}{B(T-1)} \sum_{b,t} \log P_{x_{b,t},\, x_{b,t+1}}

        Shape:
            tokens ``(B, T)`` int64, ``T >= 2``; output a float (nats per symbol).
        """
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long:
            raise TypeError("tokens must be a torch.long tensor of symbols")
        if tokens.dim() != 2 or tokens.shape[1] < 2:
            raise ValueError(
                f"tokens must have shape (B, T >= 2), got {tuple(tokens.shape)}"
            )
        probs = self.transition[tokens[:, :-1], tokens[:, 1:]]  # (B, T - 1)
        return float(-probs.log().mean())


# ----------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------


def causal_mask(length: int) -> torch.Tensor:
    r"""Boolean causal mask, True where query ``i`` may attend to key ``j``:
    ``j <= i``.

    Shape:
        output ``(length, length)`` bool, lower triangular.
    """
    check_int(length, "length")
    return torch.ones(length, length, dtype=torch.bool).tril()


@dataclass(frozen=True)
class TaskConfig:
    r"""The chapter's task and model sizes: tiny, so that every run takes about a
    second.

    .. math:: \text{task} = \text{MarkovSource.random}(V, \alpha, \text{seed}),
        \quad \text{model width } d, \text{ heads } h, \text{ FFN width } d_{ff}

    Shape:
        training batches ``(batch_size, seq_len)`` int64.
    """

    vocab_size: int = 16  # symbols of the Markov source
    # Dirichlet concentration of each row: < 1, peaked rows
    concentration: float = 0.3
    source_seed: int = 0  # which random source (the same one for every run)
    d_model: int = 32  # width of the residual stream
    n_heads: int = 2  # 16 dims per head
    d_ff: int = 128  # 4 x d_model, as in the original Transformer
    seq_len: int = 16  # symbols per training sequence (predicting 15 next symbols)
    batch_size: int = 16  # sequences per step (240 next-symbol predictions)
    # Every run trains in float64: a training run amplifies round-off from step to
    # step, and in float32 it reaches the printed digits, which then differ between
    # processors whose kernels add in another order. In float64 it stays far below
    # them.
    dtype: torch.dtype = torch.float64

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "d_ff", "batch_size"):
            check_int(getattr(self, name), name)
        if check_int(self.seq_len, "seq_len") < 2:
            raise ValueError(f"seq_len must be >= 2, got {self.seq_len}")

    def source(self) -> MarkovSource:
        """The Markov source every run of the chapter trains on (the same for every
        call).

        Shape:
            see :class:`MarkovSource`.
        """
        return MarkovSource.random(
            self.vocab_size, self.concentration, self.source_seed
        )

    def model(
        self,
        norm_first: bool,
        *,
        n_layers: int = 2,
        norm: str = "layer",
        final_norm: bool | None = None,
    ) -> ModelConfig:
        """The :class:`ModelConfig` of one placement at the task's sizes.

        Every other function of the chapter takes this one object: change a field
        with ``dataclasses.replace`` (``replace(config, n_layers=8)``).

        Shape:
            see :class:`TinyLM`.
        """
        block = BlockConfig(
            d_model=self.d_model,
            n_heads=self.n_heads,
            d_ff=self.d_ff,
            norm=norm,  # type: ignore[arg-type]
            norm_first=norm_first,
        )
        return ModelConfig(block, n_layers, final_norm)


@dataclass(frozen=True)
class ModelConfig:
    """One :class:`TinyLM` architecture: the block, the depth, and the final
    normalization.

    ``final_norm=None`` closes the stack with a normalization exactly when
    ``block.norm_first`` (Pre-LN), as GPT-2 and :class:`nn.TransformerEncoder`
    models do. Frozen and validated once, here; build one with
    :meth:`TaskConfig.model`.

    Shape:
        see :class:`TinyLM`.
    """

    block: BlockConfig
    n_layers: int = 2
    final_norm: bool | None = None

    def __post_init__(self) -> None:
        check_instance(self.block, "block", BlockConfig)
        check_int(self.n_layers, "n_layers")
        if self.final_norm is not None and not isinstance(self.final_norm, bool):
            raise TypeError(
                "final_norm must be a bool or None, got "
                f"{type(self.final_norm).__name__}"
            )


class TinyLM(nn.Module):
    r"""A causal language model: embedding, a Transformer stack, a linear head.

    .. math::
        h_0 = E[x], \qquad h_L = \mathrm{Stack}(h_0;\ \text{causal mask}), \qquad
        \text{logits} = h_L W^\top + b

    ``nn.Embedding`` starts at :math:`\mathcal{N}(0, 1)`, so the residual stream
    enters with RMS about 1, the scale a LayerNorm outputs. A Pre-LN stack ends with
    a final normalization (``final_norm=None`` adds it exactly when
    ``config.norm_first``).

    Shape:
        tokens ``(B, T)`` int64; output logits ``(B, T, vocab_size)``; with
        ``return_hidden=True`` also the ``n_layers + 1`` hidden states
        ``(B, T, d_model)``.
    """

    def __init__(
        self,
        config: BlockConfig,
        n_layers: int,
        vocab_size: int,
        *,
        final_norm: bool | None = None,
    ) -> None:
        super().__init__()
        check_int(vocab_size, "vocab_size")
        self.embedding = nn.Embedding(vocab_size, config.d_model)
        self.stack = TransformerStack(config, n_layers, final_norm=final_norm)
        self.head = nn.Linear(config.d_model, vocab_size)

    def forward(
        self, tokens: torch.Tensor, *, return_hidden: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long:
            raise TypeError("tokens must be a torch.long tensor of symbols")
        if tokens.dim() != 2:
            raise ValueError(
                f"tokens must have shape (B, T), got {tuple(tokens.shape)}"
            )
        h = self.embedding(tokens)  # (B, T, d_model)
        out, hidden = self.stack(
            h, attn_mask=causal_mask(tokens.shape[1]), return_hidden=True
        )
        logits = self.head(out)  # (B, T, V)
        return (logits, hidden) if return_hidden else logits


def make_model(task: TaskConfig, config: ModelConfig, seed: int) -> TinyLM:
    r"""A :class:`TinyLM` of architecture ``config`` for ``task``, weights drawn
    from ``seed``.

    .. math:: \theta_0 \sim \text{PyTorch's default initialization, seeded with } s

    The same ``seed`` gives the same weights for either placement. The global random
    state is left as it was.

    Shape:
        see :class:`TinyLM`.
    """
    check_instance(task, "task", TaskConfig)
    check_instance(config, "config", ModelConfig)
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # weights drawn in task.dtype (see default_dtype)
        with default_dtype(task.dtype):
            return TinyLM(
                config.block,
                config.n_layers,
                task.vocab_size,
                final_norm=config.final_norm,
            )


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r"""Mean cross-entropy of the next-symbol predictions, in nats.

    .. math:: \mathcal{L} =
        -\frac{1}{BT}\sum_{b,t} \log \mathrm{softmax}(z_{b,t})_{y_{b,t}}

    Shape:
        logits ``(B, T, V)``; targets ``(B, T)`` int64; output a scalar.
    """
    if logits.dim() != 3 or tuple(targets.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            "logits must be (B, T, V) and targets (B, T), got "
            f"{tuple(logits.shape)} "
            f"and {tuple(targets.shape)}"
        )
    return nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    )


def hidden_rms(hidden: Sequence[torch.Tensor]) -> torch.Tensor:
    r"""Root-mean-square size of each hidden state: the residual stream's scale per
    layer.

    .. math:: \mathrm{rms}(h_l) = \sqrt{\tfrac{1}{BTd}\textstyle\sum h_l^2}
        = \lVert h_{l,\text{token}} \rVert / \sqrt{d} \text{ on average over tokens}

    A LayerNorm output (``weight = 1``, ``bias = 0``) has RMS 1 (up to ``eps``).

    Shape:
        hidden: ``L + 1`` tensors ``(B, T, d)``; output ``(L + 1,)``.
    """
    if not hidden:
        raise ValueError("hidden must hold at least one tensor")
    return torch.stack([h.detach().pow(2).mean().sqrt() for h in hidden])


# ----------------------------------------------------------------------------------
# Gradients at initialization
# ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InitStats:
    r"""Gradient norms and residual-stream sizes of freshly initialized models.

    ``update_ratio[:, l]`` is the size of block ``l``'s change to the residual
    stream relative to the stream it receives,
    :math:`\mathrm{rms}(h_{l+1} - h_l) / \mathrm{rms}(h_l)`.

    Shape:
        grad_norms ``(S, L)`` (seed, layer); hidden_rms ``(S, L + 1)`` (the input,
        then each block's output); update_ratio ``(S, L)``.
    """

    grad_norms: torch.Tensor
    hidden_rms: torch.Tensor
    update_ratio: torch.Tensor


def init_statistics(
    task: TaskConfig,
    config: ModelConfig,
    seeds: Sequence[int],
    *,
    parameter: str = "linear2.weight",
) -> InitStats:
    r"""Per-layer gradient norm of one batch's loss at initialization, for each
    seed.

    .. math:: g_l
        = \left\lVert \partial \mathcal{L} / \partial W^{(l)} \right\rVert_F

    ``parameter`` names the weight inside each block; the default ``linear2.weight``
    is the second feed-forward matrix, :math:`W^{2,l}` of Xiong et al. (2020), whose
    last-layer gradient their Theorem 1 bounds. ``parameter="all"`` takes the norm
    over all of a block's parameters. Seed ``s`` draws the weights and the batch.

    Shape:
        see :class:`InitStats`: ``(len(seeds), n_layers)`` and
        ``(len(seeds), n_layers + 1)``.
    """
    seeds = check_seeds(seeds)
    if not isinstance(parameter, str):
        raise TypeError(f"parameter must be a str, got {type(parameter).__name__}")
    source = task.source()
    grads, sizes, ratios = [], [], []
    for seed in seeds:
        model = make_model(task, config, seed)
        names = dict(model.stack.layers[0].named_parameters())
        if parameter != "all" and parameter not in names:
            raise ValueError(
                f"parameter must be 'all' or one of {sorted(names)}, got "
                f"{parameter!r}"
            )
        tokens = source.sample(
            task.batch_size, task.seq_len, torch.Generator().manual_seed(seed)
        )
        logits, hidden = model(tokens[:, :-1], return_hidden=True)
        next_token_loss(logits, tokens[:, 1:]).backward()
        per_layer = []
        for layer in model.stack.layers:
            params = dict(layer.named_parameters())
            chosen = params.values() if parameter == "all" else [params[parameter]]
            per_layer.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in chosen)))
        grads.append(torch.stack(per_layer))
        rms = hidden_rms(hidden)  # (L + 1,)
        steps = hidden_rms(
            [b - a for a, b in zip(hidden[:-1], hidden[1:], strict=True)]
        )
        sizes.append(rms)
        ratios.append(steps / rms[:-1])
    return InitStats(torch.stack(grads), torch.stack(sizes), torch.stack(ratios))


def depth_sweep(
    task: TaskConfig,
    config: ModelConfig,
    depths: Sequence[int],
    seeds: Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The last layer's feed-forward gradient, and the last hidden state's RMS, per
    depth.

    ``config`` at each depth: ``replace(config, n_layers=depth)`` (its own
    ``n_layers`` is not used).

    .. math:: g_L = \lVert \partial\mathcal{L} / \partial W^{2,L} \rVert_F,
        \quad \mathrm{rms}(h_L), \qquad L \in \text{depths}

    Shape:
        output two tensors ``(len(seeds), len(depths))``.
    """
    check_instance(config, "config", ModelConfig)
    if (
        isinstance(depths, (str, bytes))
        or not isinstance(depths, Sequence)
        or not depths
    ):
        raise TypeError("depths must be a non-empty sequence of positive ints")
    last_grad, last_rms = [], []
    for depth in depths:
        check_int(depth, "depths")
        stats = init_statistics(task, replace(config, n_layers=depth), seeds)
        last_grad.append(stats.grad_norms[:, -1])
        last_rms.append(stats.hidden_rms[:, -1])
    return torch.stack(last_grad, dim=1), torch.stack(last_rms, dim=1)


def loglog_slope(
    x: Sequence[float] | torch.Tensor, y: Sequence[float] | torch.Tensor
) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x`: the exponent
    ``k``
    of a power law :math:`y \propto x^k` (``k = -1/2`` for :math:`1/\sqrt{L}`).

    Shape:
        x, y ``(n,)`` positive, ``n >= 2``; output a float.
    """
    lx = torch.log(torch.as_tensor(x, dtype=torch.float64))
    ly = torch.log(torch.as_tensor(y, dtype=torch.float64))
    if lx.dim() != 1 or lx.shape != ly.shape or lx.numel() < 2:
        raise ValueError("x and y must be 1-D, of the same length >= 2")
    if not (torch.isfinite(lx).all() and torch.isfinite(ly).all()):
        raise ValueError("x and y must be positive")
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


# ----------------------------------------------------------------------------------
# Training with and without warmup
# ----------------------------------------------------------------------------------


def schedule_factors(warmup_steps: int, total_steps: int) -> torch.Tensor:
    r"""The factors by which :func:`warmup_linear_decay` multiplies the peak rate,
    per step.

    .. math::
        f_s = \min\!\left(1, \frac{s + 1}{s_w}\right)
        \left(1 - \frac{s}{s_{\text{total}}}\right)

    Read off the scheduler itself, so they are exactly the rates a :func:`train_lm`
    run uses at each step (divided by its peak rate).

    Shape:
        output ``(total_steps,)`` float64.
    """
    optimizer = torch.optim.SGD([torch.zeros(1)], lr=1.0)
    scheduler = warmup_linear_decay(optimizer, warmup_steps, total_steps)
    factors = []
    for _ in range(total_steps):
        factors.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return torch.tensor(factors, dtype=torch.float64)


def training_batches(task: TaskConfig, seed: int, steps: int) -> torch.Tensor:
    """The training sequences of every run with seed ``seed``, one batch per step.

    Shape:
        output ``(steps, batch_size, seq_len)`` int64.
    """
    check_instance(task, "task", TaskConfig)
    check_int(steps, "steps")
    batches = torch.Generator().manual_seed(stream_seed(seed, "batches"))
    return (
        task.source()
        .sample(steps * task.batch_size, task.seq_len, batches)
        .view(steps, task.batch_size, task.seq_len)
    )


def warmup_linear_decay(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    r"""Learning-rate schedule: linear warmup, then linear decay towards 0.

    .. math::
        \eta_s = \eta_{\max} \cdot \min\!\left(1, \frac{s + 1}{s_w}\right)
        \cdot \left(1 - \frac{s}{s_{\text{total}}}\right)

    ``warmup_steps = 0`` means no warmup: the first step already uses the full rate
    (times the decay factor, 1 at step 0).

    Shape:
        a scheduler to ``step()`` once per optimizer step.
    """
    if (
        isinstance(warmup_steps, bool)
        or not isinstance(warmup_steps, int)
        or warmup_steps < 0
    ):
        raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
    check_int(total_steps, "total_steps")
    if warmup_steps > total_steps:
        raise ValueError(
            f"warmup_steps ({warmup_steps}) must not exceed total_steps "
            f"({total_steps})"
        )

    def factor(step: int) -> float:
        warm = 1.0 if warmup_steps == 0 else min(1.0, (step + 1) / warmup_steps)
        return warm * (1.0 - step / total_steps)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_lm(
    task: TaskConfig,
    config: ModelConfig,
    seed: int,
    *,
    lr: float,
    warmup_steps: int,
    steps: int,
    betas: tuple[float, float] = (0.9, 0.98),
) -> tuple[list[float], TinyLM]:
    r"""Train a :class:`TinyLM` on the task's Markov source with Adam; return the
    losses.

    .. math:: \theta \leftarrow \theta - \eta_s\,
        \mathrm{Adam}(\nabla_\theta \mathcal{L})

    The schedule is :func:`warmup_linear_decay`; ``betas`` default to the original
    Transformer's (0.9, 0.98). Seed ``s`` draws the weights (the same for either
    placement) and the training batches (the same for every run with that seed).

    Shape:
        returns ``steps`` per-step losses and the trained model.
    """
    result = warmup_experiment(
        task,
        {"run": (config, warmup_steps)},
        (seed,),
        lr=lr,
        steps=steps,
        betas=betas,
    )
    return result.losses["run"][0].tolist(), result.models["run"][0]


def heldout_loss(
    model: TinyLM, task: TaskConfig, *, seed: int = 0, n_sequences: int = 512
) -> float:
    r"""Next-symbol loss of ``model`` on fresh sequences from the task's source, no
    gradients.

    .. math:: \hat{\mathcal{L}} =
        -\frac{1}{N(T-1)} \sum_{n,t} \log q(x_{n,t+1} \mid x_{n,\le t})

    The sequences come from the ``"heldout"`` stream of ``seed``
    (:data:`~course_lib.experiments.common.STREAMS`), which no training run draws
    from.

    Shape:
        output a float (nats per symbol).
    """
    check_instance(model, "model", TinyLM)
    check_int(n_sequences, "n_sequences")
    # never trained on
    heldout = torch.Generator().manual_seed(stream_seed(seed, "heldout"))
    tokens = task.source().sample(n_sequences, task.seq_len, heldout)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = next_token_loss(model(tokens[:, :-1]), tokens[:, 1:])
    model.train(was_training)
    return float(loss)


@dataclass(frozen=True)
class WarmupResult:
    """Losses of the warmup experiment, per run and seed, with the task's reference
    levels.

    Shape:
        losses[name] ``(S, steps)``; models[name] a list of ``S`` trained models.
    """

    losses: dict[str, torch.Tensor]
    models: dict[str, list[TinyLM]]
    floor: float
    unigram: float

    def final(self, name: str, last: int = 10) -> torch.Tensor:
        r"""Mean loss of the last ``last`` steps of each seed's run of ``name``.

        .. math:: \bar{\mathcal{L}}_s = \frac{1}{k}\sum_{t = T - k}^{T
            - 1} \mathcal{L}_{s,t}

        Shape:
            output ``(S,)``.
        """
        if name not in self.losses:
            raise ValueError(
                f"name must be one of {sorted(self.losses)}, got {name!r}"
            )
        check_int(last, "last")
        return self.losses[name][:, -last:].mean(dim=1)


def warmup_experiment(
    task: TaskConfig,
    runs: Mapping[str, tuple[ModelConfig, int]],
    seeds: Sequence[int],
    *,
    lr: float,
    steps: int,
    betas: tuple[float, float] = (0.9, 0.98),
) -> WarmupResult:
    r"""Train each run ``name -> (model config, warmup_steps)`` once per seed.

    .. math:: \eta_s = \mathrm{lr} \cdot \text{warmup}(s) \cdot \text{decay}(s)
        \quad \text{(see :func:`warmup_linear_decay`)}

    Every run uses the same peak learning rate ``lr``, Adam ``betas`` and steps, and
    per seed the same initial weights and batches: only the architecture and the
    warmup differ. The runs of one architecture train together as one sweep
    (:func:`~course_lib.experiments.common.train_sweep`).

    Shape:
        see :class:`WarmupResult`.
    """
    seeds = check_seeds(seeds)
    if not isinstance(runs, Mapping) or not runs:
        raise TypeError(
            "runs must be a non-empty mapping name -> (ModelConfig, warmup_steps)"
        )
    for config, warmup in runs.values():
        check_instance(config, "runs' configs", ModelConfig)
        check_int(warmup, "warmup_steps", minimum=0)
    check_int(steps, "steps")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    # (S, ...)
    data = torch.stack([training_batches(task, seed, steps) for seed in seeds])
    losses: dict[str, torch.Tensor] = {}
    models: dict[str, list[TinyLM]] = {}
    # The runs of one architecture train as one sweep (common.train_sweep), each run
    # and seed with its own schedule.
    for config in dict.fromkeys(c for c, _ in runs.values()):
        names = [name for name, (c, _) in runs.items() if c == config]
        sweep = [make_model(task, config, seed) for _ in names for seed in seeds]
        rates = torch.stack(
            [
                lr * schedule_factors(runs[name][1], steps)
                for name in names
                for _ in seeds
            ]
        )  # (runs * S, steps)
        batches = data.repeat(len(names), 1, 1, 1)  # (runs * S, steps, B, T)
        curves = train_sweep(
            sweep,
            lambda step, b=batches: (b[:, step, :, :-1], b[:, step, :, 1:]),
            next_token_loss,
            rates,
            betas=betas,
        )
        for k, name in enumerate(names):
            rows = slice(k * len(seeds), (k + 1) * len(seeds))
            losses[name] = curves[rows]
            models[name] = sweep[rows]
    source = task.source()
    return WarmupResult(losses, models, source.entropy_rate, source.unigram_entropy)


# ----------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------


def _range_band(
    ax: Axes, x: np.ndarray, values: torch.Tensor, label: str, i: int
) -> None:
    """Mean over seeds as a line, min-max over seeds as a band.

    A placement keeps its colour in every figure ("Post-LN" the first of the
    palette, "Pre-LN" the second); other labels take the ``i``-th colour.
    """
    if label in PLACEMENTS:
        i = list(PLACEMENTS).index(label)
    v = values.detach().to(torch.float64)
    ax.plot(x, v.mean(0).numpy(), marker="o", ms=3, color=color(i), label=label)
    ax.fill_between(
        x,
        v.min(0).values.numpy(),
        v.max(0).values.numpy(),
        color=color(i),
        alpha=0.2,
    )


def plot_layer_gradients(
    ax: Axes, grads: Mapping[str, torch.Tensor], *, title: str = ""
) -> tuple[Figure, Axes]:
    """Per-layer gradient norms, one line per placement (mean over seeds, min-max
    band).

    Shape:
        grads[label] ``(S, L)``.
    """
    for i, (label, g) in enumerate(grads.items()):
        _range_band(ax, np.arange(1, g.shape[1] + 1), g, label, i)
    ax.set_yscale("log")
    ax.set_xlabel("layer l (1 = next to the input)")
    ax.set_ylabel("gradient norm of W2 in layer l")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax.figure, ax


def plot_depth_trend(
    ax: Axes,
    depths: Sequence[int],
    grads: Mapping[str, torch.Tensor],
    *,
    reference: str | None = "Pre-LN",
) -> tuple[Figure, Axes]:
    r"""Last-layer gradient against depth on log-log axes, with a :math:`1/\sqrt{L}`
    guide.

    The dashed guide starts at ``reference``'s mean at the smallest depth.

    Shape:
        grads[label] ``(S, len(depths))``.
    """
    x = np.asarray(depths, dtype=float)
    for i, (label, g) in enumerate(grads.items()):
        _range_band(ax, x, g, label, i)
    if reference is not None:
        start = float(grads[reference].mean(0)[0])
        ax.plot(
            x,
            start * np.sqrt(x[0] / x),
            ls="--",
            color="0.4",
            label=r"$\propto 1/\sqrt{L}$",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(x, [str(d) for d in depths])
    ax.set_xlabel("number of layers L")
    ax.set_ylabel("gradient norm of W2, last layer")
    ax.legend()
    return ax.figure, ax


def plot_loss_curves(
    ax: Axes, result: WarmupResult, *, smooth: int = 10
) -> tuple[Figure, Axes]:
    """Training loss per run (mean over seeds, min-max band), moving average of
    ``smooth``.

    The loss floor (entropy rate) and the unigram level are drawn as horizontal
    lines.
    """
    check_int(smooth, "smooth")
    kernel = torch.ones(1, 1, smooth, dtype=torch.float64) / smooth
    for i, (name, curves) in enumerate(result.losses.items()):
        c = curves.to(torch.float64)[:, None, :]  # (S, 1, steps)
        # (S, steps - smooth + 1)
        smoothed = nn.functional.conv1d(c, kernel)[:, 0, :]
        _range_band(ax, np.arange(smooth, curves.shape[1] + 1), smoothed, name, i)
    for line in ax.lines:
        line.set_marker("")
    ax.axhline(
        result.unigram, ls=":", color="0.3", label="unigram level (no context)"
    )
    ax.axhline(
        result.floor, ls="--", color="0.3", label="loss floor (entropy rate)"
    )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"training loss, nats ({smooth}-step mean)")
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.42, 0.28))
    return ax.figure, ax


def plot_residual_rms(
    ax: Axes, sizes: Mapping[str, torch.Tensor]
) -> tuple[Figure, Axes]:
    """RMS of the residual stream after each block (0 = the embedding).

    Shape:
        sizes[label] ``(S, L + 1)``.
    """
    for i, (label, s) in enumerate(sizes.items()):
        _range_band(ax, np.arange(s.shape[1]), s, label, i)
    ax.set_xlabel("hidden state l (0 = embedding, l = output of block l)")
    ax.set_ylabel("RMS of the residual stream")
    ax.legend()
    return ax.figure, ax
