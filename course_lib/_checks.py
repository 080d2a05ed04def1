"""Argument checks shared by every public function.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, wrong value) with a message that names the argument, so a learner who passes
the wrong thing is told which thing and what was expected instead of getting a
silently broadcast, wrong answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch

T = TypeVar("T")

__all__ = [
    "as_shape",
    "check_alpha",
    "check_attn_mask",
    "check_backward_args",
    "check_bool",
    "check_choice",
    "check_dtype",
    "check_eps",
    "check_factory_kwargs",
    "check_float_tensor",
    "check_heads",
    "check_instance",
    "check_int",
    "check_key_value",
    "check_labels",
    "check_mask",
    "check_normalized_input",
    "check_normalized_shape",
    "check_param",
    "check_probability",
    "check_query_key",
    "check_real",
    "check_rows",
    "check_seed",
    "check_seeds",
    "check_sequence",
    "check_self_attn_mask",
    "check_stochastic_matrix",
    "check_tokens",
    "check_trailing_param",
]


def check_instance(value: T, name: str, cls: type | tuple[type, ...]) -> T:
    """Return ``value`` if it is an instance of ``cls`` (a class or a tuple of
    classes)."""
    if not isinstance(value, cls):
        names = " or ".join(
            c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,))
        )
        raise TypeError(f"{name} must be a {names}, got {type(value).__name__}")
    return value


def check_int(
    value: object, name: str, *, minimum: int | None = 1, maximum: int | None = None
) -> int:
    """Return ``value`` if it is an int (not a bool) in ``[minimum, maximum]``.

    The default ``minimum=1`` is the common case, a count or a size; pass
    ``minimum=0`` for an index or an offset, ``minimum=None`` for no lower bound.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if (minimum is not None and value < minimum) or (
        maximum is not None and value > maximum
    ):
        if maximum is None:
            bound = f">= {minimum}"
        elif minimum is None:
            bound = f"<= {maximum}"
        else:
            bound = f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an int {bound}, got {value}")
    return value


def check_seed(seed: object, name: str = "seed") -> int:
    """Return ``seed`` if it is an int >= 0, a seed for
    ``torch.Generator.manual_seed``."""
    return check_int(seed, name, minimum=0)


def check_sequence(value: object, name: str, items: str) -> tuple:
    """Return ``value`` as a tuple if it is a non-empty sequence (a list, a tuple, a
    range; not a str); ``items`` says in the message what its entries must be."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{name} must be a sequence of {items}, got {type(value).__name__}"
        )
    if len(value) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of {items}")
    return tuple(value)


def check_seeds(seeds: object, name: str = "seeds") -> list[int]:
    """Return ``seeds`` as a list if it is a non-empty sequence of seeds (ints >=
    0)."""
    seeds = check_sequence(seeds, name, "ints >= 0")
    return [check_seed(s, f"{name}[{i}]") for i, s in enumerate(seeds)]


def check_real(
    value: object, name: str, *, minimum: float | None = None, strict: bool = True
) -> float:
    """Return ``value`` as a float if it is a finite real number, above ``minimum``
    if given.

    ``strict=True`` asks for ``value > minimum``, ``strict=False`` for
    ``value >= minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, got {value}")
    return value


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a str, one of {tuple(choices)}, got "
            f"{type(value).__name__}"
        )
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_float_tensor(
    x: object, name: str, *, min_dim: int = 1, dim: int | None = None
) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor with at least ``min_dim`` dims.

    ``dim``, if given, asks for exactly that many dimensions instead.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must have a floating-point dtype (e.g. torch.float32), got "
            f"{x.dtype}"
        )
    if dim is not None and x.dim() != dim:
        raise ValueError(
            f"{name} must have {dim} dimension(s), got shape {tuple(x.shape)}"
        )
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimension(s), got shape "
            f"{tuple(x.shape)}"
        )
    return x


def check_eps(eps: object, name: str = "eps") -> float:
    """Return ``eps`` as a float if it is a finite number >= 0 (0 is Ba et al.'s
    exact definition, and torch accepts it)."""
    return check_real(eps, name, minimum=0.0, strict=False)


def check_rows(x: object, name: str, *, min_dim: int = 1) -> torch.Tensor:
    """A float tensor (see :func:`check_float_tensor`) with at least one entry per
    row."""
    x = check_float_tensor(x, name, min_dim=min_dim)
    if x.shape[-1] < 1:
        raise ValueError(
            f"{name} must have at least one entry in its last dimension, got shape "
            f"{tuple(x.shape)}"
        )
    return x


def check_dtype(
    value: object, name: str, dtype: torch.dtype, meaning: str
) -> torch.Tensor:
    """Return ``value`` if it is a tensor of ``dtype``; ``meaning`` says what it
    holds, for the message."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of dtype {dtype}, got "
            f"{type(value).__name__}"
        )
    if value.dtype != dtype:
        raise TypeError(
            f"{name} must have dtype {dtype} ({meaning}), got {value.dtype}"
        )
    return value


def check_labels(labels: object, name: str, n: int) -> torch.Tensor:
    """``labels`` must be an int64 tensor of shape ``(n,)``: one class index per
    example."""
    labels = check_dtype(labels, name, torch.int64, "class labels")
    if tuple(labels.shape) != (n,):
        raise ValueError(
            f"{name} must have shape ({n},), got {tuple(labels.shape)}"
        )
    return labels


def check_stochastic_matrix(p: object, name: str) -> torch.Tensor:
    """A square float matrix with non-negative rows that sum to 1, returned in
    float64."""
    p = check_float_tensor(p, name, min_dim=2)
    if p.dim() != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(
            f"{name} must be square (V, V), got shape {tuple(p.shape)}"
        )
    p = p.to(torch.float64)
    ones = torch.ones(p.shape[0], dtype=torch.float64)
    if bool((p < 0).any()) or not torch.allclose(p.sum(dim=1), ones, atol=1e-9):
        raise ValueError(f"{name} must have non-negative rows that sum to 1")
    return p


def check_probability(p: object, name: str) -> float:
    """Return ``p`` as a float if it is a number in [0, 1]."""
    p = check_real(p, name)
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
        raise TypeError(
            "normalized_shape must be an int or a sequence of ints, got bool"
        )
    if isinstance(normalized_shape, int):
        shape: tuple[int, ...] = (normalized_shape,)
    elif isinstance(normalized_shape, (Sequence, torch.Size)) and not isinstance(
        normalized_shape, str
    ):
        if not all(
            isinstance(s, int) and not isinstance(s, bool) for s in normalized_shape
        ):
            raise TypeError(
                "normalized_shape must contain only ints, got "
                f"{list(normalized_shape)!r}"
            )
        shape = tuple(int(s) for s in normalized_shape)
    else:
        raise TypeError(
            "normalized_shape must be an int or a sequence of ints, "
            f"got {type(normalized_shape).__name__}"
        )
    if len(shape) == 0:
        raise ValueError(
            "normalized_shape must name at least one dimension, got ()"
        )
    if any(s <= 0 for s in shape):
        raise ValueError(f"normalized_shape must be positive, got {shape}")
    if x.dim() < len(shape) or tuple(x.shape[-len(shape) :]) != shape:
        raise ValueError(
            f"normalized_shape {shape} must match the trailing dimensions of "
            f"{input_name}, "
            f"whose shape is {tuple(x.shape)}"
        )
    return shape


def check_param(
    p: object, name: str, shape: tuple[int, ...], like: torch.Tensor
) -> torch.Tensor | None:
    """``p`` must be None or a float tensor of exactly ``shape`` (no
    broadcasting)."""
    if p is None:
        return None
    p = check_float_tensor(p, name, min_dim=0)
    if tuple(p.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(p.shape)}")
    if p.dtype != like.dtype:
        raise TypeError(
            f"{name} must have dtype {like.dtype} like the input, got {p.dtype}"
        )
    return p


def check_trailing_param(
    p: object, name: str, like: torch.Tensor
) -> torch.Tensor | None:
    """``p`` must be None or a float tensor of at least one dimension whose shape is
    the trailing dimensions of ``like`` (the input), of ``like``'s dtype: an
    element-wise parameter whose shape says which dimensions it covers, as
    :func:`course_lib.functional.dynamic_tanh` takes."""
    if p is None:
        return None
    p = check_float_tensor(p, name, min_dim=1)
    n = p.dim()
    if like.dim() < n or tuple(like.shape[-n:]) != tuple(p.shape):
        raise ValueError(
            f"{name} of shape {tuple(p.shape)} must match the trailing dimensions "
            f"of input, whose shape is {tuple(like.shape)}"
        )
    if p.dtype != like.dtype:
        raise TypeError(
            f"{name} must have dtype {like.dtype} like the input, got {p.dtype}"
        )
    return p


def check_alpha(
    alpha: object, like: torch.Tensor, name: str = "alpha"
) -> float | torch.Tensor:
    """DyT's ``alpha``: a finite real number (returned as a float), or a
    floating-point tensor with exactly one element (0-dim, or shape ``(1,)`` as
    a learned parameter) of ``like``'s dtype, returned as it is."""
    if isinstance(alpha, torch.Tensor):
        if not alpha.is_floating_point():
            raise TypeError(
                f"{name} must have a floating-point dtype (e.g. torch.float32), "
                f"got {alpha.dtype}"
            )
        if alpha.numel() != 1:
            raise ValueError(
                f"{name} must have exactly one element (e.g. a 0-dim tensor or "
                f"shape (1,)), got shape {tuple(alpha.shape)}"
            )
        if alpha.dtype != like.dtype:
            raise TypeError(
                f"{name} must have dtype {like.dtype} like the input, got "
                f"{alpha.dtype}"
            )
        return alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(
            f"{name} must be a real number or a one-element tensor, got "
            f"{type(alpha).__name__}"
        )
    return check_real(alpha, name)


def check_mask(mask: object, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """``mask`` must be a boolean tensor of exactly ``shape``."""
    mask = check_dtype(mask, name, torch.bool, "True = real token")
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(mask.shape)}")
    return mask


def check_query_key(
    query: object, key: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """``query`` and ``key``: float tensors with the same d_k, dtype and batch
    dims."""
    q = check_float_tensor(query, "query", min_dim=2)
    k = check_float_tensor(key, "key", min_dim=2)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "query and key must have the same last dimension (d_k), got "
            f"{q.shape[-1]} "
            f"and {k.shape[-1]}"
        )
    if q.dtype != k.dtype:
        raise TypeError(
            f"query and key must have the same dtype, got {q.dtype} and {k.dtype}"
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except RuntimeError as exc:
        raise ValueError(
            f"query and key batch dimensions do not match: {tuple(q.shape)} vs "
            f"{tuple(k.shape)}"
        ) from exc
    return q, k


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool (not 0 or 1, not None): a switch such as
    ``bias``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_factory_kwargs(device: object, dtype: object) -> dict[str, object]:
    """``device`` and ``dtype`` as torch's factory arguments,
    ``{"device": ..., "dtype": ...}``.

    ``device`` is None (torch's default device), a ``torch.device``, a str such as
    ``"cpu"`` or ``"meta"``, or a device index; ``dtype`` is None (torch's default
    dtype) or a floating-point ``torch.dtype`` (learned parameters must be floating
    point).
    """
    if device is not None:
        if isinstance(device, bool) or not isinstance(
            device, (torch.device, str, int)
        ):
            raise TypeError(
                "device must be a torch.device, a str or an int, got "
                f"{type(device).__name__}"
            )
        try:
            torch.device(device)
        except RuntimeError as exc:
            raise ValueError(
                f"device must name a device torch knows, got {device!r}"
            ) from exc
    if dtype is not None:
        if not isinstance(dtype, torch.dtype):
            raise TypeError(
                f"dtype must be a torch.dtype, got {type(dtype).__name__}"
            )
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    return {"device": device, "dtype": dtype}


def check_normalized_shape(normalized_shape: object) -> tuple[int, ...]:
    """Validate a constructor's ``normalized_shape`` on its own, before any input
    exists.

    The rules are :func:`as_shape`'s, applied to a stand-in input on the meta device
    (it holds no memory) whose shape is ``normalized_shape`` itself; when no such
    tensor can be made, :func:`as_shape` is given an empty one and says what is
    wrong.
    """
    try:
        stand_in = torch.empty(normalized_shape, device="meta")  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):
        stand_in = torch.empty(0, device="meta")
    return as_shape(normalized_shape, stand_in)


def check_normalized_input(
    x: object,
    normalized_shape: tuple[int, ...],
    like: torch.Tensor | None,
    *,
    name: str = "input",
    min_dim: int = 1,
) -> torch.Tensor:
    """A module's input: a float tensor ending in its (validated)
    ``normalized_shape``.

    ``like`` is the module's parameter or buffer, or None when it has none; the
    input must have its dtype (the module was built, or moved with ``.to``, for that
    dtype).
    """
    x = check_float_tensor(x, name, min_dim=min_dim)
    n = len(normalized_shape)
    if x.dim() < n or tuple(x.shape[-n:]) != normalized_shape:
        raise ValueError(
            f"{name} must end in the dimensions "
            f"normalized_shape={normalized_shape}, "
            f"got shape {tuple(x.shape)}"
        )
    if like is not None and x.dtype != like.dtype:
        raise TypeError(
            f"{name} must have dtype {like.dtype} like the module's parameters, "
            f"got {x.dtype}"
        )
    return x


def check_heads(d_model: int, n_heads: int) -> None:
    """``d_model`` must split evenly into ``n_heads`` heads (both already checked
    ints)."""
    if d_model % n_heads != 0:
        raise ValueError(
            f"d_model ({d_model}) must be divisible by n_heads ({n_heads})"
        )


def check_tokens(
    x: object,
    name: str,
    d_model: int,
    like: torch.Tensor,
    *,
    batch_first: bool = True,
) -> torch.Tensor:
    """A batch of token vectors: a float tensor ``(B, T, d_model)`` (``(T, B,
    d_model)`` when not ``batch_first``) of ``like``'s dtype."""
    x = check_float_tensor(x, name, min_dim=3)
    if x.dim() != 3 or x.shape[-1] != d_model:
        layout = "B, T" if batch_first else "T, B"
        raise ValueError(
            f"{name} must have shape ({layout}, {d_model}), got {tuple(x.shape)}"
        )
    if x.dtype != like.dtype:
        raise TypeError(
            f"{name} must have dtype {like.dtype} like the module's parameters, "
            f"got {x.dtype}"
        )
    return x


def check_attn_mask(
    attn_mask: object,
    scores_shape: tuple[int, ...],
    dtype: torch.dtype,
    name: str = "attn_mask",
) -> torch.Tensor:
    """A mask that broadcasts to ``scores_shape``: boolean (True = may attend) or of
    the scores' ``dtype`` (added to them), as torch's attention takes.

    Its last dimension must be exactly ``L_k`` and the one before ``L_q`` or 1, so
    that a transposed mask is an error rather than a silent broadcast.
    """
    attn_mask = check_instance(attn_mask, name, torch.Tensor)
    if attn_mask.dtype not in (torch.bool, dtype):
        raise TypeError(
            f"{name} must be bool (True = may attend) or {dtype} like the scores "
            f"(added to them), got {attn_mask.dtype}"
        )
    l_q, l_k = scores_shape[-2], scores_shape[-1]
    if (
        attn_mask.dim() < 2
        or attn_mask.shape[-1] != l_k
        or attn_mask.shape[-2] not in (1, l_q)
    ):
        raise ValueError(
            f"{name} must have shape (..., {l_q} or 1, {l_k}), got "
            f"{tuple(attn_mask.shape)}"
        )
    try:
        if tuple(torch.broadcast_shapes(attn_mask.shape, scores_shape)) != tuple(
            scores_shape
        ):
            raise RuntimeError
    except RuntimeError as exc:
        raise ValueError(
            f"{name} of shape {tuple(attn_mask.shape)} does not broadcast to the "
            f"attention scores' shape {tuple(scores_shape)}"
        ) from exc
    return attn_mask


def check_self_attn_mask(
    attn_mask: object,
    batch: int,
    length: int,
    name: str = "attn_mask",
    *,
    keys: int | None = None,
) -> torch.Tensor:
    """A boolean attention mask (True = may attend) of shape ``(T, S)`` or
    ``(B, T, S)``: ``T = length`` queries, ``S = keys`` keys (``length`` in
    self-attention, the default)."""
    attn_mask = check_dtype(attn_mask, name, torch.bool, "True = may attend")
    s = length if keys is None else keys
    if tuple(attn_mask.shape) not in ((length, s), (batch, length, s)):
        raise ValueError(
            f"{name} must have shape ({length}, {s}) or ({batch}, {length}, {s}), "
            f"got {tuple(attn_mask.shape)}"
        )
    return attn_mask


def check_key_value(key: torch.Tensor, value: torch.Tensor, batch: int) -> None:
    """Attention's ``key`` and ``value``, checked token batches already put
    batch-first: the query's batch size, and one value per key."""
    if key.shape[0] != batch:
        raise ValueError(
            f"key must have the query's batch size {batch}, got {key.shape[0]}"
        )
    if value.shape[:2] != key.shape[:2]:
        raise ValueError(
            "value must have key's batch size and number of tokens "
            f"{tuple(key.shape[:2])}, got {tuple(value.shape[:2])}"
        )


def check_backward_args(
    grad_output: object, x_hat: object, rstd: object, weight: object, dims: object
) -> None:
    """The arguments of both LayerNorm backward functions of
    :mod:`course_lib.autograd`."""
    x_hat = check_float_tensor(x_hat, "x_hat")
    grad_output = check_float_tensor(grad_output, "grad_output", min_dim=0)
    rstd = check_float_tensor(rstd, "rstd", min_dim=0)
    if not isinstance(dims, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in dims
    ):
        raise TypeError(f"dims must be a tuple of ints, got {dims!r}")
    n = x_hat.dim()
    trailing = list(range(n - len(dims), n))
    if (
        not dims
        or not all(-n <= d < n for d in dims)
        or sorted(d % n for d in dims) != trailing
    ):
        raise ValueError(
            "dims must name the trailing dimensions of x_hat (shape "
            f"{tuple(x_hat.shape)}), "
            f"e.g. (-1,) or (-2, -1), got {dims!r}"
        )
    if grad_output.shape != x_hat.shape:
        raise ValueError(
            f"grad_output must have the shape of x_hat, {tuple(x_hat.shape)}, "
            f"got {tuple(grad_output.shape)}"
        )
    stats_shape = tuple(
        1 if i in trailing else s for i, s in enumerate(x_hat.shape)
    )
    if tuple(rstd.shape) != stats_shape:
        raise ValueError(
            f"rstd must have shape {stats_shape} (one number per row, kept as "
            f"layer_norm_forward returns it), got {tuple(rstd.shape)}"
        )
    for name, t in (("grad_output", grad_output), ("rstd", rstd)):
        if t.dtype != x_hat.dtype:
            raise TypeError(
                f"{name} must have dtype {x_hat.dtype} like x_hat, got {t.dtype}"
            )
    check_param(weight, "weight", tuple(x_hat.shape[n - len(dims) :]), x_hat)
