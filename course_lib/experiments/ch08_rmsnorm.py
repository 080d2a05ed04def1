r"""Chapter 8's experiments: RMSNorm, and what LayerNorm's mean was for.

* the **exact conversion** of Jiang et al. (2023), "Pre-RMSNorm and Pre-CRMSNorm
  Transformers" (:func:`pre_rmsnorm_from_pre_layernorm`): a Pre-LN
  :class:`~course_lib.experiments.ch07_prenorm_vs_postnorm.TinyLM` becomes a
  Pre-RMSNorm one that computes the same logits;
* :func:`stream_means` and :func:`mean_shares`: the mean of each residual-stream
  row, layer by layer, the quantity the conversion sets to zero, and the share of
  the row's mean square it accounts for;
* :func:`norm_passes` and :func:`norm_seconds`: passes over memory and wall-clock
  time of LayerNorm and RMSNorm, torch's and ``course_lib``'s, forward and
  forward + backward.

Why the conversion is exact. Write
:math:`P = I - \tfrac{1}{d}\mathbf{1}\mathbf{1}^\top` for the projection that
removes a row's mean. LayerNorm only ever sees :math:`Px`, so a Pre-LN model's
output does not change when any multiple of
:math:`\mathbf{1}` is added to its residual stream. Keep the stream zero-mean
instead: centre the embedding rows, and project :math:`\mathbf{1}` out of every
matrix and bias that writes to the stream (each block's attention output
projection and second feed-forward layer). Then every normalized row has mean 0,
where LayerNorm and RMSNorm agree:

.. math::
    \mathrm{LN}(x) = \gamma \odot \frac{x}{\sqrt{\overline{x^2} + \epsilon}} + \beta
    = \mathrm{RMSNorm}_\gamma(x) + \beta \qquad (\bar{x} = 0),

with the same :math:`\epsilon`. RMSNorm has no :math:`\beta`; the linear layer
that reads the norm takes it into its bias, :math:`W(r + \beta) + b = Wr + (W\beta
+ b)`: the attention's input projection, the first feed-forward layer, and for the
final norm the head.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from .. import functional as CF
from .._checks import check_instance, check_int, check_sequence
from ..profiling import count_passes, median_seconds
from .ch07_prenorm_vs_postnorm import TinyLM

__all__ = [
    "NORM_CALLS",
    "SPEED_EPS",
    "SPEED_SHAPE",
    "mean_shares",
    "norm_passes",
    "norm_seconds",
    "pre_rmsnorm_from_pre_layernorm",
    "stream_means",
]

#: The shape of the speed comparison, ``(B, T, C)``, float32: 16 MiB, far larger
#: than the caches.
SPEED_SHAPE = (8, 512, 1024)
SPEED_EPS = 1e-5
#: The four normalizations timed, by the name the chapter prints.
NORM_CALLS = (
    "F.layer_norm",
    "F.rms_norm",
    "course_lib layer_norm",
    "course_lib rms_norm",
)


def _centering(d: int, like: torch.Tensor) -> torch.Tensor:
    """:math:`P = I - \\mathbf{1}\\mathbf{1}^\\top / d`, in ``like``'s dtype and
    device."""
    eye = torch.eye(d, dtype=like.dtype, device=like.device)
    return eye - torch.full_like(eye, 1.0 / d)


def _check_pre_layernorm(model: TinyLM) -> None:
    check_instance(model, "model", TinyLM)
    config = model.stack.config
    if config.norm != "layer" or not config.norm_first:
        raise ValueError(
            "model must be a Pre-LN TinyLM (config.norm='layer', norm_first=True), "
            f"got norm={config.norm!r}, norm_first={config.norm_first}"
        )
    if model.stack.final_norm is None:
        raise ValueError(
            "model must end with a final LayerNorm: without it the logits read the "
            "stream's mean, which the conversion removes"
        )


def _fold_shift(linear: nn.Linear, beta: torch.Tensor | None) -> None:
    """``linear`` reads ``r + beta``: take ``beta`` into its bias, in place."""
    if beta is None:
        return
    if linear.bias is None:
        raise ValueError("a LayerNorm with a bias feeds a linear layer without one")
    linear.bias += linear.weight @ beta


def _project_out_mean(linear: nn.Linear, p: torch.Tensor) -> None:
    """``linear`` writes to the stream: remove each output's mean, in place."""
    linear.weight.copy_(p @ linear.weight)
    if linear.bias is not None:
        linear.bias.copy_(p @ linear.bias)


def pre_rmsnorm_from_pre_layernorm(model: TinyLM) -> TinyLM:
    r"""The Pre-RMSNorm model that computes the same function as a Pre-LN one.

    Jiang et al. (2023), section 3: with a zero-mean residual stream, LayerNorm is
    RMSNorm (plus a shift that the next linear layer absorbs). The new model:

    * embedding rows centred, :math:`E' = E P`;
    * in each block, attention's ``out_proj`` and the second feed-forward layer
      ``linear2`` write :math:`P W`, :math:`P b`;
    * every LayerNorm :math:`(\gamma, \beta)` becomes an RMSNorm with weight
      :math:`\gamma` and the same :math:`\epsilon`; :math:`\beta` goes into the bias
      of the layer that reads it (``in_proj``, ``linear1``, the head).

    Args:
        model (TinyLM): a Pre-LN model (``config.norm == "layer"``,
            ``norm_first=True``) with a final norm. It is not modified.

    Returns:
        TinyLM: a new model, ``config.norm == "rms"``, in ``model``'s dtype and
        device, whose logits equal ``model``'s up to rounding (to 1e-12 in float64
        at the chapter's sizes).

    Example:
        >>> import torch
        >>> from course_lib.experiments.ch07_prenorm_vs_postnorm import TinyLM
        >>> from course_lib.experiments.ch08_rmsnorm import (
        ...     pre_rmsnorm_from_pre_layernorm,
        ... )
        >>> from course_lib.transformer import BlockConfig
        >>> _ = torch.manual_seed(0)
        >>> config = BlockConfig(d_model=16, n_heads=2, d_ff=32, norm_first=True)
        >>> ln = TinyLM(config, 2, vocab_size=8).double()
        >>> rms = pre_rmsnorm_from_pre_layernorm(ln)
        >>> rms.stack.config.norm
        'rms'
        >>> tokens = torch.randint(0, 8, (3, 5))
        >>> bool((ln(tokens) - rms(tokens)).abs().max() < 1e-12)
        True
    """
    _check_pre_layernorm(model)
    config = replace(model.stack.config, norm="rms")
    weight = model.head.weight
    factory = {"device": weight.device, "dtype": weight.dtype}
    with torch.random.fork_rng(devices=[]):  # every weight is overwritten below
        out = TinyLM(
            config,
            len(model.stack.layers),
            model.embedding.num_embeddings,
            final_norm=True,
        ).to(**factory)
    p = _centering(config.d_model, weight)
    with torch.no_grad():
        out.embedding.weight.copy_(model.embedding.weight @ p)
        for theirs, ours in zip(model.stack.layers, out.stack.layers, strict=True):
            ours.load_state_dict(
                {
                    k: v
                    for k, v in theirs.state_dict().items()
                    if not k.startswith(("norm1.", "norm2."))
                },
                strict=False,
            )
            for norm, rms, reader in (
                (theirs.norm1, ours.norm1, ours.self_attn.in_proj),
                (theirs.norm2, ours.norm2, ours.linear1),
            ):
                rms.weight.copy_(norm.weight)
                _fold_shift(reader, norm.bias)
            _project_out_mean(ours.self_attn.out_proj, p)
            _project_out_mean(ours.linear2, p)
        out.stack.final_norm.weight.copy_(model.stack.final_norm.weight)
        out.head.load_state_dict(model.head.state_dict())
        _fold_shift(out.head, model.stack.final_norm.bias)
    return out


def stream_means(model: TinyLM, tokens: torch.Tensor) -> torch.Tensor:
    r"""The mean over features of every residual-stream row, at every depth.

    .. math:: m_{l,b,t} = \frac{1}{d}\sum_j h_{l,b,t,j}

    Args:
        model (TinyLM): any placement.
        tokens (Tensor): ``(B, T)`` int64 symbols.

    Returns:
        Tensor: ``(n_layers + 1, B, T)``: the embedding's rows, then each block's
        output, before the final norm (no gradient is taken).
    """
    check_instance(model, "model", TinyLM)
    with torch.no_grad():
        _, hidden = model(tokens, return_hidden=True)
    return torch.stack([h.mean(dim=-1) for h in hidden])


def mean_shares(model: TinyLM, tokens: torch.Tensor) -> torch.Tensor:
    r"""How much of each residual-stream row's size is its mean, at every depth.

    For a row :math:`h` with mean :math:`m`, :math:`\overline{h^2} = m^2 +
    \sigma^2`, so :math:`m^2 / \overline{h^2}` is the share of the mean square that
    re-centering removes: 0 for a zero-mean row, 1 for a constant one, and about
    :math:`1/d` for a row of independent zero-mean entries.

    Args:
        model (TinyLM): any placement.
        tokens (Tensor): ``(B, T)`` int64 symbols.

    Returns:
        Tensor: ``(n_layers + 1,)``: the share averaged over the ``B * T`` rows, for
        the embedding's rows, then each block's output.
    """
    check_instance(model, "model", TinyLM)
    with torch.no_grad():
        _, hidden = model(tokens, return_hidden=True)
    return torch.stack(
        [(h.mean(dim=-1) ** 2 / (h**2).mean(dim=-1)).mean() for h in hidden]
    )


def _check_shape(shape: object) -> tuple[int, ...]:
    shape = check_sequence(shape, "shape", "ints")
    if len(shape) < 2:
        raise ValueError(f"shape must have at least 2 dimensions, got {shape}")
    for i, n in enumerate(shape):
        check_int(n, f"shape[{i}]")
    return shape


def _norm_calls(
    shape: tuple[int, ...],
) -> tuple[dict[str, Callable[[], object]], dict[str, Callable[[], object]]]:
    """(forward, forward + backward) callables of :data:`NORM_CALLS` on one float32
    input of ``shape``, with a weight (and, for LayerNorm, a bias) that take
    gradients."""
    d = shape[-1]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).requires_grad_()  # (B, T, C)
    grad_y = torch.randn(shape, generator=gen)  # the gradient arriving from above
    weight = (1 + 0.1 * torch.randn(d, generator=gen)).requires_grad_()
    bias = (0.1 * torch.randn(d, generator=gen)).requires_grad_()
    eps = SPEED_EPS
    forward = {
        "F.layer_norm": lambda: F.layer_norm(x, (d,), weight, bias, eps),
        "F.rms_norm": lambda: F.rms_norm(x, (d,), weight, eps),
        "course_lib layer_norm": lambda: CF.layer_norm(x, (d,), weight, bias, eps),
        "course_lib rms_norm": lambda: CF.rms_norm(x, (d,), weight, eps),
    }
    wrt = {
        name: (x, weight, bias) if "layer" in name else (x, weight)
        for name in forward
    }

    def with_backward(name: str) -> Callable[[], object]:
        return lambda: torch.autograd.grad(forward[name](), wrt[name], grad_y)

    return forward, {name: with_backward(name) for name in forward}


@contextmanager
def _no_fill():
    """Timing as in training: deterministic mode (:func:`course_lib.notebook.setup`)
    fills every new tensor with NaN, one extra pass each; turn that off here."""
    det = torch.utils.deterministic
    saved = det.fill_uninitialized_memory
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        det.fill_uninitialized_memory = saved


def norm_passes(
    shape: tuple[int, ...] = SPEED_SHAPE,
) -> dict[str, tuple[float, float]]:
    """Passes over memory of each of :data:`NORM_CALLS`, counted from a profile
    (:func:`course_lib.profiling.count_passes`).

    Args:
        shape (sequence of int): the input's shape; its last dimension is
            normalized.
            Default: :data:`SPEED_SHAPE`.

    Returns:
        dict: name -> (forward passes, forward + backward passes). The counts follow
        the code torch runs, not the machine.
    """
    shape = _check_shape(shape)
    n, d = math.prod(shape[:-1]), shape[-1]
    forward, both = _norm_calls(shape)
    with _no_fill():
        return {
            name: (
                count_passes(forward[name], n, d),
                count_passes(both[name], n, d),
            )
            for name in NORM_CALLS
        }


def norm_seconds(
    shape: tuple[int, ...] = SPEED_SHAPE, repeat: int = 3, warmup: int = 1
) -> dict[str, tuple[float, float]]:
    """Median wall-clock seconds of each of :data:`NORM_CALLS`
    (:func:`course_lib.profiling.median_seconds`), on the threads torch has (one,
    after :func:`course_lib.notebook.setup`).

    Args:
        shape (sequence of int): as in :func:`norm_passes`.
        repeat (int): timed calls of each, at least 1. Default: 3.
        warmup (int): untimed calls first, at least 0. Default: 1.

    Returns:
        dict: name -> (forward seconds, forward + backward seconds). They differ by
        machine and by run: compare them as ratios with a wide margin.
    """
    shape = _check_shape(shape)
    check_int(repeat, "repeat")
    check_int(warmup, "warmup", minimum=0)
    forward, both = _norm_calls(shape)
    with _no_fill():
        return {
            name: (
                median_seconds(forward[name], repeat, warmup),
                median_seconds(both[name], repeat, warmup),
            )
            for name in NORM_CALLS
        }
