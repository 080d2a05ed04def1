"""What several test modules check or build: the reset_parameters() contract
(test_norms, test_transformer), the torch encoder layer that TransformerBlock is
compared with (test_parity, test_ch07), and the DyT authors' module that
DynamicTanh is compared with (test_norms, test_parity)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


def assert_reset_redraws_construction(
    build: Callable[[], nn.Module], seed: int
) -> None:
    """Under ``seed``, ``reset_parameters()`` draws exactly what construction drew.

    The module's parameters are first overwritten, so a ``reset_parameters`` that
    did nothing fails; the random state after the reset must be the state after
    construction, so a reset that draws more or fewer numbers fails too.
    """
    torch.manual_seed(seed)
    module = build()
    after_construction = torch.get_rng_state()
    built = copy.deepcopy(module.state_dict())
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.5)
    if list(module.parameters()):
        assert any(
            not torch.equal(module.state_dict()[k], v) for k, v in built.items()
        )
    torch.manual_seed(seed)
    module.reset_parameters()
    assert torch.equal(torch.get_rng_state(), after_construction)
    for key, value in built.items():
        assert torch.equal(module.state_dict()[key], value), key


def count_calls(monkeypatch, modules: tuple, names: tuple[str, ...]) -> list[str]:
    """Wrap each function ``names`` that a module of ``modules`` holds; return the
    calls' log.

    Used to show that a value validated once is not checked again downstream.
    """
    calls: list[str] = []
    for module in modules:
        for name in names:
            if hasattr(module, name):
                original = getattr(module, name)

                def counted(*args, _original=original, _name=name, **kwargs):
                    calls.append(_name)
                    return _original(*args, **kwargs)

                monkeypatch.setattr(module, name, counted)
    return calls


def torch_encoder_layer(
    norm_first: bool,
    dtype: torch.dtype = torch.float64,
    activation: str = "relu",
    *,
    shape: tuple[int, int, int] = (16, 4, 32),
    seed: int = 13,
) -> nn.TransformerEncoderLayer:
    """A dropout-free, batch-first ``nn.TransformerEncoderLayer`` of ``shape``
    ``(d_model, nhead, dim_feedforward)``, drawn under ``seed``, with LayerNorm
    weights and biases moved away from 1 and 0 so that they are tested too."""
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(
        *shape,
        dropout=0.0,
        batch_first=True,
        norm_first=norm_first,
        activation=activation,
        dtype=dtype,
    )
    with torch.no_grad():
        for norm in (layer.norm1, layer.norm2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    return layer


class AuthorsDynamicTanh(nn.Module):
    """DyT as its authors' reference module defines it (``dynamic_tanh.py`` of
    jiachenzhu/DyT, commit aab5dde, read and re-written here, independent of
    course_lib): the oracle that :class:`course_lib.norms.DynamicTanh` is compared
    with (test_norms, test_parity).

    Their parameters and their arithmetic: ``alpha`` of shape ``(1,)``, made as
    ``ones(1)`` times ``alpha_init_value`` in torch's default dtype; ``weight``
    ones and ``bias`` zeros of ``normalized_shape``; ``tanh(alpha * x) * weight +
    bias``, over the last dimension (``channels_last``) or over dimension 1 of
    ``(N, C, H, W)`` input."""

    def __init__(self, normalized_shape, channels_last, alpha_init_value=0.5):
        super().__init__()
        self.channels_last = channels_last
        self.alpha = nn.Parameter(torch.ones(1) * alpha_init_value)
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))

    def forward(self, x):
        w, b = self.weight, self.bias
        if not self.channels_last:  # (C,) against (N, C, H, W)
            w, b = w.view(-1, 1, 1), b.view(-1, 1, 1)
        return torch.tanh(self.alpha * x) * w + b
