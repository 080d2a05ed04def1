"""``nn.Module`` wrappers over :mod:`course_lib.functional`, with torch's names.

Parameters and buffers are named as torch names them (``weight``, ``bias``,
``running_mean``, ``running_var``, ``num_batches_tracked``), so ``state_dict``s move
between these modules and torch's own in both directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from . import functional as CF
from ._checks import check_eps, check_float_tensor, check_mask, check_probability

__all__ = [
    "BatchNorm",
    "BlockConfig",
    "LayerNorm",
    "MultiHeadAttention",
    "RMSNorm",
    "TransformerBlock",
    "TransformerStack",
]


def _shape_tuple(normalized_shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(normalized_shape, bool):
        raise TypeError("normalized_shape must be an int or a sequence of ints, got bool")
    if isinstance(normalized_shape, int):
        shape: tuple[int, ...] = (normalized_shape,)
    else:
        shape = tuple(normalized_shape)
    if not shape or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(f"normalized_shape must be positive ints, got {normalized_shape!r}")
    return shape


class LayerNorm(nn.Module):
    r"""LayerNorm over the trailing ``normalized_shape`` dims, as ``nn.LayerNorm``.

    .. math:: y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    ``weight`` (gamma) starts at 1 and ``bias`` (beta) at 0. ``elementwise_affine=False``
    drops both; ``bias=False`` keeps only the scale (as several recent language models
    do).

    Shape:
        input ``(*, *normalized_shape)``; output as input.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = check_eps(eps)
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return CF.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class RMSNorm(nn.Module):
    r"""RMSNorm (Zhang & Sennrich, 2019), as ``nn.RMSNorm``.

    .. math:: y = \gamma \odot \frac{x}{\sqrt{\overline{x^2} + \epsilon}}

    Shape:
        input ``(*, *normalized_shape)``; output as input.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = None if eps is None else check_eps(eps)
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        else:
            self.register_parameter("weight", None)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return CF.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class BatchNorm(nn.Module):
    r"""Channel-last BatchNorm with an optional mask of real positions.

    Same parameters and buffers as ``nn.BatchNorm1d`` (whose input is channel-first
    ``(N, C, L)``); this one takes ``(*, C)``, e.g. ``(B, T, C)`` token batches, and
    ``forward(input, mask=...)`` takes statistics over the positions where ``mask`` is
    True only. Training mode normalizes with the batch's statistics and updates the
    running ones; eval mode uses the running ones.

    .. math:: y = \gamma \odot \frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} + \beta

    Shape:
        input ``(*, C)``; mask ``input.shape[:-1]`` bool; output as input.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        self.num_features = num_features
        self.eps = check_eps(eps)
        self.momentum = check_probability(momentum, "momentum")
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def forward(self, input: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        use_batch_stats = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        return CF.batch_norm(
            input,
            self.running_mean if self.track_running_stats else None,
            self.running_var if self.track_running_stats else None,
            self.weight,
            self.bias,
            training=use_batch_stats,
            momentum=self.momentum,
            eps=self.eps,
            mask=mask,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class MultiHeadAttention(nn.Module):
    r"""Multi-head self-attention with torch's parameter layout.

    .. math::
        \mathrm{head}_h = \mathrm{softmax}\!\left(\frac{Q_h K_h^\top}{\sqrt{d_k}}\right)V_h,
        \quad \mathrm{out} = [\mathrm{head}_1, \dots, \mathrm{head}_H]\,W_O

    ``in_proj`` packs the query, key and value projections as ``nn.MultiheadAttention``'s
    ``in_proj_weight`` does; ``out_proj`` is ``W_O``. ``forward(x, mask=...)`` takes a
    padding mask with True = real token (the opposite of torch's ``key_padding_mask``)
    and ``attn_mask`` with True = may attend.

    Shape:
        x ``(B, T, d_model)``; mask ``(B, T)`` bool; attn_mask ``(T, T)`` or
        ``(B, T, T)`` bool; output ``(B, T, d_model)`` (and weights ``(B, H, T, T)``).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.dropout = check_probability(dropout, "dropout")
        self.in_proj = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        # nn.MultiheadAttention's initialisation: xavier-uniform in_proj, zero biases.
        nn.init.xavier_uniform_(self.in_proj.weight)
        if bias:
            nn.init.zeros_(self.in_proj.bias)
            nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        *,
        return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = check_float_tensor(x, "x", min_dim=3)
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (B, T, {self.d_model}), got {tuple(x.shape)}")
        b, t, _ = x.shape
        allowed = torch.ones(b, 1, t, t, dtype=torch.bool, device=x.device)  # (B, 1, T, T)
        if mask is not None:
            mask = check_mask(mask, "mask", (b, t))
            allowed = allowed & mask[:, None, None, :]  # keys must be real tokens
        if attn_mask is not None:
            if not isinstance(attn_mask, torch.Tensor) or attn_mask.dtype != torch.bool:
                raise TypeError("attn_mask must be a torch.bool tensor (True = may attend)")
            if tuple(attn_mask.shape) == (t, t):
                allowed = allowed & attn_mask[None, None]
            elif tuple(attn_mask.shape) == (b, t, t):
                allowed = allowed & attn_mask[:, None]
            else:
                raise ValueError(
                    f"attn_mask must have shape ({t}, {t}) or ({b}, {t}, {t}), "
                    f"got {tuple(attn_mask.shape)}"
                )

        qkv = self.in_proj(x)  # (B, T, 3 d_model)
        q, k, v = qkv.split(self.d_model, dim=-1)
        # (B, T, d_model) -> (B, H, T, d_head)
        q, k, v = (z.view(b, t, self.n_heads, self.d_head).transpose(1, 2) for z in (q, k, v))
        weights = CF.attention_weights(q, k, attn_mask=allowed)  # (B, H, T, T)
        attn = nn.functional.dropout(weights, p=self.dropout, training=self.training)
        heads = torch.matmul(attn, v)  # (B, H, T, d_head)
        out = self.out_proj(heads.transpose(1, 2).reshape(b, t, self.d_model))
        return (out, weights) if return_weights else out


@dataclass(frozen=True)
class BlockConfig:
    """Hyper-parameters of one Transformer block.

    Defaults are small so that every chapter's experiment runs in seconds on two CPU
    cores; ``d_ff = 4 * d_model`` follows Vaswani et al. (2017).
    """

    d_model: int = 64  # width of the residual stream
    n_heads: int = 4  # d_model / n_heads = 16 dims per head
    d_ff: int = 256  # feed-forward width, 4 x d_model as in the original Transformer
    dropout: float = 0.0  # off: the chapters measure deterministic quantities
    eps: float = 1e-5  # torch's LayerNorm default
    bias: bool = True  # biases in linears and in LayerNorm, as nn.TransformerEncoderLayer
    norm: Literal["layer", "rms"] = "layer"  # LayerNorm, or RMSNorm (no centering)
    norm_first: bool = False  # False: Post-LN (Vaswani et al.); True: Pre-LN (Xiong et al.)
    activation: Literal["relu", "gelu"] = "relu"  # torch's default is relu

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "d_ff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        check_probability(self.dropout, "dropout")
        check_eps(self.eps)
        if self.norm not in ("layer", "rms"):
            raise ValueError(f"norm must be 'layer' or 'rms', got {self.norm!r}")
        if self.activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {self.activation!r}")
        if not isinstance(self.norm_first, bool):
            raise TypeError(f"norm_first must be a bool, got {type(self.norm_first).__name__}")


def make_norm(config: BlockConfig) -> nn.Module:
    """The normalization layer ``config`` asks for, over ``d_model``."""
    if config.norm == "rms":
        return RMSNorm(config.d_model, eps=config.eps)
    return LayerNorm(config.d_model, eps=config.eps, bias=config.bias)


class TransformerBlock(nn.Module):
    r"""One encoder block, Post-LN or Pre-LN, as ``nn.TransformerEncoderLayer``.

    .. math::
        \text{Post-LN } (\texttt{norm\_first=False}):\;
        x \leftarrow \mathrm{LN}(x + \mathrm{MHA}(x)),\;
        x \leftarrow \mathrm{LN}(x + \mathrm{FFN}(x))

        \text{Pre-LN } (\texttt{norm\_first=True}):\;
        x \leftarrow x + \mathrm{MHA}(\mathrm{LN}(x)),\;
        x \leftarrow x + \mathrm{FFN}(\mathrm{LN}(x))

    Submodule names follow torch (``self_attn``, ``linear1``, ``linear2``, ``norm1``,
    ``norm2``), and :meth:`from_torch` copies an ``nn.TransformerEncoderLayer``.

    Shape:
        x ``(B, T, d_model)``; mask ``(B, T)`` bool (True = real token); output as x.
    """

    def __init__(self, config: BlockConfig) -> None:
        super().__init__()
        if not isinstance(config, BlockConfig):
            raise TypeError(f"config must be a BlockConfig, got {type(config).__name__}")
        self.config = config
        self.self_attn = MultiHeadAttention(
            config.d_model, config.n_heads, config.dropout, config.bias
        )
        self.linear1 = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.linear2 = nn.Linear(config.d_ff, config.d_model, bias=config.bias)
        self.norm1 = make_norm(config)
        self.norm2 = make_norm(config)
        self.dropout = nn.Dropout(config.dropout)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.dropout)
        self.activation = nn.functional.relu if config.activation == "relu" else nn.functional.gelu

    def _sa_block(
        self, x: torch.Tensor, mask: torch.Tensor | None, attn_mask: torch.Tensor | None
    ) -> torch.Tensor:
        return self.dropout1(self.self_attn(x, mask=mask, attn_mask=attn_mask))

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

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

        ``layer`` must be an ``nn.TransformerEncoderLayer(batch_first=True)`` with relu or
        gelu activation.
        """
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(
                f"layer must be an nn.TransformerEncoderLayer, got {type(layer).__name__}"
            )
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
        block = cls(config).to(dtype=layer.linear1.weight.dtype)
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

    Pre-LN stacks end with a final normalization (Xiong et al., 2020), since the residual
    stream itself is never normalized inside the blocks; ``final_norm=None`` adds it
    exactly when ``config.norm_first`` is True.

    Shape:
        x ``(B, T, d_model)``; mask ``(B, T)`` bool; output as x, or with
        ``return_hidden=True`` also the list of ``n_layers + 1`` hidden states (the input,
        then each block's output, before the final norm).
    """

    def __init__(self, config: BlockConfig, n_layers: int, final_norm: bool | None = None) -> None:
        super().__init__()
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers <= 0:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        self.config = config
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(n_layers))
        use_final = config.norm_first if final_norm is None else final_norm
        self.final_norm = make_norm(config) if use_final else None

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
