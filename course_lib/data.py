"""The worked examples of the course notes, as tensors with names.

Every function returns a fresh tensor, so a notebook that edits one in place cannot
change what the next cell (or the next chapter) sees. The values are the notes' own;
the notes call them illustrative ("no logic here, all random numbers"), and so does
the book.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "BATCHNORM_FEATURES",
    "BATCHNORM_UNITS",
    "PADDED_LENGTHS",
    "PADDED_TOKENS",
    "PRODUCTION_BATCH",
    "ProductionBatch",
    "batchnorm_inputs",
    "batchnorm_table",
    "contextual_batch",
    "scale_pair",
]

#: Column names of the 5 x 3 BatchNorm table: pre-activations of three hidden units.
BATCHNORM_UNITS: tuple[str, ...] = ("z1", "z2", "z3")
#: Column names of the inputs that produced it.
BATCHNORM_FEATURES: tuple[str, ...] = ("f1", "f2")

_BN_Z = [
    [7.0, 5.0, 4.0],
    [2.0, 3.0, 4.0],
    [1.0, 2.0, 3.0],
    [7.0, 5.0, 6.0],
    [3.0, 3.0, 4.0],
]
_BN_F = [[2.0, 3.0], [1.0, 1.0], [4.0, 2.0], [3.0, 1.0], [2.0, 5.0]]


def batchnorm_table(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The notes' 5-sample x 3-unit table of pre-activations (z1, z2, z3).

    Shape:
        ``(5, 3)``: rows are samples 1..5, columns ``BATCHNORM_UNITS``.
    """
    return torch.tensor(_BN_Z, dtype=dtype)


def batchnorm_inputs(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The inputs (f1, f2) of the same five samples.

    Shape:
        ``(5, 2)``: rows are samples 1..5, columns ``BATCHNORM_FEATURES``.
    """
    return torch.tensor(_BN_F, dtype=dtype)


#: Tokens of the notes' two-sentence batch, padded to length 4.
PADDED_TOKENS: tuple[tuple[str, ...], ...] = (
    ("Hi", "Nitish", "<pad>", "<pad>"),
    ("How", "are", "you", "today"),
)
#: Real lengths of the two sentences.
PADDED_LENGTHS: tuple[int, ...] = (2, 4)

_CONTEXT = [
    [[6.5, 2.1, 8.3], [4.2, 7.8, 3.1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    [[5.7, 9.2, 1.8], [3.4, 6.1, 7.5], [8.9, 4.3, 2.6], [1.2, 5.8, 9.4]],
]


def contextual_batch(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The notes' contextual vectors (after self-attention) for the same batch.

    The notes keep the PAD rows at zero here; chapter 3 shows that a real encoder
    does not.

    Shape:
        ``(2, 4, 3)``: (sentence, position, feature).
    """
    return torch.tensor(_CONTEXT, dtype=dtype)


def scale_pair(
    name: str = "10-20-30", dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Two vectors with the same pattern at different scales, from the notes.

    ``"10-20-30"``: ``[10, 20, 30]`` and ``[100, 200, 300]``; ``"1-2"``: ``[1, 2]``
    and ``[100, 102]`` (same pattern after centering and scaling).

    Shape:
        ``(2, 3)`` for ``"10-20-30"``, ``(2, 2)`` for ``"1-2"``.
    """
    pairs = {
        "10-20-30": [[10.0, 20.0, 30.0], [100.0, 200.0, 300.0]],
        "1-2": [[1.0, 2.0], [100.0, 102.0]],
    }
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in pairs:
        raise ValueError(f"name must be one of {sorted(pairs)}, got {name!r}")
    return torch.tensor(pairs[name], dtype=dtype)


@dataclass(frozen=True)
class ProductionBatch:
    """The notes' "production" padding scenario."""

    batch_size: int = 32
    max_len: int = 100  # the longest sentence sets the padded length
    mean_len: int = 30  # the average real length

    @property
    def positions(self) -> int:
        """All positions in the padded batch."""
        return self.batch_size * self.max_len

    @property
    def real(self) -> int:
        """Positions holding real tokens."""
        return self.batch_size * self.mean_len

    @property
    def pad_fraction(self) -> float:
        """Fraction p of positions that are padding."""
        return 1.0 - self.real / self.positions


#: 32 sentences, longest 100 tokens, average 30: 960 real positions of 3,200.
PRODUCTION_BATCH = ProductionBatch()
