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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from .._checks import (
    check_choice,
    check_instance,
    check_int,
    check_real,
    check_seed,
    check_seeds,
    check_sequence,
    check_stochastic_matrix,
)
from ..plotting import PALETTE, color, finish_axes, new_figure
from ..transformer import BlockConfig, TransformerStack
from .common import default_dtype, stream_seed, train_sweep

__all__ = [
    "INITS",
    "PLACEMENTS",
    "InitStats",
    "SweepResult",
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
    "plot_placements",
    "plot_schedules",
    "plot_sweep",
    "plot_layer_gradients",
    "plot_loss_curves",
    "plot_residual_rms",
    "schedule_factors",
    "stationary_distribution",
    "sweep_runs",
    "train_lm",
    "training_batches",
    "warmup_experiment",
    "warmup_sweep",
    "warmup_linear_decay",
]

#: The two placements: name -> ``norm_first`` (the switch's name in
#: ``nn.TransformerEncoderLayer`` and :class:`~course_lib.transformer.BlockConfig`).
PLACEMENTS: dict[str, bool] = {"Post-LN": False, "Pre-LN": True}

#: The initializations a :class:`ModelConfig` can ask for.
INITS = ("torch", "xavier")


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
        init: str = "torch",
        alpha_init: float = 0.5,
    ) -> ModelConfig:
        """The :class:`ModelConfig` of one placement at the task's sizes.

        ``norm`` is a block norm of :class:`~course_lib.transformer.BlockConfig`
        (``"layer"``, ``"rms"`` or ``"dyt"``; the final norm is of the same kind),
        and ``alpha_init`` DyT's starting slope (used by ``"dyt"`` only).

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
            alpha_init=alpha_init,
        )
        return ModelConfig(block, n_layers, final_norm, init)


@dataclass(frozen=True)
class ModelConfig:
    """One :class:`TinyLM` architecture: the block, the depth, the final
    normalization and the initialization.

    ``final_norm=None`` closes the stack with a normalization exactly when
    ``block.norm_first`` (Pre-LN), as GPT-2 and :class:`nn.TransformerEncoder`
    models do. ``init`` is one of :data:`INITS`: ``"torch"``, PyTorch's default
    initialization, or ``"xavier"``, Xavier-uniform weight matrices and zero biases
    (Glorot & Bengio 2010), as Xiong et al. (2020) initialize. Frozen and validated
    once, here; build one with :meth:`TaskConfig.model`.

    Shape:
        see :class:`TinyLM`.
    """

    block: BlockConfig
    n_layers: int = 2
    final_norm: bool | None = None
    init: str = "torch"

    def __post_init__(self) -> None:
        check_instance(self.block, "block", BlockConfig)
        check_int(self.n_layers, "n_layers")
        if self.final_norm is not None and not isinstance(self.final_norm, bool):
            raise TypeError(
                "final_norm must be a bool or None, got "
                f"{type(self.final_norm).__name__}"
            )
        check_choice(self.init, "init", INITS)


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

    .. math:: \theta_0 \sim \text{PyTorch's default initialization, seeded with }
        s; \qquad \text{``xavier'': } W \sim
        \mathcal{U}\!\left(\pm\sqrt{6 / (n_\text{in} + n_\text{out})}\right),
        \ b = 0

    With ``config.init == "xavier"`` every ``nn.Linear`` weight (attention
    projections, feed-forward matrices, head) is redrawn Xavier-uniform and its bias
    set to 0, after the default draws; the embedding keeps its
    :math:`\mathcal{N}(0, 1)` draw. The same ``seed`` gives the same weights for
    either placement. The global random state is left as it was.

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
            model = TinyLM(
                config.block,
                config.n_layers,
                task.vocab_size,
                final_norm=config.final_norm,
            )
            if config.init == "xavier":
                with torch.no_grad():
                    for module in model.modules():
                        if isinstance(module, nn.Linear):
                            nn.init.xavier_uniform_(module.weight)
                            if module.bias is not None:
                                nn.init.zeros_(module.bias)
            return model


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
    depths = check_sequence(depths, "depths", "positive ints")
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


def _schedule_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """The factor of :func:`warmup_linear_decay` at ``step`` (one formula for both
    the scheduler and :func:`schedule_factors`)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step >= total_steps:  # after the last step (a scheduler asks for it)
        return 0.0
    return (total_steps - step) / (total_steps - warmup_steps)


def _check_schedule(warmup_steps: int, total_steps: int) -> None:
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


def schedule_factors(warmup_steps: int, total_steps: int) -> torch.Tensor:
    r"""The factors by which :func:`warmup_linear_decay` multiplies the peak rate,
    per step.

    .. math::
        f_s = \begin{cases}
        (s + 1) / s_w & s < s_w \\
        (s_{\text{total}} - s) / (s_{\text{total}} - s_w) & s \ge s_w
        \end{cases}

    Their largest value is exactly 1 (at the last warmup step), so the peak rate
    is the rate a run really reaches, with or without warmup. The scheduler uses
    the same function, so these are exactly the rates a :func:`train_lm` run uses
    at each step, divided by its peak rate (the tests step a real scheduler to
    check it).

    Shape:
        output ``(total_steps,)`` float64.
    """
    _check_schedule(warmup_steps, total_steps)
    return torch.tensor(
        [
            _schedule_factor(s, warmup_steps, total_steps)
            for s in range(total_steps)
        ],
        dtype=torch.float64,
    )


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
    r"""Learning-rate schedule: linear warmup to the peak rate, then linear decay.

    .. math::
        \eta_s = \eta_{\max} \cdot \begin{cases}
        (s + 1) / s_w & s < s_w \quad\text{(warmup)} \\
        (s_{\text{total}} - s) / (s_{\text{total}} - s_w) & s \ge s_w
        \quad\text{(decay)}
        \end{cases}

    The factor is exactly 1 at the last warmup step :math:`s_w - 1` (and at
    :math:`s_w`), and never above it: a run with warmup reaches the same peak rate
    :math:`\eta_{\max}` as one without. ``warmup_steps = 0`` means no warmup: the
    first step already uses the peak rate, which then decays linearly towards 0.

    Shape:
        a scheduler to ``step()`` once per optimizer step.
    """
    _check_schedule(warmup_steps, total_steps)

    def factor(step: int) -> float:
        return _schedule_factor(step, warmup_steps, total_steps)

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


def sweep_runs(
    models: Sequence[nn.Module],
    batches: torch.Tensor,
    lr: torch.Tensor,
    *,
    betas: tuple[float, float] = (0.9, 0.98),
    on_step: Callable[[int, int, nn.Module], None] | None = None,
) -> torch.Tensor:
    r"""Train ``M`` language models of one architecture at once, model ``i`` on
    its own sequences ``batches[i]`` at its own rates ``lr[i]``, with Adam.

    .. math:: \mathcal{L}_{i,t} = \text{next\_token\_loss}\big(
        \text{model}_i(x_{i,t,:,:-1}),\ x_{i,t,:,1:}\big)

    One call of :func:`~course_lib.experiments.common.train_sweep` (see it for
    ``on_step`` and for what a run whose loss stops being finite does).

    Shape:
        batches ``(M, steps, B, T)`` int64; lr ``(M, steps)``; returns the losses
        ``(M, steps)`` float64.
    """
    if not isinstance(batches, torch.Tensor) or batches.dim() != 4:
        raise ValueError("batches must be a (M, steps, B, T) tensor of symbols")
    return train_sweep(
        list(models),
        lambda t: (batches[:, t, :, :-1], batches[:, t, :, 1:]),
        next_token_loss,
        lr,
        betas=betas,
        on_step=on_step,
    )


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
        curves = sweep_runs(sweep, batches, rates, betas=betas)
        for k, name in enumerate(names):
            rows = slice(k * len(seeds), (k + 1) * len(seeds))
            losses[name] = curves[rows]
            models[name] = sweep[rows]
    source = task.source()
    return WarmupResult(losses, models, source.entropy_rate, source.unigram_entropy)


@dataclass(frozen=True)
class SweepResult:
    """Losses of the learning-rate sweep, per (placement, warmup steps, peak rate).

    ``losses[(placement, warmup, rate)]`` holds one row per seed; a run whose loss
    stopped being finite has ``nan`` from that step on (see
    :func:`~course_lib.experiments.common.train_sweep`).

    Shape:
        losses[key] ``(S, steps)``.
    """

    losses: dict[tuple[str, int, float], torch.Tensor]
    rates: tuple[float, ...]
    warmups: tuple[int, ...]
    seeds: tuple[int, ...]
    floor: float
    unigram: float

    def share(self, placement: str, warmup: int, *, last: int = 20) -> torch.Tensor:
        r"""Share of the context's worth learned, per peak rate and seed.

        .. math:: \text{share} = \frac{H(\pi) - \bar{\mathcal{L}}}{H(\pi) - H},
            \qquad \bar{\mathcal{L}} = \text{mean loss of the last ``last``
            steps}

        Each step's batch is new to the model when its loss is computed (every
        batch is drawn fresh from the source), so :math:`\bar{\mathcal{L}}` is a
        held-out loss on ``last`` batches. 0 is the unigram level, 1 the floor; a
        run that stopped (a non-finite loss) gets ``-inf``.

        Shape:
            output ``(len(rates), S)`` float64.
        """
        check_int(last, "last")
        rows = []
        for rate in self.rates:
            key = (placement, warmup, rate)
            if key not in self.losses:
                raise ValueError(
                    f"(placement, warmup) must be one of the sweep's, got "
                    f"{(placement, warmup)!r}"
                )
            tail = self.losses[key][:, -last:].mean(dim=1)  # (S,)
            share = (self.unigram - tail) / (self.unigram - self.floor)
            rows.append(torch.where(torch.isfinite(share), share, -math.inf))
        return torch.stack(rows)

    def at(self, rate: float) -> WarmupResult:
        """The runs at one peak rate, named ``"Post-LN, no warmup"`` and so on, as a
        :class:`WarmupResult` (without models) for :func:`plot_loss_curves`.

        Shape:
            losses[name] ``(S, steps)``.
        """
        if rate not in self.rates:
            raise ValueError(f"rate must be one of {self.rates}, got {rate!r}")
        losses = {
            f"{name}, {'warmup' if w else 'no warmup'}": curves
            for (name, w, r), curves in self.losses.items()
            if r == rate
        }
        return WarmupResult(losses, {}, self.floor, self.unigram)


def warmup_sweep(
    task: TaskConfig,
    configs: Mapping[str, ModelConfig],
    rates: Sequence[float],
    warmups: Sequence[int],
    seeds: Sequence[int],
    *,
    steps: int,
    betas: tuple[float, float] = (0.9, 0.98),
    chunk: int = 16,
) -> SweepResult:
    r"""Train every (config, warmup, peak rate, seed) of a grid; return the losses.

    .. math:: \eta_s = \text{rate} \cdot f_s \quad \text{(}f_s\text{ of
        :func:`schedule_factors`, at most 1)}

    Per seed, every run starts from the same weights (for either placement) and
    sees the same batches: only the placement, the warmup and the peak rate
    differ. The runs of one config train ``chunk`` at a time as one sweep
    (:func:`~course_lib.experiments.common.train_sweep`); a chunk of about 16 keeps
    the stacked activations in the processor's cache.

    Shape:
        see :class:`SweepResult`.
    """
    seeds = tuple(check_seeds(seeds))
    if not isinstance(configs, Mapping) or not configs:
        raise TypeError("configs must be a non-empty mapping name -> ModelConfig")
    for config in configs.values():
        check_instance(config, "configs' values", ModelConfig)
    rates = tuple(
        check_real(r, "rates", minimum=0.0)
        for r in check_sequence(rates, "rates", "positive numbers")
    )
    warmups = tuple(
        check_int(w, "warmups", minimum=0)
        for w in check_sequence(warmups, "warmups", "ints >= 0")
    )
    check_int(steps, "steps")
    check_int(chunk, "chunk")
    factors = {w: schedule_factors(w, steps) for w in warmups}
    data = {seed: training_batches(task, seed, steps) for seed in seeds}
    grid = [(w, r, seed) for w in warmups for r in rates for seed in seeds]
    losses: dict[tuple[str, int, float], torch.Tensor] = {}
    for name, config in configs.items():
        curves = []
        for start in range(0, len(grid), chunk):
            part = grid[start : start + chunk]
            models = [make_model(task, config, seed) for _, _, seed in part]
            lr = torch.stack([r * factors[w] for w, r, _ in part])  # (M, steps)
            batches = torch.stack([data[seed] for _, _, seed in part])
            curves.append(sweep_runs(models, batches, lr, betas=betas))
        every = torch.cat(curves)  # (len(grid), steps)
        for w in warmups:
            for r in rates:
                rows = [
                    i for i, (w2, r2, _) in enumerate(grid) if (w2, r2) == (w, r)
                ]
                losses[(name, w, r)] = every[rows]
    source = task.source()
    return SweepResult(
        losses, rates, warmups, seeds, source.entropy_rate, source.unigram_entropy
    )


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


def _box(ax: Axes, x: float, y: float, label: str, face: str, **kw) -> None:
    """A labelled rounded box centred at ``(x, y)``; ``gid`` names it for tests."""
    from matplotlib.patches import FancyBboxPatch

    w, h = kw.pop("size", (2.6, 0.8))
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.05,rounding_size=0.15",
            facecolor=face,
            edgecolor="black",
            linewidth=1.2,
            gid=f"box:{label}",
            **kw,
        )
    )
    ax.text(x, y, label, ha="center", va="center", color="black")


def _arrow(
    ax: Axes, points: Sequence[tuple[float, float]], col: str, width: float
) -> None:
    """A polyline through ``points`` with an arrow head at the last point."""
    xs, ys = zip(*points, strict=True)
    ax.plot(xs[:-1] + (xs[-1],), ys, color=col, lw=width, solid_capstyle="round")
    ax.annotate(
        "",
        xy=points[-1],
        xytext=points[-2],
        arrowprops={"arrowstyle": "-|>", "color": col, "lw": width},
    )


def plot_placements() -> tuple[Figure, np.ndarray]:
    r"""Block diagrams of one sublayer in each placement, Post-LN and Pre-LN.

    Post-LN: :math:`x \to F \to + \to \mathrm{LN}`, the LayerNorm on the residual
    path; Pre-LN: :math:`x \to \mathrm{LN} \to F \to +`, the LayerNorm on the
    branch and one final LayerNorm after the last block. :math:`F` is either
    sublayer (self-attention, or the feed-forward network); a block has two. The
    residual path, from the input to the output, is drawn thick. Each box carries
    ``gid = "box:<label>"`` so a test can read the drawing back.

    Shape:
        returns the figure and its two axes.
    """
    fig, axes = new_figure(ncols=2, width=7.0, height=4.6)
    fig.set_facecolor("white")  # an opaque page, also in the book's dark mode
    path, branch = PALETTE["blue"], "0.35"
    norm_face = "#F6D49A"  # Okabe-Ito orange mixed with white, for black text
    sub_face = "#B9DDF4"  # Okabe-Ito sky blue mixed with white
    for ax in axes:
        ax.set_facecolor("white")
        ax.set_xlim(0, 5)
        ax.set_ylim(-0.2, 10.6)
        ax.set_aspect("equal")
        ax.axis("off")
    # Post-LN: x -> F -> add -> LN
    ax = axes[0]
    ax.set_title("Post-LN:  LN(x + F(x))", color="black")
    ax.text(2, 0.2, "x (residual stream)", ha="center", color="black")
    ax.plot([2, 2], [0.6, 1.2], color=path, lw=2.6)
    _arrow(ax, [(2, 1.2), (2, 2.6)], branch, 1.4)
    _box(ax, 2, 3.0, "sublayer F", sub_face)
    _arrow(ax, [(2, 3.4), (2, 5.0)], branch, 1.4)
    _arrow(ax, [(2, 1.2), (4, 1.2), (4, 5.4), (2.35, 5.4)], path, 2.6)
    _box(ax, 2, 5.4, "+", "white", size=(0.6, 0.6))
    _arrow(ax, [(2, 5.75), (2, 7.0)], path, 2.6)
    _box(ax, 2, 7.4, "LayerNorm", norm_face)
    _arrow(ax, [(2, 7.8), (2, 9.4)], path, 2.6)
    ax.text(2, 9.6, "to the next sublayer", ha="center", color="black")
    ax.text(
        4.15,
        3.2,
        "skip",
        rotation=90,
        ha="left",
        va="center",
        color=path,
    )
    # Pre-LN: x -> LN -> F -> add, and a final LN after the last block
    ax = axes[1]
    ax.set_title("Pre-LN:  x + F(LN(x))", color="black")
    ax.text(2, 0.2, "x (residual stream)", ha="center", color="black")
    _arrow(ax, [(2, 1.2), (2, 1.6)], branch, 1.4)
    _box(ax, 2, 2.0, "LayerNorm", norm_face)
    _arrow(ax, [(2, 2.4), (2, 3.6)], branch, 1.4)
    _box(ax, 2, 4.0, "sublayer F", sub_face)
    _arrow(ax, [(2, 4.4), (2, 5.5)], branch, 1.4)
    ax.plot([2, 2], [0.6, 1.2], color=path, lw=2.6)
    _arrow(ax, [(2, 1.2), (4, 1.2), (4, 5.9), (2.35, 5.9)], path, 2.6)
    _box(ax, 2, 5.9, "+", "white", size=(0.6, 0.6))
    _arrow(ax, [(2, 6.25), (2, 7.6)], path, 2.6)
    ax.text(
        2,
        7.75,
        "... every sublayer of every block ...",
        ha="center",
        color="black",
    )
    _arrow(ax, [(2, 8.25), (2, 8.75)], path, 2.6)
    _box(ax, 2, 9.15, "final LayerNorm", norm_face, size=(3.7, 0.8), ls="--")
    ax.text(
        4.15,
        3.4,
        "skip",
        rotation=90,
        ha="left",
        va="center",
        color=path,
    )
    return fig, axes


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
    return finish_axes(
        ax,
        "layer l (1 = next to the input)",
        "gradient norm of W2 in layer l",
        title=title,
    )


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
    return finish_axes(ax, "number of layers L", "gradient norm of W2, last layer")


def plot_loss_curves(
    ax: Axes,
    result: WarmupResult,
    *,
    smooth: int = 10,
    steps: int | None = None,
    legend: bool = True,
) -> tuple[Figure, Axes]:
    """Training loss per run (mean over seeds, min-max band), moving average of
    ``smooth``; only the first ``steps`` steps if given (``smooth=1``: every step).

    The loss floor (entropy rate) and the unigram level are drawn as horizontal
    lines. A run keeps its placement's colour; its warmup twin is dashed.
    """
    check_int(smooth, "smooth")
    if steps is not None:
        check_int(steps, "steps")
    kernel = torch.ones(1, 1, smooth, dtype=torch.float64) / smooth
    for i, (name, curves) in enumerate(result.losses.items()):
        c = curves.to(torch.float64)[:, None, : steps or curves.shape[1]]
        # (S, steps - smooth + 1)
        smoothed = nn.functional.conv1d(c, kernel)[:, 0, :]
        label = name.split(",")[0]
        start = len(ax.lines)
        x = np.arange(smooth, c.shape[2] + 1) - (1 if smooth == 1 else 0)
        _range_band(ax, x, smoothed, label if label in PLACEMENTS else name, i)
        ax.lines[start].set_label(name)
        if name.endswith(", warmup"):
            ax.lines[start].set_linestyle("--")
    for line in ax.lines:
        line.set_marker("")
    ax.axhline(
        result.unigram, ls=":", color="0.3", label="unigram level (no context)"
    )
    ax.axhline(
        result.floor, ls="-.", color="0.3", label="loss floor (entropy rate)"
    )
    ylabel = "training loss, nats" + (
        f" ({smooth}-step mean)" if smooth > 1 else ""
    )
    return finish_axes(ax, "optimizer step", ylabel, legend=legend)


def plot_schedules(
    ax: Axes, rates: Mapping[str, torch.Tensor]
) -> tuple[Figure, Axes]:
    """Learning rate against step, one line per schedule.

    Shape:
        rates[label] ``(steps,)``.
    """
    for i, (label, r) in enumerate(rates.items()):
        ax.plot(np.arange(len(r)), r.numpy(), color=color(i + 2), label=label)
    ax.set_ylim(bottom=0)
    return finish_axes(ax, "optimizer step", "learning rate")


def plot_sweep(
    ax: Axes, result: SweepResult, *, last: int = 20, bottom: float = -0.1
) -> tuple[Figure, Axes]:
    """Share of the context's worth learned against the peak rate: one line per
    placement and warmup (mean over seeds), each seed a point.

    Runs that stopped (share ``-inf``) or ended below ``bottom`` are drawn at
    ``bottom``. ``last`` is :meth:`SweepResult.share`'s.
    """
    x = np.asarray(result.rates, dtype=float)
    for name in PLACEMENTS:
        for w in result.warmups:
            # (rates, S)
            share = result.share(name, w, last=last).clamp_min(bottom)
            col = color(list(PLACEMENTS).index(name))
            ls = "--" if w else "-"
            label = f"{name}, {'warmup' if w else 'no warmup'}"
            ax.plot(x, share.mean(1).numpy(), ls=ls, color=col, label=label)
            for k in range(share.shape[1]):
                ax.plot(
                    x,
                    share[:, k].numpy(),
                    ls="",
                    marker="o" if w else "s",
                    mfc="none" if w else col,
                    ms=5,
                    color=col,
                )
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [f"{r:g}" for r in result.rates])
    ax.axhline(0.0, ls=":", color="0.3")
    return finish_axes(
        ax, "peak learning rate", "share of the context's worth learned"
    )


def plot_residual_rms(
    ax: Axes, sizes: Mapping[str, torch.Tensor]
) -> tuple[Figure, Axes]:
    """RMS of the residual stream after each block (0 = the embedding).

    Shape:
        sizes[label] ``(S, L + 1)``.
    """
    for i, (label, s) in enumerate(sizes.items()):
        _range_band(ax, np.arange(s.shape[1]), s, label, i)
    return finish_axes(
        ax,
        "hidden state l\n(0 = embedding, l = output of block l)",
        "RMS of the residual stream",
    )
