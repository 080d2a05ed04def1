r"""The Transformer: multi-head attention, a block configuration, blocks and stacks.

Submodule and parameter names follow ``nn.TransformerEncoderLayer`` (``self_attn``,
``linear1``, ``linear2``, ``norm1``, ``norm2``), so a reader can set the two side by
side and :meth:`TransformerBlock.from_torch` copies one of torch's layers. Tensors
are batch-first, ``(B, T, d_model)``; masks are boolean with True = real token / may
attend.

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
    check_mask,
    check_probability,
    check_self_attn_mask,
    check_tokens,
)
from .norms import _make_norm, _trusted

__all__ = [
    "BlockConfig",
    "MultiHeadAttention",
    "TransformerBlock",
    "TransformerStack",
]

#: The norms a block can use, named as in :data:`course_lib.norms.NORMS`.
_BLOCK_NORMS = ("layer", "rms")
_ACTIVATIONS = ("relu", "gelu")


class MultiHeadAttention(nn.Module):
    r"""Multi-head self-attention with torch's parameter layout and initialisation.

    .. math::
        \mathrm{head}_h
        = \mathrm{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt{d_k}}\right)V_h,
        \quad \mathrm{out} = [\mathrm{head}_1, \dots, \mathrm{head}_H]\,W_O

    ``in_proj`` packs the query, key and value projections as
    ``nn.MultiheadAttention``'s ``in_proj_weight`` does (Xavier-uniform, zero bias);
    ``out_proj`` is ``W_O`` (zero bias). ``forward(x, mask=...)`` takes a padding
    mask with True = real token (the opposite of torch's ``key_padding_mask``) and
    ``attn_mask`` with True = may attend.

    Args:
        d_model (int): the width of the token vectors (torch's ``embed_dim``).
        n_heads (int): the number of heads (torch's ``num_heads``); must divide
            ``d_model``, each head has ``d_head = d_model // n_heads`` dimensions.
        dropout (float): dropout on the attention weights in training mode.
            Default: ``0.0``.
        bias (bool): biases in ``in_proj`` and ``out_proj``. Default: ``True``.
        device: keyword-only; where the parameters are made. Default: torch's
            default.
        dtype: keyword-only; their floating-point dtype. Default: torch's default
            dtype.

    Shape:
        - x: ``(B, T, d_model)``
        - mask: ``(B, T)``, bool, True = real token (keys that may be attended to)
        - attn_mask: ``(T, T)`` or ``(B, T, T)``, bool, True = query may attend to
          key
        - Output: ``(B, T, d_model)``; with ``return_weights=True`` also the
          attention weights ``(B, n_heads, T, T)`` (before dropout)

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
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        d_model, n_heads = (
            check_int(d_model, "d_model"),
            check_int(n_heads, "n_heads"),
        )
        check_heads(d_model, n_heads)
        self._build(
            d_model,
            n_heads,
            check_probability(dropout, "dropout"),
            check_bool(bias, "bias"),
            check_factory_kwargs(device, dtype),
        )

    def _build(
        self,
        d_model: int,
        n_heads: int,
        dropout: float,
        bias: bool,
        factory: dict[str, Any],
    ) -> None:
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.dropout = dropout
        self.in_proj = nn.Linear(d_model, 3 * d_model, bias=bias, **factory)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias, **factory)
        self._init_like_torch()

    def _init_like_torch(self) -> None:
        # nn.MultiheadAttention's initialisation: xavier-uniform in_proj, zero
        # biases.
        nn.init.xavier_uniform_(self.in_proj.weight)
        if self.in_proj.bias is not None:
            nn.init.zeros_(self.in_proj.bias)
            nn.init.zeros_(self.out_proj.bias)

    def reset_parameters(self) -> None:
        """Re-draw the parameters as construction draws them, in the same order.

        Both ``nn.Linear`` initialisations run first, as when the layers are made
        (the Xavier draw then replaces ``in_proj``'s): a model built under a seed
        draws the same random numbers as it always has, and the chapters' printed
        numbers depend on them.
        """
        self.in_proj.reset_parameters()
        self.out_proj.reset_parameters()
        self._init_like_torch()

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        *,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = check_tokens(x, "x", self.d_model, self.in_proj.weight)
        b, t, _ = x.shape
        allowed = None  # (B or 1, 1, T, T): which keys each query may attend to
        if mask is not None:
            mask = check_mask(mask, "mask", (b, t))
            allowed = mask[:, None, None, :]  # keys must be real tokens
        if attn_mask is not None:
            attn_mask = check_self_attn_mask(attn_mask, b, t)
            per_query = (
                attn_mask[None, None]
                if attn_mask.dim() == 2
                else attn_mask[:, None]
            )
            allowed = per_query if allowed is None else allowed & per_query
        if allowed is not None:
            allowed = allowed.expand(b, 1, t, t)

        qkv = self.in_proj(x)  # (B, T, 3 d_model)
        q, k, v = qkv.split(self.d_model, dim=-1)
        # (B, T, d_model) -> (B, H, T, d_head)
        q, k, v = (
            z.view(b, t, self.n_heads, self.d_head).transpose(1, 2)
            for z in (q, k, v)
        )
        weights = CF._attention_weights(q, k, allowed, None)  # (B, H, T, T)
        attn = nn.functional.dropout(
            weights, p=self.dropout, training=self.training
        )
        heads = torch.matmul(attn, v)  # (B, H, T, d_head)
        out = self.out_proj(heads.transpose(1, 2).reshape(b, t, self.d_model))
        return (out, weights) if return_weights else out


@dataclass(frozen=True)
class BlockConfig:
    """Hyper-parameters of one Transformer block, validated once, when it is made.

    Defaults are small so that every chapter's experiment runs in seconds on two CPU
    cores; ``d_ff = 4 * d_model`` follows Vaswani et al. (2017). ``norm`` names the
    normalization as :data:`course_lib.norms.NORMS` does.

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
    norm: Literal["layer", "rms"] = "layer"  # LayerNorm, or RMSNorm (no centering)
    # False: Post-LN (Vaswani et al.); True: Pre-LN (Xiong et al.)
    norm_first: bool = False
    activation: Literal["relu", "gelu"] = "relu"  # torch's default is relu

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


def _block_norm(config: BlockConfig, factory: dict[str, Any]) -> nn.Module:
    """The normalization ``config`` asks for, over ``d_model`` (config already
    valid)."""
    return _make_norm(
        config.norm, config.d_model, config.eps, True, config.bias, factory
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
            ``norm_first``, ``activation``), validated when it was made.
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
        self._build(
            check_instance(config, "config", BlockConfig),
            check_factory_kwargs(device, dtype),
        )

    def _build(self, config: BlockConfig, factory: dict[str, Any]) -> None:
        self.config = config
        self.self_attn = _trusted(
            MultiHeadAttention,
            config.d_model,
            config.n_heads,
            config.dropout,
            config.bias,
            factory,
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
        with torch.no_grad():
            block.self_attn.in_proj.weight.copy_(attn.in_proj_weight)
            block.self_attn.out_proj.weight.copy_(attn.out_proj.weight)
            block.linear1.weight.copy_(layer.linear1.weight)
            block.linear2.weight.copy_(layer.linear2.weight)
            block.norm1.weight.copy_(layer.norm1.weight)
            block.norm2.weight.copy_(layer.norm2.weight)
            if config.bias:
                block.self_attn.in_proj.bias.copy_(attn.in_proj_bias)
                block.self_attn.out_proj.bias.copy_(attn.out_proj.bias)
                block.linear1.bias.copy_(layer.linear1.bias)
                block.linear2.bias.copy_(layer.linear2.bias)
                block.norm1.bias.copy_(layer.norm1.bias)
                block.norm2.bias.copy_(layer.norm2.bias)
        block.train(layer.training)
        return block


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
        self._build(
            check_instance(config, "config", BlockConfig),
            check_int(n_layers, "n_layers"),
            None if final_norm is None else check_bool(final_norm, "final_norm"),
            check_factory_kwargs(device, dtype),
        )

    def _build(
        self,
        config: BlockConfig,
        n_layers: int,
        final_norm: bool | None,
        factory: dict[str, Any],
    ) -> None:
        self.config = config
        self.layers = nn.ModuleList(
            _trusted(TransformerBlock, config, factory) for _ in range(n_layers)
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
