"""Argument checks shared by every public function.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind,
wrong value) with a message that names the argument, so a learner who passes the wrong
thing is told which thing and what was expected instead of getting a silently
broadcast, wrong answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "as_shape",
    "check_eps",
    "check_float_tensor",
    "check_mask",
    "check_param",
    "check_probability",
    "check_query_key",
]


def check_float_tensor(x: object, name: str, *, min_dim: int = 1) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor with at least ``min_dim`` dims."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must have a floating-point dtype (e.g. torch.float32), got {x.dtype}"
        )
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimension(s), got shape {tuple(x.shape)}"
        )
    return x


def check_eps(eps: object, name: str = "eps") -> float:
    """Return ``eps`` as a float if it is a finite number > 0."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(eps).__name__}")
    eps = float(eps)
    if not math.isfinite(eps) or eps <= 0.0:
        raise ValueError(f"{name} must be finite and > 0, got {eps}")
    return eps


def check_probability(p: object, name: str) -> float:
    """Return ``p`` as a float if it is a number in [0, 1]."""
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{name} must be a real number in [0, 1], got {type(p).__name__}")
    p = float(p)
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return p


def as_shape(
    normalized_shape: object, x: torch.Tensor, *, input_name: str = "input"
) -> tuple[int, ...]:
    """Validate ``normalized_shape`` against the trailing dimensions of ``x``.

    Accepts an int or a sequence of ints, as torch does, and returns a tuple.
    """
    if isinstance(normalized_shape, bool):
        raise TypeError("normalized_shape must be an int or a sequence of ints, got bool")
    if isinstance(normalized_shape, int):
        shape: tuple[int, ...] = (normalized_shape,)
    elif isinstance(normalized_shape, (Sequence, torch.Size)) and not isinstance(
        normalized_shape, str
    ):
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in normalized_shape):
            raise TypeError(
                f"normalized_shape must contain only ints, got {list(normalized_shape)!r}"
            )
        shape = tuple(int(s) for s in normalized_shape)
    else:
        raise TypeError(
            "normalized_shape must be an int or a sequence of ints, "
            f"got {type(normalized_shape).__name__}"
        )
    if len(shape) == 0:
        raise ValueError("normalized_shape must name at least one dimension, got ()")
    if any(s <= 0 for s in shape):
        raise ValueError(f"normalized_shape must be positive, got {shape}")
    if x.dim() < len(shape) or tuple(x.shape[-len(shape) :]) != shape:
        raise ValueError(
            f"normalized_shape {shape} must match the trailing dimensions of {input_name}, "
            f"whose shape is {tuple(x.shape)}"
        )
    return shape


def check_param(
    p: object, name: str, shape: tuple[int, ...], like: torch.Tensor
) -> torch.Tensor | None:
    """``p`` must be None or a float tensor of exactly ``shape`` (no broadcasting)."""
    if p is None:
        return None
    p = check_float_tensor(p, name, min_dim=0)
    if tuple(p.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(p.shape)}")
    if p.dtype != like.dtype:
        raise TypeError(f"{name} must have dtype {like.dtype} like the input, got {p.dtype}")
    return p


def check_mask(mask: object, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """``mask`` must be a boolean tensor of exactly ``shape``."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of dtype torch.bool, got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must have dtype torch.bool (True = real token), got {mask.dtype}")
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(mask.shape)}")
    return mask


def check_query_key(query: object, key: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``query`` and ``key``: float tensors with the same d_k, dtype and batch dims."""
    q = check_float_tensor(query, "query", min_dim=2)
    k = check_float_tensor(key, "key", min_dim=2)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"query and key must have the same last dimension (d_k), got {q.shape[-1]} "
            f"and {k.shape[-1]}"
        )
    if q.dtype != k.dtype:
        raise TypeError(f"query and key must have the same dtype, got {q.dtype} and {k.dtype}")
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except RuntimeError as exc:
        raise ValueError(
            f"query and key batch dimensions do not match: {tuple(q.shape)} vs {tuple(k.shape)}"
        ) from exc
    return q, k
