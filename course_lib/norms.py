r"""The normalization layers, as ``nn.Module`` s over :mod:`course_lib.functional`.

:class:`LayerNorm`, :class:`RMSNorm` and :class:`BatchNorm` keep torch's constructor
arguments (in torch's order, ``device`` and ``dtype`` included), torch's parameter
and buffer names (``weight``, ``bias``, ``running_mean``, ``running_var``,
``num_batches_tracked``), so ``state_dict``\ s move between them and torch's own
modules in both directions, and torch's ``reset_parameters()``.
:class:`DynamicTanh`, which torch does not have, keeps the names of its authors'
module (``alpha``, ``weight``, ``bias``) and the same conventions.

The library names a normalization with one word from :data:`NORMS`, and
:func:`make_norm` builds it:

======== ==================================== ===================================
name     layer                                statistics taken over
======== ==================================== ===================================
"none"   ``nn.Identity`` (no normalization)   nothing
"batch"  :class:`BatchNorm`                   each feature, across the batch
"layer"  :class:`LayerNorm`                   each token's features (mean, var)
"rms"    :class:`RMSNorm`                     each token's features (no mean)
"dyt"    :class:`DynamicTanh`                 nothing: ``tanh(alpha x)`` per element
======== ==================================== ===================================

Each constructor validates its arguments once; ``forward`` then checks only its
input and calls the unchecked kernels of :mod:`course_lib.functional`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import torch
from torch import nn

from . import functional as CF
from ._checks import (
    check_bool,
    check_choice,
    check_eps,
    check_factory_kwargs,
    check_int,
    check_mask,
    check_normalized_input,
    check_normalized_shape,
    check_probability,
    check_real,
)

__all__ = [
    "NORMS",
    "NORM_LABELS",
    "BatchNorm",
    "DynamicTanh",
    "LayerNorm",
    "RMSNorm",
    "make_norm",
]

#: How tables and legends print each normalization's name.
NORM_LABELS: dict[str, str] = {
    "none": "no norm",
    "batch": "BatchNorm",
    "layer": "LayerNorm",
    "rms": "RMSNorm",
    "dyt": "DyT",
}
#: The names of the normalizations, the one vocabulary of the library (see the table
#: above): what :func:`make_norm` takes and what ``BlockConfig.norm`` draws from.
NORMS: tuple[str, ...] = tuple(NORM_LABELS)

_Module = TypeVar("_Module", bound=nn.Module)

#: True while :func:`_trusted` builds a module: its ``__init__`` skips its checks.
_TRUSTING: ContextVar[bool] = ContextVar("course_lib_trusting", default=False)


def _trusted(cls: type[_Module], *args: Any, **kwargs: Any) -> _Module:
    """An instance of ``cls`` built from arguments that were validated already.

    Each module's ``__init__`` validates its arguments unless :func:`_checking` says
    otherwise; code that holds validated values (:func:`make_norm`, a
    ``TransformerBlock`` reading a ``BlockConfig``) builds through here, and the
    constructor, with its one signature, does not check them a second time.
    """
    token = _TRUSTING.set(True)
    try:
        return cls(*args, **kwargs)
    finally:
        _TRUSTING.reset(token)


def _checking() -> bool:
    """Whether a constructor should validate its arguments (not under
    :func:`_trusted`)."""
    return not _TRUSTING.get()


def _set_up_row_norm(
    module: nn.Module,
    normalized_shape: Any,
    eps: Any,
    elementwise_affine: Any,
    device: Any,
    dtype: Any,
    eps_may_be_none: bool = False,
) -> None:
    """What LayerNorm and RMSNorm do first: check ``normalized_shape``, ``eps``
    (None only where ``eps_may_be_none``), ``elementwise_affine`` and the factory
    arguments (unless :func:`_trusted` builds), then keep the first three."""
    if _checking():
        normalized_shape = check_normalized_shape(normalized_shape)
        if not (eps is None and eps_may_be_none):
            eps = check_eps(eps)
        check_bool(elementwise_affine, "elementwise_affine")
        check_factory_kwargs(device, dtype)
    module.normalized_shape = normalized_shape
    module.eps = eps
    module.elementwise_affine = elementwise_affine


def _affine_parameters(
    module: nn.Module,
    shape: Any,
    affine: bool,
    bias: bool,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> None:
    """Register ``weight`` and ``bias`` of ``shape`` (uninitialized), or None, as
    torch does."""
    factory = {"device": device, "dtype": dtype}
    weight = nn.Parameter(torch.empty(shape, **factory)) if affine else None
    module.register_parameter("weight", weight)
    has_bias = affine and bias
    module.register_parameter(
        "bias", nn.Parameter(torch.empty(shape, **factory)) if has_bias else None
    )


class LayerNorm(nn.Module):
    r"""Layer normalization (Ba et al., 2016) over the trailing dimensions, as
    ``nn.LayerNorm``.

    Each row (the last ``len(normalized_shape)`` dimensions) is normalized with its
    own mean and biased variance, then scaled and shifted element-wise:

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x]
        + \epsilon}} \odot \gamma + \beta

    Args:
        normalized_shape (int or sequence of int): the trailing dimensions to
            normalize over, e.g. ``d_model`` for token vectors ``(B, T, d_model)``.
        eps (float): added to the variance inside the square root. Default:
            ``1e-5``.
        elementwise_affine (bool): learn ``weight`` (gamma, starts at 1) and
            ``bias`` (beta, starts at 0), both of shape ``normalized_shape``.
            Default: ``True``.
        bias (bool): with ``elementwise_affine``, learn ``bias`` too; ``False``
            keeps only the scale, as several recent language models do. Default:
            ``True``.
        device: where the parameters are made. Default: torch's default device.
        dtype: the parameters' floating-point dtype. Default: torch's default dtype.

    Shape:
        - Input: ``(*, *normalized_shape)``
        - Output: ``(*, *normalized_shape)``, the shape of the input

    Example:
        >>> import torch
        >>> from course_lib.norms import LayerNorm
        >>> norm = LayerNorm(3)
        >>> y = norm(torch.tensor([[10.0, 20.0, 30.0], [100.0, 200.0, 300.0]]))
        >>> [f"{v:.4f}" for v in y[1].tolist()]  # the same row, scaled by 10
        ['-1.2247', '0.0000', '1.2247']
        >>> sorted(name for name, _ in norm.named_parameters())
        ['bias', 'weight']
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _set_up_row_norm(
            self, normalized_shape, eps, elementwise_affine, device, dtype
        )
        if _checking():
            check_bool(bias, "bias")
        _affine_parameters(
            self, self.normalized_shape, elementwise_affine, bias, device, dtype
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``weight`` back to ones and ``bias`` to zeros, as at construction."""
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x = check_normalized_input(input, self.normalized_shape, self.weight)
        return CF._layer_norm(
            x, len(self.normalized_shape), self.weight, self.bias, self.eps
        )

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )


class RMSNorm(nn.Module):
    r"""Root-mean-square normalization (Zhang & Sennrich, 2019), as ``nn.RMSNorm``.

    LayerNorm without the centering: each row is divided by its root mean square,
    then scaled element-wise (there is no shift):

    .. math:: y = \frac{x}{\sqrt{\frac{1}{D}\sum_k x_k^2 + \epsilon}} \odot \gamma

    Args:
        normalized_shape (int or sequence of int): the trailing dimensions to
            normalize over.
        eps (float or None): added to the mean square inside the square root;
            ``None`` uses the machine epsilon of the dtype the statistics are
            computed in (float32's for 16-bit inputs), as torch does (see
            :func:`course_lib.functional.rms_norm`). Default:
            ``None``.
        elementwise_affine (bool): learn ``weight`` (gamma, starts at 1) of shape
            ``normalized_shape``. Default: ``True``.
        device, dtype: as in :class:`LayerNorm`.

    Shape:
        as :class:`LayerNorm`'s: the output has the shape of the input.

    Example:
        >>> import torch
        >>> from course_lib.norms import RMSNorm
        >>> norm = RMSNorm(2, eps=1e-6)
        >>> y = norm(torch.tensor([[3.0, 4.0]]))  # root mean square sqrt(12.5)
        >>> [f"{v:.4f}" for v in y[0].tolist()]
        ['0.8485', '1.1314']
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _set_up_row_norm(
            self, normalized_shape, eps, elementwise_affine, device, dtype, True
        )
        if elementwise_affine:
            self.weight = nn.Parameter(
                torch.empty(self.normalized_shape, device=device, dtype=dtype)
            )
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``weight`` back to ones, as at construction."""
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x = check_normalized_input(input, self.normalized_shape, self.weight)
        return CF._rms_norm(x, len(self.normalized_shape), self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}"
        )


class DynamicTanh(nn.Module):
    r"""Dynamic Tanh, DyT (Zhu, Chen, He, LeCun & Liu, 2025), a drop-in replacement
    for LayerNorm that takes no statistics.

    Each element is squashed on its own by a tanh of learned slope ``alpha`` (one
    number for the layer), then scaled and shifted element-wise, as LayerNorm's
    output is (see :func:`course_lib.functional.dynamic_tanh`):

    .. math:: y = \gamma \odot \tanh(\alpha x) + \beta

    The parameters are those of the authors' module (``dynamic_tanh.py`` in
    jiachenzhu/DyT): ``alpha`` of shape ``(1,)``, starting at ``alpha_init``;
    ``weight`` (gamma, ones) and ``bias`` (beta, zeros) of shape
    ``normalized_shape``; so ``state_dict``\ s move between the two in both
    directions, and the outputs agree. Where this one differs from theirs:

    - The constructor takes LayerNorm's arguments (``elementwise_affine``,
      ``bias``, ``device``, ``dtype``) after ``normalized_shape`` and
      ``alpha_init``; theirs are ``(normalized_shape, channels_last,
      alpha_init_value=0.5)``, and the initial slope is kept as
      ``alpha_init`` here, ``alpha_init_value`` there.
    - Channel-last only: ``weight`` and ``bias`` cover the trailing dimensions, as
      LayerNorm's do. Their ``channels_last=False`` (for ``(N, C, H, W)`` images,
      ``weight[:, None, None]``) is this module applied to
      ``x.permute(0, 2, 3, 1)`` and permuted back.
    - ``elementwise_affine=False`` keeps only ``alpha`` (``weight`` and ``bias``
      are None, as torch's norms register them), like the variant of their
      repository's ``other_tasks/DiT``; ``bias=False`` keeps only the scale, like
      their LLaMA variant.
    - Float16 and bfloat16 input is computed in float32 and rounded once at the
      end, as the library's other norms do; theirs computes in the input's dtype.

    Args:
        normalized_shape (int or sequence of int): the trailing dimensions that
            ``weight`` and ``bias`` cover, e.g. ``d_model`` for token vectors
            ``(B, T, d_model)``.
        alpha_init (float): the starting slope, ``> 0``. The authors' default
            ``0.5`` suits vision models; their language models use larger values
            for narrower models (and a larger one for attention inputs). Default:
            ``0.5``.
        elementwise_affine (bool): learn ``weight`` (gamma, starts at 1) and
            ``bias`` (beta, starts at 0). Default: ``True``.
        bias (bool): with ``elementwise_affine``, learn ``bias`` too. Default:
            ``True``.
        device: where the parameters are made. Default: torch's default device.
        dtype: the parameters' floating-point dtype. Default: torch's default dtype.

    Shape:
        - Input: ``(*, *normalized_shape)``
        - Output: ``(*, *normalized_shape)``, the shape of the input

    Example:
        >>> import torch
        >>> from course_lib.norms import DynamicTanh
        >>> dyt = DynamicTanh(3)
        >>> dyt
        DynamicTanh((3,), alpha_init=0.5, elementwise_affine=True, bias=True)
        >>> y = dyt(torch.tensor([[10.0, 20.0, 30.0], [0.1, 0.2, 0.3]]))
        >>> [f"{v:.4f}" for v in y[0].tolist()]  # large inputs saturate
        ['0.9999', '1.0000', '1.0000']
        >>> [f"{v:.4f}" for v in y[1].tolist()]  # small ones pass, times alpha
        ['0.0500', '0.0997', '0.1489']
        >>> [(name, tuple(p.shape)) for name, p in dyt.named_parameters()]
        [('alpha', (1,)), ('weight', (3,)), ('bias', (3,))]
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        alpha_init: float = 0.5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if _checking():
            normalized_shape = check_normalized_shape(normalized_shape)
            alpha_init = check_real(alpha_init, "alpha_init", minimum=0.0)
            check_bool(elementwise_affine, "elementwise_affine")
            check_bool(bias, "bias")
            check_factory_kwargs(device, dtype)
        self.normalized_shape = normalized_shape
        self.alpha_init = alpha_init
        self.elementwise_affine = elementwise_affine
        # (1,), as the authors' torch.ones(1) * alpha_init_value
        self.alpha = nn.Parameter(torch.empty(1, device=device, dtype=dtype))
        _affine_parameters(
            self, self.normalized_shape, elementwise_affine, bias, device, dtype
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``alpha`` back to ``alpha_init``, ``weight`` to ones and ``bias`` to
        zeros, as at construction."""
        nn.init.constant_(self.alpha, self.alpha_init)
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x = check_normalized_input(input, self.normalized_shape, self.alpha)
        return CF._dynamic_tanh(x, self.alpha, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, alpha_init={self.alpha_init}, "
            f"elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )


class BatchNorm(nn.Module):
    r"""Channel-last batch normalization (Ioffe & Szegedy, 2015) with an optional
    mask.

    The arguments, parameters and buffers of ``nn.BatchNorm1d``, whose input is
    channel-first ``(N, C, L)``; this one takes ``(*, C)``, e.g. ``(B, T, C)`` token
    batches, and ``forward(input, mask=...)`` takes the statistics over the
    positions where ``mask`` is True only. Training mode normalizes with the batch's
    statistics (biased variance) and updates the running ones (unbiased variance);
    eval mode uses the running ones:

    .. math:: y = \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} \odot \gamma
        + \beta,
        \qquad \hat\mu \leftarrow (1 - m)\,\hat\mu + m\,\mu_B

    Args:
        num_features (int): ``C``, the number of channels (the last dimension).
        eps (float): added to the variance inside the square root. Default:
            ``1e-5``.
        momentum (float or None): ``m`` in the running-statistics update; ``None``
            keeps a cumulative average (``m = 1 / num_batches_tracked``), as torch
            does. Default: ``0.1``.
        affine (bool): learn ``weight`` (gamma, starts at 1) and ``bias`` (beta,
            starts at 0), both of shape ``(C,)``. Default: ``True``.
        track_running_stats (bool): keep ``running_mean`` (starts at 0),
            ``running_var`` (starts at 1) and ``num_batches_tracked``; without them,
            eval mode normalizes with the batch's statistics too. Default: ``True``.
        device: where the parameters and buffers are made. Default: torch's default
            device.
        dtype: their floating-point dtype. Default: torch's default dtype.
        bias (bool): keyword-only; with ``affine``, learn ``bias`` too. Default:
            ``True``.

    Shape:
        - Input: ``(*, C)``, at least 2-D
        - Mask: ``input.shape[:-1]``, bool, True = a real position
        - Output: ``(*, C)``, the shape of the input

    Example:
        >>> import torch
        >>> from course_lib.norms import BatchNorm
        >>> norm = BatchNorm(1)
        >>> # the last row is padding
        >>> x = torch.tensor([[1.0], [2.0], [3.0], [99.0]])
        >>> real = torch.tensor([True, True, True, False])
        >>> [f"{v:.4f}" for v in norm(x, mask=real)[:3, 0].tolist()]
        ['-1.2247', '0.0000', '1.2247']
        >>> # 0.9 * 0 + 0.1 * 2, over real rows only
        >>> f"{norm.running_mean.item():.4f}"
        '0.2000'
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if _checking():
            check_int(num_features, "num_features")
            eps = check_eps(eps)
            if momentum is not None:
                momentum = check_probability(momentum, "momentum")
            check_bool(affine, "affine")
            check_bool(track_running_stats, "track_running_stats")
            check_bool(bias, "bias")
            check_factory_kwargs(device, dtype)
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _affine_parameters(self, num_features, affine, bias, device, dtype)
        if track_running_stats:
            self.register_buffer(
                "running_mean", torch.zeros(num_features, **factory)
            )
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            counter = {"device": factory["device"], "dtype": torch.long}
            self.register_buffer("num_batches_tracked", torch.tensor(0, **counter))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """``running_mean`` back to 0, ``running_var`` to 1, ``num_batches_tracked``
        to 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """The running statistics reset, ``weight`` back to ones and ``bias`` to
        zeros."""
        self.reset_running_stats()
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(
        self, input: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        like = self.weight if self.weight is not None else self.running_mean
        x = check_normalized_input(input, (self.num_features,), like, min_dim=2)
        if mask is not None:
            mask = check_mask(mask, "mask", tuple(x.shape[:-1]))
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative average, as torch's
                momentum = 1.0 / float(self.num_batches_tracked)
        return CF._batch_norm(
            x,
            self.running_mean if self.track_running_stats else None,
            self.running_var if self.track_running_stats else None,
            self.weight,
            self.bias,
            training=self.training or not self.track_running_stats,
            momentum=momentum,
            eps=self.eps,
            mask=mask,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


def make_norm(
    norm: str,
    num_features: int,
    *,
    eps: float = 1e-5,
    elementwise_affine: bool = True,
    bias: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    alpha_init: float = 0.5,
) -> nn.Module:
    """The normalization layer named ``norm`` (one of :data:`NORMS`) over
    ``num_features``.

    The arguments keep torch's names and defaults; each goes to the layer that has
    it:

    ============ ==================================================================
    ``norm``     layer
    ============ ==================================================================
    ``"none"``   ``nn.Identity()``: the other arguments are checked, then unused
    ``"batch"``  ``BatchNorm(num_features, eps, affine=elementwise_affine,
                 bias=bias)``
    ``"layer"``  ``LayerNorm(num_features, eps, elementwise_affine, bias)``
    ``"rms"``    ``RMSNorm(num_features, eps, elementwise_affine)``: no shift, so
                 ``bias`` does not apply
    ``"dyt"``    ``DynamicTanh(num_features, alpha_init, elementwise_affine,
                 bias)``: no statistics, so ``eps`` does not apply
    ============ ==================================================================

    Args:
        norm (str): which normalization, one of ``"none"``, ``"batch"``,
            ``"layer"``, ``"rms"``, ``"dyt"``.
        num_features (int): the size of the normalized (last) dimension, e.g.
            ``d_model``.
        eps (float): keyword-only; added inside the square root. Default: ``1e-5``.
        elementwise_affine (bool): keyword-only; learn a scale ``weight`` (and,
            where the layer has one, a shift ``bias``). Default: ``True``.
        bias (bool): keyword-only; learn the shift ``bias`` ("batch", "layer").
            Default: ``True``.
        device: keyword-only; where the parameters are made. Default: torch's
            default.
        dtype: keyword-only; their floating-point dtype. Default: torch's default
            dtype.
        alpha_init (float): keyword-only; ``"dyt"``'s starting slope, ``> 0``.
            Default: ``0.5``.

    Shape:
        - Input: ``(*, num_features)`` (at least 2-D for ``"batch"``)
        - Output: the shape of the input

    Example:
        >>> from course_lib.norms import NORMS, make_norm
        >>> [type(make_norm(name, 8)).__name__ for name in NORMS]
        ['Identity', 'BatchNorm', 'LayerNorm', 'RMSNorm', 'DynamicTanh']
        >>> make_norm("layer", 8, eps=1e-6, bias=False)
        LayerNorm((8,), eps=1e-06, elementwise_affine=True, bias=False)
    """
    norm = check_choice(norm, "norm", NORMS)
    return _make_norm(
        norm,
        check_int(num_features, "num_features"),
        check_eps(eps),
        check_bool(elementwise_affine, "elementwise_affine"),
        check_bool(bias, "bias"),
        check_factory_kwargs(device, dtype),
        check_real(alpha_init, "alpha_init", minimum=0.0),
    )


def _make_norm(
    norm: str,
    num_features: int,
    eps: float,
    elementwise_affine: bool,
    bias: bool,
    factory: dict[str, Any],
    alpha_init: float = 0.5,
) -> nn.Module:
    """:func:`make_norm` on validated arguments (a ``BlockConfig``'s, or its
    own); ``alpha_init`` is used by ``"dyt"`` only."""
    if norm == "none":
        return nn.Identity()
    if norm == "batch":
        return _trusted(
            BatchNorm,
            num_features,
            eps,
            0.1,
            elementwise_affine,
            True,
            bias=bias,
            **factory,
        )
    if norm == "layer":
        return _trusted(
            LayerNorm, (num_features,), eps, elementwise_affine, bias, **factory
        )
    if norm == "dyt":
        return _trusted(
            DynamicTanh,
            (num_features,),
            alpha_init,
            elementwise_affine,
            bias,
            **factory,
        )
    return _trusted(RMSNorm, (num_features,), eps, elementwise_affine, **factory)
