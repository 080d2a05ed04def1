"""Chapter 8's library: the exact Pre-LN -> Pre-RMSNorm conversion (Jiang et al.
2023), the residual stream's row means and their share, and the speed
measurements."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib.experiments.ch07_prenorm_vs_postnorm import TinyLM
from course_lib.experiments.ch08_rmsnorm import (
    NORM_CALLS,
    mean_shares,
    norm_passes,
    norm_seconds,
    pre_rmsnorm_from_pre_layernorm,
    stream_means,
)
from course_lib.transformer import BlockConfig

VOCAB = 16


def _pre_ln(seed: int, n_layers: int = 3, **block) -> TinyLM:
    """A float64 Pre-LN TinyLM whose norms are not at their identity init and
    whose embedding rows have a large mean, so that every step of the conversion
    is exercised."""
    config = BlockConfig(
        **{"d_model": 32, "n_heads": 4, "d_ff": 64, "norm_first": True, **block}
    )
    torch.manual_seed(seed)
    model = TinyLM(config, n_layers, VOCAB).double()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.5 * torch.randn_like(param))
        model.embedding.weight.add_(3.0)
    return model


def _tokens(seed: int) -> torch.Tensor:
    return torch.randint(
        0, VOCAB, (4, 12), generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize(
    "block",
    [{}, {"bias": False}, {"activation": "gelu"}, {"eps": 1e-6}],
    ids=["default", "no-bias", "gelu", "eps-1e-6"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_converted_model_computes_the_same_logits(seed: int, block: dict):
    ln = _pre_ln(seed, **block)
    rms = pre_rmsnorm_from_pre_layernorm(ln)
    assert rms.stack.config.norm == "rms"
    assert all(
        type(m).__name__ == "RMSNorm"
        for layer in rms.stack.layers
        for m in (layer.norm1, layer.norm2)
    )
    tokens = _tokens(seed)
    ours, theirs = rms(tokens), ln(tokens)
    assert theirs.abs().max() > 0.1  # not a vacuous comparison
    assert (ours - theirs).abs().max() < 1e-12


def test_the_converted_stream_is_zero_mean_and_the_original_is_not():
    ln = _pre_ln(3)
    rms = pre_rmsnorm_from_pre_layernorm(ln)
    tokens = _tokens(3)
    assert stream_means(ln, tokens).abs().min() > 1.0
    assert stream_means(rms, tokens).abs().max() < 1e-12
    assert stream_means(rms, tokens).shape == (len(ln.stack.layers) + 1, 4, 12)


def test_swapping_the_norms_alone_is_not_the_same_function():
    """The projection is what makes it exact: with the original embedding and
    stream-writing matrices put back, the RMSNorm model computes something else."""
    ln = _pre_ln(4)
    rms = pre_rmsnorm_from_pre_layernorm(ln)
    with torch.no_grad():
        rms.embedding.weight.copy_(ln.embedding.weight)
        for theirs, ours in zip(ln.stack.layers, rms.stack.layers, strict=True):
            ours.self_attn.out_proj.load_state_dict(
                theirs.self_attn.out_proj.state_dict()
            )
            ours.linear2.load_state_dict(theirs.linear2.state_dict())
    tokens = _tokens(4)
    assert (rms(tokens) - ln(tokens)).abs().max() > 1e-2


def test_float32_agrees_to_rounding():
    ln = _pre_ln(5).float()
    rms = pre_rmsnorm_from_pre_layernorm(ln)
    assert rms.head.weight.dtype == torch.float32
    tokens = _tokens(5)
    assert (rms(tokens) - ln(tokens)).abs().max() < 1e-4


def test_the_model_and_the_random_state_are_left_alone():
    ln = _pre_ln(6)
    before = {k: v.clone() for k, v in ln.state_dict().items()}
    state = torch.random.get_rng_state()
    pre_rmsnorm_from_pre_layernorm(ln)
    assert torch.equal(torch.random.get_rng_state(), state)
    after = ln.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_models_are_refused_by_name():
    with pytest.raises(TypeError, match="model"):
        pre_rmsnorm_from_pre_layernorm(nn.Linear(2, 2))
    post = TinyLM(BlockConfig(d_model=16, n_heads=2, d_ff=32), 2, VOCAB)
    with pytest.raises(ValueError, match="Pre-LN"):
        pre_rmsnorm_from_pre_layernorm(post)
    rms = TinyLM(
        BlockConfig(d_model=16, n_heads=2, d_ff=32, norm="rms", norm_first=True),
        2,
        VOCAB,
    )
    with pytest.raises(ValueError, match="Pre-LN"):
        pre_rmsnorm_from_pre_layernorm(rms)
    bare = TinyLM(
        BlockConfig(d_model=16, n_heads=2, d_ff=32, norm_first=True),
        2,
        VOCAB,
        final_norm=False,
    )
    with pytest.raises(ValueError, match="final LayerNorm"):
        pre_rmsnorm_from_pre_layernorm(bare)
    with pytest.raises(TypeError, match="model"):
        stream_means(nn.Linear(2, 2), _tokens(0))


def test_mean_shares_of_constant_and_zero_mean_streams():
    model = _pre_ln(0)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.full_like(model.embedding.weight, 2.0))
    shares = mean_shares(model, _tokens(0))  # (n_layers + 1,)
    assert shares.shape == (4,)
    assert abs(shares[0].item() - 1.0) < 1e-12  # constant rows: all mean
    rms = pre_rmsnorm_from_pre_layernorm(_pre_ln(1))
    assert mean_shares(rms, _tokens(1)).max() < 1e-20  # centred: no mean at all
    with pytest.raises(TypeError, match="model"):
        mean_shares(nn.Linear(2, 2), _tokens(0))


def test_pass_counts_of_the_four_norms():
    """The counts the chapter prints: native LayerNorm is one fused kernel each
    way; native RMSNorm on the CPU is several; among the two written-out formulas
    RMSNorm takes fewer passes. Counts do not depend on the number of rows."""
    small = norm_passes((4, 8, 64))
    assert small == norm_passes((2, 32, 64))
    assert small["F.layer_norm"] == (1, 2)
    assert small["F.rms_norm"][1] > 4 * small["F.layer_norm"][1]
    ours_ln, ours_rms = small["course_lib layer_norm"], small["course_lib rms_norm"]
    assert ours_rms[0] < ours_ln[0] and ours_rms[1] < ours_ln[1]


def test_norm_seconds_returns_every_norm():
    seconds = norm_seconds((2, 4, 32), repeat=1, warmup=0)
    assert set(seconds) == set(NORM_CALLS)
    assert all(f > 0 and b > 0 for f, b in seconds.values())


@pytest.mark.parametrize("fn", [norm_passes, norm_seconds])
def test_bad_shapes_are_refused_by_name(fn):
    with pytest.raises(TypeError, match="shape"):
        fn(64)
    with pytest.raises(ValueError, match="shape"):
        fn((64,))
    with pytest.raises(ValueError, match=r"shape\[1\]"):
        fn((4, 0))
