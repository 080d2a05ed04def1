r"""The Transformer: multi-head attention, a block configuration, blocks and stacks.

Submodule and parameter names follow ``nn.TransformerEncoderLayer`` (``self_attn``,
``linear1``, ``linear2``, ``norm1``, ``norm2``), so a reader can set the two side by
side and :meth:`TransformerBlock.from_torch` copies one of torch's layers.
:class:`MultiHeadAttention` takes ``nn.MultiheadAttention``'s arguments, and
:meth:`MultiHeadAttention.from_torch` copies one. Tensors are batch-first, ``(B, T,
d_model)`` (``batch_first=False`` gives attention torch's ``(T, B, d_model)``);
masks are boolean with True = real token / may attend.

A :class:`BlockConfig` is frozen and validates itself when it is made; blocks and
stacks trust it after that and build their parts without checking its values again.
Each module's ``forward`` checks its own input once per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from . import functional as CF
from ._checks import (
    check_bool,
    check_choice,
    check_eps,
    check_factory_kwargs,
    check_heads,
    check_instance,
    check_int,
    check_key_value,
    check_mask,
    check_probability,
    check_real,
    check_self_attn_mask,
    check_tokens,
)
from .norms import _checking, _make_norm, _trusted

__all__ = [
    "BlockConfig",
    "MultiHeadAttention",
    "TransformerBlock",
    "TransformerStack",
]

#: The norms a block can use, named as in :data:`course_lib.norms.NORMS`.
_BLOCK_NORMS = ("layer", "rms", "dyt")
_ACTIVATIONS = ("relu", "gelu")


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention with ``nn.MultiheadAttention``'s arguments, parameter
    layout and initialisation.

    .. math::
        \mathrm{head}_h
        = \mathrm{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt{d_k}}\right)V_h,
        \quad \mathrm{out} = [\mathrm{head}_1, \dots, \mathrm{head}_H]\,W_O

    with :math:`Q = \mathrm{query}\,W_Q`, :math:`K = \mathrm{key}\,W_K` and
    :math:`V = \mathrm{value}\,W_V`; ``key`` and ``value`` default to ``query``
    (self-attention, how every chapter calls it). The constructor takes torch's
    arguments in torch's order, with one difference: ``batch_first`` defaults to
    ``True`` here, ``False`` in torch. ``in_proj`` packs the three projections as
    torch's ``in_proj_weight`` and ``in_proj_bias`` do (Xavier-uniform, zero bias);
    when ``kdim`` or ``vdim`` differs from ``d_model`` they are separate, as in
    torch: ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` and the packed
    ``in_proj_bias``, with ``in_proj`` None. ``out_proj`` is ``W_O`` (zero bias).
    ``forward`` takes a padding mask with True = real token (the opposite of
    torch's ``key_padding_mask``) and ``attn_mask`` with True = may attend, and
    returns the weights of every head before dropout.

    Args:
        d_model (int): the width of the queries and of the output (torch's
            ``embed_dim``).
        n_heads (int): the number of heads (torch's ``num_heads``); must divide
            ``d_model``, each head has ``d_head = d_model // n_heads`` dimensions.
        dropout (float): dropout on the attention weights in training mode.
            Default: ``0.0``.
        bias (bool): biases in the input projections and ``out_proj``. Default:
            ``True``.
        add_bias_kv (bool): learn one more key and value, ``bias_k`` and
            ``bias_v`` of shape ``(1, 1, d_model)`` (Xavier-normal), appended to
            every sequence's projected keys and values. Default: ``False``.
        add_zero_attn (bool): append one more key and value, all zeros, after
            them (a key every query may attend to). Default: ``False``.
        kdim (int or None): the width of ``key``; None means ``d_model``.
            Default: ``None``.
        vdim (int or None): the width of ``value``; None means ``d_model``.
            Default: ``None``.
        batch_first (bool): tensors are ``(B, T, E)``; ``False`` takes and
            returns ``(T, B, E)``, as torch does. Default: ``True``, **unlike
            torch's** ``False``: the course's tensors are batch-first.
        device: where the parameters are made. Default: torch's default device.
        dtype: their floating-point dtype. Default: torch's default dtype.

    Shape:
        - query: ``(B, T, d_model)``; key ``(B, S, kdim)``, value ``(B, S,
          vdim)`` (``(T, B, ...)`` and ``(S, B, ...)`` when not
          ``batch_first``); key and value default to query (``S = T``)
        - mask: ``(B, S)``, bool, True = real token (keys that may be attended
          to)
        - attn_mask: ``(T, S)`` or ``(B, T, S)``, bool, True = query may attend
          to key
        - Output: ``(B, T, d_model)`` (``(T, B, d_model)`` when not
          ``batch_first``); with ``return_weights=True`` also the attention
          weights ``(B, n_heads, T, S')`` before dropout, ``S'`` counting the
          keys that ``add_bias_kv`` and ``add_zero_attn`` append

    Example:
        >>> import torch
        >>> from course_lib.transformer import MultiHeadAttention
        >>> _ = torch.manual_seed(0)
        >>> attn = MultiHeadAttention(8, 2)
        >>> x = torch.randn(1, 3, 8)
        >>> causal = torch.ones(3, 3, dtype=torch.bool).tril()
        >>> out, weights = attn(x, attn_mask=causal, return_weights=True)
        >>> tuple(out.shape), tuple(weights.shape)
        ((1, 3, 8), (1, 2, 3, 3))
        >>> # token 0 sees only itself
        >>> [f"{w:.1f}" for w in weights[0, 0, 0].tolist()]
        ['1.0', '0.0', '0.0']
        >>> # cross-attention: 3 queries over 5 keys and values of width 4
        >>> cross = MultiHeadAttention(8, 2, kdim=4, vdim=4)
        >>> memory = torch.randn(1, 5, 4)
        >>> tuple(cross(x, memory, memory).shape)
        (1, 3, 8)
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if _checking():
            check_int(d_model, "d_model")
            check_int(n_heads, "n_heads")
            check_heads(d_model, n_heads)
            dropout = check_probability(dropout, "dropout")
            for name, flag in (
                ("bias", bias),
                ("add_bias_kv", add_bias_kv),
                ("add_zero_attn", add_zero_attn),
                ("batch_first", batch_first),
            ):
                check_bool(flag, name)
            for name, dim in (("kdim", kdim), ("vdim", vdim)):
                if dim is not None:
                    check_int(dim, name)
            check_factory_kwargs(device, dtype)
        factory = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.dropout = dropout
        self.kdim = d_model if kdim is None else kdim
        self.vdim = d_model if vdim is None else vdim
        self.add_zero_attn = add_zero_attn
        self.batch_first = batch_first
        # torch's test: one packed projection when key and value have d_model too
        self._qkv_same_embed_dim = self.kdim == d_model and self.vdim == d_model
        if self._qkv_same_embed_dim:
            self.in_proj = nn.Linear(d_model, 3 * d_model, bias=bias, **factory)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.in_proj = None
            for name, width in (
                ("q_proj_weight", d_model),
                ("k_proj_weight", self.kdim),
                ("v_proj_weight", self.vdim),
            ):
                weight = torch.empty(d_model, width, **factory)
                self.register_parameter(name, nn.Parameter(weight))
            packed_bias = torch.empty(3 * d_model, **factory)
            self.register_parameter(
                "in_proj_bias", nn.Parameter(packed_bias) if bias else None
            )
        self.out_proj = nn.Linear(d_model, d_model, bias=bias, **factory)
        for name in ("bias_k", "bias_v"):
            extra = torch.empty(1, 1, d_model, **factory)
            self.register_parameter(
                name, nn.Parameter(extra) if add_bias_kv else None
            )
        self._init_like_torch()

    def _init_like_torch(self) -> None:
        # nn.MultiheadAttention's initialisation: xavier-uniform input
        # projections, zero biases, xavier-normal bias_k and bias_v.
        if self.in_proj is not None:
            nn.init.xavier_uniform_(self.in_proj.weight)
            in_bias = self.in_proj.bias
        else:
            nn.init.xavier_uniform_(self.q_proj_weight)
            nn.init.xavier_uniform_(self.k_proj_weight)
            nn.init.xavier_uniform_(self.v_proj_weight)
            in_bias = self.in_proj_bias
        if in_bias is not None:
            nn.init.zeros_(in_bias)
            nn.init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)

    def reset_parameters(self) -> None:
        """Re-draw the parameters as construction draws them, in the same order.

        The ``nn.Linear`` initialisations run first, as when the layers are made
        (the Xavier draw then replaces ``in_proj``'s): a model built under a seed
        draws the same random numbers as it always has, and the chapters' printed
        numbers depend on them. With separate projections the draws are torch's.
        """
        if self.in_proj is not None:
            self.in_proj.reset_parameters()
        self.out_proj.reset_parameters()
        self._init_like_torch()

    @classmethod
    def from_torch(cls, attn: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of ``attn``: its arguments (``batch_first`` included) and weights.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from course_lib.transformer import MultiHeadAttention
            >>> theirs = nn.MultiheadAttention(8, 2, add_bias_kv=True, kdim=4)
            >>> ours = MultiHeadAttention.from_torch(theirs)
            >>> ours.batch_first  # torch's default, copied
            False
            >>> q, kv = torch.randn(3, 2, 8), torch.randn(5, 2, 4)  # (T, B, E)
            >>> v = torch.randn(5, 2, 8)
            >>> bool((ours(q, kv, v) - theirs(q, kv, v)[0]).abs().max() < 1e-6)
            True
        """
        attn = check_instance(attn, "attn", nn.MultiheadAttention)
        weight = attn.out_proj.weight
        # Built in the default dtype, then moved: the same random draws as always.
        ours = cls(
            attn.embed_dim,
            attn.num_heads,
            float(attn.dropout),
            attn.out_proj.bias is not None,
            attn.bias_k is not None,
            bool(attn.add_zero_attn),
            attn.kdim,
            attn.vdim,
            bool(attn.batch_first),
        ).to(device=weight.device, dtype=weight.dtype)
        _copy_parameters(ours, attn)
        return ours.train(attn.training)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``query`` to ``key`` (default: ``query``) and ``value``
        (default: ``key``).

        ``mask``, ``attn_mask`` and ``return_weights`` are keyword-only: torch's
        fourth argument is ``key_padding_mask``, whose True means the opposite.
        """
        query, key, value = self._check_inputs(query, key, value)
        b, t, _ = query.shape
        s = key.shape[1]
        allowed = None  # (B or 1, 1, T, S): which keys each query may attend to
        if mask is not None:
            mask = check_mask(mask, "mask", (b, s))
            allowed = mask[:, None, None, :]  # keys must be real tokens
        if attn_mask is not None:
            attn_mask = check_self_attn_mask(attn_mask, b, t, keys=s)
            per_query = (
                attn_mask[None, None]
                if attn_mask.dim() == 2
                else attn_mask[:, None]
            )
            allowed = per_query if allowed is None else allowed & per_query

        q, k, v = self._in_projection(query, key, value)  # (B, T or S, d_model)
        appended = []  # the keys and values every sequence gets, (B, 1, d_model)
        if self.bias_k is not None:
            appended.append((self.bias_k, self.bias_v))
        if self.add_zero_attn:
            zero = k.new_zeros(1, 1, self.d_model)
            appended.append((zero, zero))
        for extra_k, extra_v in appended:
            k = torch.cat([k, extra_k.expand(b, 1, -1)], dim=1)
            v = torch.cat([v, extra_v.expand(b, 1, -1)], dim=1)
        if allowed is not None:
            allowed = allowed.expand(b, 1, t, s)
            if appended:  # every query may attend to the appended keys
                extra = allowed.new_ones(b, 1, t, len(appended))
                allowed = torch.cat([allowed, extra], dim=-1)
        # (B, T or S', d_model) -> (B, H, T or S', d_head)
        q, k, v = (
            z.view(b, z.shape[1], self.n_heads, self.d_head).transpose(1, 2)
            for z in (q, k, v)
        )
        weights = CF._attention_weights(q, k, allowed, None)  # (B, H, T, S')
        attn = nn.functional.dropout(
            weights, p=self.dropout, training=self.training
        )
        heads = torch.matmul(attn, v)  # (B, H, T, d_head)
        out = self.out_proj(heads.transpose(1, 2).reshape(b, t, self.d_model))
        if not self.batch_first:
            out = out.transpose(0, 1)  # (T, B, d_model)
        return (out, weights) if return_weights else out

    def _check_inputs(
        self,
        query: object,
        key: object | None,
        value: object | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``query``, ``key`` and ``value`` checked and put batch-first; a default
        ``key`` is ``query`` itself and a default ``value`` is ``key`` (so that
        :meth:`_in_projection` can see self-attention)."""
        layout = {"like": self.out_proj.weight, "batch_first": self.batch_first}
        query = check_tokens(query, "query", self.d_model, **layout)
        key = _given_or_default(
            key,
            ("key", "kdim", self.kdim),
            query,
            ("d_model", self.d_model),
            layout,
        )
        value = _given_or_default(
            value, ("value", "vdim", self.vdim), key, ("kdim", self.kdim), layout
        )
        if not self.batch_first:  # (T, B, E) -> (B, T, E); the same tensor once
            seen: dict[int, torch.Tensor] = {}
            query, key, value = (
                seen.setdefault(id(z), z.transpose(0, 1))
                for z in (query, key, value)
            )
        if key is not query or value is not query:
            check_key_value(key, value, query.shape[0])
        return query, key, value

    def _in_projection(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(query W_Q + b_Q, key W_K + b_K, value W_V + b_V)``, as torch's
        ``_in_projection_packed`` computes them: self-attention in one product."""
        d = self.d_model
        if self.in_proj is not None and key is query and value is query:
            return self.in_proj(query).split(d, dim=-1)  # (B, T, 3 d) in three
        if self.in_proj is not None:
            weights = self.in_proj.weight.split(d)
            bias = self.in_proj.bias
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
            bias = self.in_proj_bias
        biases = (None,) * 3 if bias is None else bias.split(d)
        return tuple(  # type: ignore[return-value]
            nn.functional.linear(x, w, b_)
            for x, w, b_ in zip((query, key, value), weights, biases, strict=True)
        )


def _given_or_default(
    x: object | None,
    expected: tuple[str, str, int],
    default: torch.Tensor,
    default_width: tuple[str, int],
    layout: dict[str, Any],
) -> torch.Tensor:
    """Attention's ``key`` (or ``value``) checked, or ``default`` (the query, or the
    key) when it is None, which needs the same width: ``expected`` is the
    argument's name, its width's name and the width, ``default_width`` the name and
    value of the default's."""
    name, dim_name, width = expected
    if x is not None:
        return check_tokens(x, name, width, **layout)
    if width != default_width[1]:
        raise ValueError(
            f"{name} is required: {dim_name} ({width}) differs from "
            f"{default_width[0]} ({default_width[1]})"
        )
    return default


#: Our parameter names that torch spells otherwise (``nn.MultiheadAttention`` keeps
#: the packed projection as two parameters, not as an ``nn.Linear``).
_TORCH_NAMES = {"in_proj.weight": "in_proj_weight", "in_proj.bias": "in_proj_bias"}


def _torch_name(name: str) -> str:
    """The name torch gives our parameter ``name`` (a dotted path)."""
    for ours, theirs in _TORCH_NAMES.items():
        if name == ours or name.endswith("." + ours):
            return name[: len(name) - len(ours)] + theirs
    return name


def _copy_parameters(ours: nn.Module, theirs: nn.Module) -> None:
    """Copy every parameter of torch's module ``theirs`` into the one of ``ours``
    that holds it (see :func:`_torch_name`); both must have the same parameters."""
    source = dict(theirs.named_parameters())
    target = {_torch_name(n): p for n, p in ours.named_parameters()}
    if target.keys() != source.keys():
        raise ValueError(
            "the torch module's parameters differ from ours: "
            f"{sorted(target.keys() ^ source.keys())}"
        )
    with torch.no_grad():
        for name, param in target.items():
            param.copy_(source[name])


@dataclass(frozen=True)
class BlockConfig:
    """Hyper-parameters of one Transformer block, validated once, when it is made.

    Defaults are small so that every chapter's experiment runs in seconds on two CPU
    cores; ``d_ff = 4 * d_model`` follows Vaswani et al. (2017). ``norm`` names the
    normalization as :data:`course_lib.norms.NORMS` does: ``"layer"``, ``"rms"`` or
    ``"dyt"`` (:class:`~course_lib.norms.DynamicTanh`, whose starting slope is
    ``alpha_init``; the other norms ignore ``alpha_init``, and DyT ignores
    ``eps``).

    Example:
        >>> from course_lib.transformer import BlockConfig
        >>> config = BlockConfig(
        ...     d_model=32, n_heads=2, d_ff=128, norm="rms", norm_first=True
        ... )
        >>> config.norm
        'rms'
        >>> BlockConfig(d_model=30, n_heads=4)
        Traceback (most recent call last):
        ...
        ValueError: d_model (30) must be divisible by n_heads (4)
    """

    d_model: int = 64  # width of the residual stream
    n_heads: int = 4  # d_model / n_heads = 16 dims per head
    # feed-forward width, 4 x d_model as in the original Transformer
    d_ff: int = 256
    dropout: float = 0.0  # off: the chapters measure deterministic quantities
    eps: float = 1e-5  # torch's LayerNorm default
    # biases in linears and in LayerNorm, as nn.TransformerEncoderLayer
    bias: bool = True
    # LayerNorm, RMSNorm (no centering), or DyT (no statistics: tanh(alpha x))
    norm: Literal["layer", "rms", "dyt"] = "layer"
    # False: Post-LN (Vaswani et al.); True: Pre-LN (Xiong et al.)
    norm_first: bool = False
    activation: Literal["relu", "gelu"] = "relu"  # torch's default is relu
    # DyT's starting slope, used by norm="dyt" only: Zhu et al.'s (2025) default
    alpha_init: float = 0.5

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "d_ff"):
            check_int(getattr(self, name), name)
        check_heads(self.d_model, self.n_heads)
        check_probability(self.dropout, "dropout")
        check_eps(self.eps)
        check_bool(self.bias, "bias")
        check_choice(self.norm, "norm", _BLOCK_NORMS)
        check_bool(self.norm_first, "norm_first")
        check_choice(self.activation, "activation", _ACTIVATIONS)
        check_real(self.alpha_init, "alpha_init", minimum=0.0)


def _checked_factory(
    config: BlockConfig,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> dict[str, Any]:
    """A block's or a stack's ``config`` and factory arguments, checked (unless
    :func:`~course_lib.norms._trusted` builds); the factory arguments as a dict."""
    if _checking():
        check_instance(config, "config", BlockConfig)
        check_factory_kwargs(device, dtype)
    return {"device": device, "dtype": dtype}


def _block_norm(config: BlockConfig, factory: dict[str, Any]) -> nn.Module:
    """The normalization ``config`` asks for, over ``d_model`` (config already
    valid)."""
    return _make_norm(
        config.norm,
        config.d_model,
        config.eps,
        True,
        config.bias,
        factory,
        config.alpha_init,
    )


class TransformerBlock(nn.Module):
    r"""One encoder block, Post-LN or Pre-LN, as ``nn.TransformerEncoderLayer``.

    .. math::
        \text{Post-LN } (\texttt{norm\_first=False}):\;
        x \leftarrow \mathrm{LN}(x + \mathrm{MHA}(x)),\;
        x \leftarrow \mathrm{LN}(x + \mathrm{FFN}(x))

        \text{Pre-LN } (\texttt{norm\_first=True}):\;
        x \leftarrow x + \mathrm{MHA}(\mathrm{LN}(x)),\;
        x \leftarrow x + \mathrm{FFN}(\mathrm{LN}(x))

    with :math:`\mathrm{FFN}(x) = W_2\,\mathrm{act}(W_1 x + b_1) + b_2`. Submodule
    names follow torch (``self_attn``, ``linear1``, ``linear2``, ``norm1``,
    ``norm2``), and :meth:`from_torch` copies an ``nn.TransformerEncoderLayer``.

    Args:
        config (BlockConfig): the block's hyper-parameters (``d_model``,
            ``n_heads``, ``d_ff``, ``dropout``, ``eps``, ``bias``, ``norm``,
            ``norm_first``, ``activation``, ``alpha_init``), validated when it
            was made.
        device, dtype: keyword-only, as in :class:`MultiHeadAttention`.

    Shape:
        - x: ``(B, T, d_model)``
        - mask: ``(B, T)``, bool, True = real token
        - attn_mask: ``(T, T)`` or ``(B, T, T)``, bool, True = may attend
        - Output: ``(B, T, d_model)``

    Example:
        >>> import torch
        >>> from course_lib.transformer import BlockConfig, TransformerBlock
        >>> _ = torch.manual_seed(0)
        >>> block = TransformerBlock(BlockConfig(d_model=16, n_heads=2, d_ff=32))
        >>> # lengths 5 and 3
        >>> mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
        >>> y = block(torch.randn(2, 5, 16), mask=mask)
        >>> tuple(y.shape)
        (2, 5, 16)
        >>> f"{y[0, 0].mean().item():.4f}"  # Post-LN: each output row is normalized
        '0.0000'
    """

    def __init__(
        self,
        config: BlockConfig,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = _checked_factory(config, device, dtype)
        self.config = config
        # What nn.TransformerEncoderLayer passes to its attention: dropout and bias
        # (and batch_first, always True here).
        self.self_attn = _trusted(
            MultiHeadAttention,
            config.d_model,
            config.n_heads,
            config.dropout,
            config.bias,
            **factory,
        )
        self.linear1 = nn.Linear(
            config.d_model, config.d_ff, bias=config.bias, **factory
        )
        self.linear2 = nn.Linear(
            config.d_ff, config.d_model, bias=config.bias, **factory
        )
        self.norm1 = _block_norm(config, factory)
        self.norm2 = _block_norm(config, factory)
        self.dropout = nn.Dropout(config.dropout)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.activation = (
            nn.functional.relu
            if config.activation == "relu"
            else nn.functional.gelu
        )

    def reset_parameters(self) -> None:
        """Re-draw every parameter as construction draws them, in the same order."""
        self.self_attn.reset_parameters()
        self.linear1.reset_parameters()
        self.linear2.reset_parameters()
        self.norm1.reset_parameters()
        self.norm2.reset_parameters()

    def _sa_block(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        return self.dropout1(self.self_attn(x, mask=mask, attn_mask=attn_mask))

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout2(
            self.linear2(self.dropout(self.activation(self.linear1(x))))
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.config.norm_first:
            x = x + self._sa_block(self.norm1(x), mask, attn_mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, mask, attn_mask))
            x = self.norm2(x + self._ff_block(x))
        return x

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> TransformerBlock:
        """A block with the configuration and a copy of the weights of ``layer``.

        Args:
            layer (nn.TransformerEncoderLayer): built with ``batch_first=True`` and
                relu or gelu activation.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from course_lib.transformer import TransformerBlock
            >>> layer = nn.TransformerEncoderLayer(
            ...     8, 2, 16, dropout=0.0, batch_first=True
            ... )
            >>> block = TransformerBlock.from_torch(layer.eval()).eval()
            >>> x = torch.randn(2, 4, 8)
            >>> bool((block(x) - layer(x)).abs().max() < 1e-5)
            True
        """
        layer = check_instance(layer, "layer", nn.TransformerEncoderLayer)
        attn = layer.self_attn
        if not attn.batch_first:
            raise ValueError("layer must be built with batch_first=True")
        act = layer.activation
        if act is nn.functional.relu or isinstance(act, nn.ReLU):
            activation = "relu"
        elif act is nn.functional.gelu or isinstance(act, nn.GELU):
            activation = "gelu"
        else:
            raise ValueError(f"layer.activation must be relu or gelu, got {act!r}")
        config = BlockConfig(
            d_model=attn.embed_dim,
            n_heads=attn.num_heads,
            d_ff=layer.linear1.out_features,
            dropout=float(layer.dropout.p),
            eps=float(layer.norm1.eps),
            bias=layer.linear1.bias is not None,
            norm="layer",
            norm_first=bool(layer.norm_first),
            activation=activation,
        )
        # Built in the default dtype, then moved: the same random draws as always.
        weight = layer.linear1.weight
        block = cls(config).to(device=weight.device, dtype=weight.dtype)
        _copy_parameters(block, layer)
        return block.train(layer.training)


class TransformerStack(nn.Module):
    r"""``n_layers`` blocks of one configuration, with an optional final norm.

    Pre-LN stacks end with a final normalization (Xiong et al., 2020), since the
    residual stream itself is never normalized inside the blocks:

    .. math:: x_{l+1} = \mathrm{Block}_l(x_l),\quad
        \mathrm{out} = \mathrm{Norm}(x_L) \text{ (or } x_L \text{ without a final
        norm)}

    Args:
        config (BlockConfig): the configuration of every block.
        n_layers (int): the number of blocks, ``L``.
        final_norm (bool or None): add a final normalization (of kind
            ``config.norm``); ``None`` adds it exactly when ``config.norm_first`` is
            True. Default: ``None``.
        device, dtype: keyword-only, as in :class:`MultiHeadAttention`.

    Shape:
        x, mask, attn_mask and the output as in :class:`TransformerBlock`; with
        ``return_hidden=True`` also the list of ``n_layers + 1`` hidden states (the
        input, then each block's output, before the final norm).

    Example:
        >>> import torch
        >>> from course_lib.transformer import BlockConfig, TransformerStack
        >>> config = BlockConfig(d_model=16, n_heads=2, d_ff=32, norm_first=True)
        >>> stack = TransformerStack(config, 3)
        >>> stack.final_norm is not None  # Pre-LN: a final norm by default
        True
        >>> out, hidden = stack(torch.randn(2, 5, 16), return_hidden=True)
        >>> len(hidden), tuple(out.shape)
        (4, (2, 5, 16))
    """

    def __init__(
        self,
        config: BlockConfig,
        n_layers: int,
        final_norm: bool | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = _checked_factory(config, device, dtype)
        if _checking():
            check_int(n_layers, "n_layers")
            if final_norm is not None:
                check_bool(final_norm, "final_norm")
        self.config = config
        self.layers = nn.ModuleList(
            _trusted(TransformerBlock, config, **factory) for _ in range(n_layers)
        )
        use_final = config.norm_first if final_norm is None else final_norm
        self.final_norm = _block_norm(config, factory) if use_final else None

    def reset_parameters(self) -> None:
        """Re-draw every parameter as construction draws them, in the same order."""
        for layer in self.layers:
            layer.reset_parameters()
        if self.final_norm is not None:
            self.final_norm.reset_parameters()

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        *,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        hidden = [x]
        for layer in self.layers:
            x = layer(x, mask=mask, attn_mask=attn_mask)
            hidden.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return (x, hidden) if return_hidden else x
