"""course_lib against torch: same numbers, same gradients, same running statistics.

LayerNorm's values and gradients, for every implementation, are in
test_layernorm_implementations.py.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from contracts import AuthorsDynamicTanh, torch_encoder_layer
from torch import nn

from course_lib import functional as CF
from course_lib import norms, transformer
from course_lib.autograd import LayerNormFunction
from course_lib.experiments.common import default_dtype

TOL = {
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float64: dict(atol=1e-10, rtol=1e-10),
}
DTYPES = [torch.float32, torch.float64]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_layer_norm_without_affine_has_no_parameters():
    ours = norms.LayerNorm(8, elementwise_affine=False)
    assert list(ours.parameters()) == []
    assert set(ours.state_dict()) == set(
        nn.LayerNorm(8, elementwise_affine=False).state_dict()
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalized_shape", [(8,), (4, 8)])
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rms_norm_matches_torch(dtype, normalized_shape, eps):
    g = _gen(5)
    x = torch.randn(3, 4, 8, generator=g, dtype=dtype)
    w = torch.randn(normalized_shape, generator=g, dtype=dtype)
    ours = CF.rms_norm(x, normalized_shape, w, eps)
    torch.testing.assert_close(
        ours, F.rms_norm(x, normalized_shape, w, eps), **TOL[dtype]
    )
    module = norms.RMSNorm(normalized_shape, eps=eps).to(dtype)
    module.load_state_dict(nn.RMSNorm(normalized_shape, eps=eps).state_dict())
    torch.testing.assert_close(
        module(x), nn.RMSNorm(normalized_shape, eps=eps, dtype=dtype)(x)
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_batch_norm_module_matches_batchnorm1d_train_and_eval(dtype, momentum):
    ref = nn.BatchNorm1d(6, momentum=momentum, dtype=dtype)
    ours = norms.BatchNorm(6, momentum=momentum).to(dtype)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(6, generator=_gen(6), dtype=dtype))
        ref.bias.copy_(torch.randn(6, generator=_gen(7), dtype=dtype))
    ours.load_state_dict(ref.state_dict())  # same parameter and buffer names
    g = _gen(8)
    for step in range(4):
        x = torch.randn(10, 6, generator=g, dtype=dtype) * (step + 1) + step
        torch.testing.assert_close(ours(x), ref(x), **TOL[dtype])
    torch.testing.assert_close(ours.running_mean, ref.running_mean, **TOL[dtype])
    torch.testing.assert_close(ours.running_var, ref.running_var, **TOL[dtype])
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 4
    ours.eval()
    ref.eval()
    x = torch.randn(3, 6, generator=g, dtype=dtype)
    torch.testing.assert_close(ours(x), ref(x), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_channel_last_tokens_match_batchnorm1d_channel_first(dtype):
    """(B, T, C) channel-last here equals BatchNorm1d on (B, C, T)."""
    ref = nn.BatchNorm1d(5, dtype=dtype)
    ours = norms.BatchNorm(5).to(dtype)
    g = _gen(9)
    for _ in range(3):
        x = torch.randn(4, 7, 5, generator=g, dtype=dtype) * 2 + 1  # (B, T, C)
        expected = ref(x.transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(ours(x), expected, **TOL[dtype])
    torch.testing.assert_close(ours.running_var, ref.running_var, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_batch_norm_equals_batch_norm_on_real_rows(dtype):
    g = _gen(10)
    x = torch.randn(3, 5, 4, generator=g, dtype=dtype)  # (B, T, C)
    mask = CF.padding_mask([5, 2, 3], 5)
    rm, rv = torch.zeros(4, dtype=dtype), torch.ones(4, dtype=dtype)
    rm2, rv2 = rm.clone(), rv.clone()
    y = CF.batch_norm(x, rm, rv, training=True, mask=mask)
    y_real = F.batch_norm(x[mask], rm2, rv2, training=True)
    torch.testing.assert_close(y[mask], y_real, **TOL[dtype])
    torch.testing.assert_close(rm, rm2, **TOL[dtype])
    torch.testing.assert_close(rv, rv2, **TOL[dtype])


def _bool_masks(b: int, t: int) -> list[torch.Tensor]:
    lengths = CF.padding_mask([t, 3, 1], t)  # (B, T), True = real
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    none_for_row = torch.ones(b, 1, t, t, dtype=torch.bool)
    none_for_row[1, 0, 2] = False  # query 2 of sequence 1 may attend to nothing
    return [
        lengths[:, None, None, :],
        causal,
        lengths[:, None, None, :] & causal,
        none_for_row,
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_index", range(4))
def test_attention_matches_sdpa_for_every_mask_row(dtype, mask_index):
    g = _gen(11)
    b, h, t, d = 3, 2, 6, 8
    q = torch.randn(b, h, t, d, generator=g, dtype=dtype)
    k = torch.randn(b, h, t, d, generator=g, dtype=dtype)
    v = torch.randn(b, h, t, d, generator=g, dtype=dtype)
    mask = _bool_masks(b, t)[mask_index]
    ours = CF.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, ref, **TOL[dtype])


def test_attention_scale_argument_matches_sdpa():
    g = _gen(12)
    q, k, v = (
        torch.randn(2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3)
    )
    torch.testing.assert_close(
        CF.scaled_dot_product_attention(q, k, v, scale=0.3),
        F.scaled_dot_product_attention(q, k, v, scale=0.3),
    )


def test_attention_row_with_no_key_is_zero_not_nan():
    q = torch.randn(1, 3, 4)
    mask = torch.tensor([[True, False], [False, False], [False, True]])
    w = CF.attention_weights(q, torch.randn(1, 2, 4), attn_mask=mask)
    assert torch.equal(w[0, 1], torch.zeros(2))
    torch.testing.assert_close(w.sum(-1), torch.tensor([[1.0, 0.0, 1.0]]))


def test_padding_mask_values():
    expected = torch.tensor([[True, True, False, False], [True, True, True, True]])
    assert torch.equal(CF.padding_mask([2, 4], 4), expected)
    assert torch.equal(CF.padding_mask(torch.tensor([2, 4]), 4), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_block_from_torch_matches_outputs_and_input_gradients(
    dtype, norm_first, activation
):
    layer = torch_encoder_layer(norm_first, dtype, activation)
    block = transformer.TransformerBlock.from_torch(layer)
    assert block.config.norm_first is norm_first
    g = _gen(14)
    x = torch.randn(3, 7, 16, generator=g, dtype=dtype, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    mask = CF.padding_mask([7, 4, 2], 7)  # True = real token
    ours = block(x, mask=mask)
    ref = layer(x2, src_key_padding_mask=~mask)  # torch: True = ignore
    torch.testing.assert_close(ours, ref, **TOL[dtype])
    upstream = torch.randn(ours.shape, generator=g, dtype=dtype)
    (ours * upstream).sum().backward()
    (ref * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, **TOL[dtype])


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_block_matches_torch_with_causal_mask(norm_first):
    layer = torch_encoder_layer(norm_first, torch.float64, "relu")
    block = transformer.TransformerBlock.from_torch(layer)
    x = torch.randn(2, 5, 16, generator=_gen(15), dtype=torch.float64)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    ref = layer(x, src_mask=~causal)  # torch boolean src_mask: True = not allowed
    torch.testing.assert_close(
        block(x, attn_mask=causal), ref, **TOL[torch.float64]
    )


# nn.MultiheadAttention's options, alone and in the combinations that interact
MHA_OPTIONS = {
    "default": {},
    "no-bias": {"bias": False},
    "bias-kv": {"add_bias_kv": True},
    "zero-attn": {"add_zero_attn": True},
    "bias-kv-zero-attn": {"add_bias_kv": True, "add_zero_attn": True},
    "kdim-vdim": {"kdim": 6, "vdim": 10},
    "kdim-no-bias": {"kdim": 6, "bias": False},
    "kdim-bias-kv-zero-attn": {
        "kdim": 6,
        "add_bias_kv": True,
        "add_zero_attn": True,
    },
    "sequence-first": {"batch_first": False},
    "all": {
        "bias": False,
        "add_bias_kv": True,
        "add_zero_attn": True,
        "kdim": 6,
        "vdim": 10,
        "batch_first": False,
    },
}
MHA_TOL = dict(atol=1e-12, rtol=1e-12)  # float64; the same operations as torch's


def _torch_attention(options: dict) -> nn.MultiheadAttention:
    """torch's attention (16 wide, 4 heads, float64) with every parameter drawn at
    random, so that the zero biases of its initialisation are tested too."""
    options = {"batch_first": True, **options}
    ref = nn.MultiheadAttention(16, 4, dtype=torch.float64, **options)
    g = _gen(31)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) - 0.5)
    return ref.eval()


def _masks(kind: str, b: int, t: int, s: int, heads: int):
    """(ours, torch's) keyword arguments: no masks, or a padding mask over the keys
    with a 2-D or 3-D attn_mask; every query keeps key 0."""
    if kind == "none":
        return {}, {}
    mask = CF.padding_mask([s, s - 3], s)  # (B, S), True = real key
    if kind == "2d":
        attn_mask = torch.ones(t, s, dtype=torch.bool).tril()  # (T, S)
        theirs = ~attn_mask
    else:
        attn_mask = torch.rand(b, t, s, generator=_gen(32)) < 0.6  # (B, T, S)
        attn_mask[..., 0] = True
        theirs = (~attn_mask).repeat_interleave(heads, dim=0)  # torch: (B H, T, S)
    return (
        {"mask": mask, "attn_mask": attn_mask},
        {"key_padding_mask": ~mask, "attn_mask": theirs},  # torch: True = ignore
    )


def _widths(options: dict) -> tuple[int, int]:
    return options.get("kdim", 16), options.get("vdim", 16)


# self-attention needs keys and values as wide as the queries; one memory as key and
# value needs kdim = vdim
MHA_CALLS = [
    (name, inputs)
    for name, options in MHA_OPTIONS.items()
    for inputs in ("self", "cross", "key-value")
    if not (inputs == "self" and _widths(options) != (16, 16))
    and not (inputs == "cross" and len(set(_widths(options))) > 1)
]


@pytest.mark.parametrize("masks", ["none", "2d", "3d"])
@pytest.mark.parametrize(("name", "inputs"), MHA_CALLS)
def test_multi_head_attention_matches_nn_multiheadattention(name, inputs, masks):
    """Outputs and every head's weights equal torch's, for each option, for
    self-attention (key and value left out), one memory as key and value, and
    distinct key and value."""
    options = MHA_OPTIONS[name]
    ref = _torch_attention(options)
    ours = transformer.MultiHeadAttention.from_torch(ref)
    kdim, vdim = _widths(options)
    b, t = 2, 5
    s = t if inputs == "self" else 7
    g = _gen(33)
    query = torch.randn(b, t, 16, generator=g, dtype=torch.float64)
    key = torch.randn(b, s, kdim, generator=g, dtype=torch.float64)
    value = torch.randn(b, s, vdim, generator=g, dtype=torch.float64)
    if not options.get("batch_first", True):  # (T, B, E)
        query, key, value = (z.transpose(0, 1) for z in (query, key, value))
    args = {
        "self": ((query,), (query, query, query)),
        "cross": ((query, key), (query, key, key)),
        "key-value": ((query, key, value), (query, key, value)),
    }[inputs]
    ours_masks, their_masks = _masks(masks, b, t, s, 4)
    out, w = ours(*args[0], return_weights=True, **ours_masks)
    ref_out, ref_w = ref(*args[1], average_attn_weights=False, **their_masks)
    assert out.shape == ref_out.shape
    assert w.shape == ref_w.shape  # (B, H, T, S + appended keys)
    torch.testing.assert_close(out, ref_out, **MHA_TOL)
    torch.testing.assert_close(w, ref_w, **MHA_TOL)


@pytest.mark.parametrize("name", ["default", "all"])
def test_multi_head_attention_gradients_match_torchs(name):
    options = MHA_OPTIONS[name]
    ref = _torch_attention(options)
    ours = transformer.MultiHeadAttention.from_torch(ref)
    kdim, vdim = _widths(options)
    g = _gen(34)
    shapes = [(2, 5, 16), (2, 7, kdim), (2, 7, vdim)]
    if not options.get("batch_first", True):
        shapes = [(s, b, e) for b, s, e in shapes]
    inputs = [torch.randn(sh, generator=g, dtype=torch.float64) for sh in shapes]
    upstream = torch.randn(shapes[0][:2] + (16,), generator=g, dtype=torch.float64)
    (ours(*inputs) * upstream).sum().backward()
    (ref(*inputs, need_weights=False)[0] * upstream).sum().backward()
    theirs = dict(ref.named_parameters())
    for our_name, param in ours.named_parameters():
        torch_name = our_name.replace("in_proj.", "in_proj_")
        torch.testing.assert_close(param.grad, theirs[torch_name].grad, **MHA_TOL)


def test_multi_head_attention_dropout_draws_as_torchs():
    """In training mode both drop the same weights under the same seed."""
    ref = _torch_attention({"dropout": 0.3}).train()
    ours = transformer.MultiHeadAttention.from_torch(ref)
    assert ours.training and ours.dropout == 0.3
    x = torch.randn(2, 5, 16, generator=_gen(35), dtype=torch.float64)
    torch.manual_seed(36)
    out = ours(x)
    torch.manual_seed(36)
    ref_out, _ = ref(x, x, x)
    torch.testing.assert_close(out, ref_out, **MHA_TOL)


@pytest.mark.parametrize("name", MHA_OPTIONS)
def test_from_torch_gives_what_the_same_arguments_build(name):
    options = {"batch_first": True, **MHA_OPTIONS[name]}
    ours = transformer.MultiHeadAttention.from_torch(_torch_attention(options))
    built = transformer.MultiHeadAttention(16, 4, **options, dtype=torch.float64)
    assert ours.state_dict().keys() == built.state_dict().keys()
    for attr in ("kdim", "vdim", "add_zero_attn", "batch_first", "dropout"):
        assert getattr(ours, attr) == getattr(built, attr), attr


def test_stack_final_norm_follows_placement():
    assert (
        transformer.TransformerStack(
            transformer.BlockConfig(norm_first=True), 2
        ).final_norm
        is not None
    )
    assert (
        transformer.TransformerStack(
            transformer.BlockConfig(norm_first=False), 2
        ).final_norm
        is None
    )
    stack = transformer.TransformerStack(
        transformer.BlockConfig(d_model=8, n_heads=2, d_ff=16), 3
    )
    out, hidden = stack(torch.randn(2, 4, 8), return_hidden=True)
    assert len(hidden) == 4 and torch.equal(hidden[-1], out)


def test_rms_norm_config_builds_rms_blocks():
    block = transformer.TransformerBlock(
        transformer.BlockConfig(d_model=8, n_heads=2, d_ff=16, norm="rms")
    )
    assert isinstance(block.norm1, norms.RMSNorm)
    assert block(torch.randn(2, 3, 8)).shape == (2, 3, 8)


@pytest.mark.parametrize(
    ("shape", "dim"), [((5, 7), -1), ((4, 3, 6), 0), ((2, 3, 4), (1, 2))]
)
@pytest.mark.parametrize("keepdim", [False, True])
def test_moments_match_torch_var_mean(shape, dim, keepdim):
    x = 3.0 + torch.randn(
        *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    var, mean = torch.var_mean(x, dim=dim, correction=0, keepdim=keepdim)
    ours = CF.moments(x, dim, keepdim=keepdim)
    for a, b in zip(ours, (mean, var), strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    with pytest.raises(TypeError, match="keepdim"):
        CF.moments(x, dim, keepdim=1)
    with pytest.raises(TypeError, match="input"):
        CF.moments(x.long(), dim)


# --- edge cases from PyTorch's OpInfo sample inputs -------------------------------

ALL_FLOATS = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def _layer_norms(x, shape, w, b, eps=1e-5):
    """Every LayerNorm of course_lib on the same call."""
    module = norms.LayerNorm(shape, eps=eps, dtype=x.dtype)
    with torch.no_grad():
        module.weight.copy_(w)
        module.bias.copy_(b)
    return {
        "functional": CF.layer_norm(x, shape, w, b, eps),
        "module": module(x).detach(),
        "Function": LayerNormFunction.apply(x, shape, w, b, eps),
    }


@pytest.mark.parametrize("dtype", ALL_FLOATS)
@pytest.mark.parametrize("value", [12345.678, -3.0, 0.1])
def test_a_constant_row_gives_exactly_beta(dtype, value):
    """The mean of equal values is exact, so x - mean is 0 and y = beta, in every
    dtype (the mean of 8 copies of 12345.678 used to be off by ulps, which
    1/sqrt(eps) magnified to -0.295)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, generator=g).to(dtype)
    b = torch.randn(8, generator=g).to(dtype)
    x = torch.full((3, 8), value, dtype=dtype)
    for name, y in _layer_norms(x, (8,), w, b).items():
        assert torch.equal(y, b.expand(3, 8)), name
    y = CF.batch_norm(x.T.contiguous(), None, None, w[:3], b[:3], training=True)
    assert torch.equal(y, b[:3].expand(8, 3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_statistics_do_not_overflow(dtype):
    """Statistics in float32, as torch: squares of 300 overflow float16."""
    row = torch.tensor([[300.0, -300.0] * 4], dtype=dtype)
    signs = torch.tensor([[1.0, -1.0] * 4], dtype=dtype)
    ones, zeros = torch.ones(8, dtype=dtype), torch.zeros(8, dtype=dtype)
    for y in _layer_norms(row, (8,), ones, zeros).values():
        torch.testing.assert_close(y, signs)
    torch.testing.assert_close(CF.rms_norm(row, 8), signs)
    long_row = torch.tensor([[10.0, -10.0] * 512], dtype=dtype)
    torch.testing.assert_close(
        LayerNormFunction.apply(long_row, 1024, None, None, 1e-5),
        F.layer_norm(long_row, (1024,)),
    )
    channel = row.T.contiguous()  # (8, 1): one channel of +-300
    torch.testing.assert_close(
        CF.batch_norm(channel, None, None, training=True), signs.T
    )
    q = torch.full((1, 2, 16), 100.0, dtype=dtype)  # scores of 160000 overflow
    v = torch.randn(1, 3, 4).to(dtype)
    out = CF.scaled_dot_product_attention(q, q[:, :1].expand(1, 3, 16), v)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(
        out, F.scaled_dot_product_attention(q, q[:, :1].expand(1, 3, 16), v)
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_error_is_no_larger_than_torchs(dtype):
    """On ordinary rows, the error against a float64 computation is at most torch's
    own plus one unit in the last place of the output's largest magnitude, and the
    output passes torch's default tolerances for the dtype against torch's."""
    g = torch.Generator().manual_seed(0)
    x = (3 * torch.randn(64, 256, generator=g) + 1).to(dtype)
    w, b = (torch.randn(256, generator=g).to(dtype) for _ in range(2))
    x64, w64, b64 = x.double(), w.double(), b.double()
    ref = F.layer_norm(x64, (256,), w64, b64)
    theirs = F.layer_norm(x, (256,), w, b)
    ulp = torch.finfo(dtype).eps * ref.abs().max().item()
    bound = (theirs.double() - ref).abs().max().item() + ulp
    for name, y in _layer_norms(x, (256,), w, b).items():
        assert (y.double() - ref).abs().max().item() <= bound, name
        torch.testing.assert_close(y, theirs)
    eps = torch.finfo(dtype).eps
    ref = F.rms_norm(x64, (256,), w64, eps=eps)
    theirs = F.rms_norm(x, (256,), w)
    bound = (theirs.double() - ref).abs().max().item() + ulp
    ours = CF.rms_norm(x, 256, w)
    assert (ours.double() - ref).abs().max().item() <= bound
    q, k, v = (torch.randn(2, 7, 16, generator=g).to(dtype) for _ in range(3))
    ref = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    theirs = F.scaled_dot_product_attention(q, k, v)
    ours = CF.scaled_dot_product_attention(q, k, v)
    ulp = torch.finfo(dtype).eps * ref.abs().max().item()
    bound = (theirs.double() - ref).abs().max().item() + ulp
    assert (ours.double() - ref).abs().max().item() <= bound
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_rms_norm_default_eps_of_16_bit_input_is_float32s_as_torchs(dtype):
    """eps=None on a 16-bit input: torch computes in float32 and adds float32's
    epsilon, not the input dtype's (bfloat16's is 2**-7, which would shrink rows of
    RMS 0.01 by about 45%). Rows this small make the difference visible."""
    x = (0.01 * torch.randn(8, 256, generator=torch.Generator().manual_seed(3))).to(
        dtype
    )
    theirs = F.rms_norm(x, (256,))
    torch.testing.assert_close(CF.rms_norm(x, 256), theirs, rtol=0, atol=0)
    torch.testing.assert_close(
        norms.RMSNorm(256, dtype=dtype)(x),
        nn.RMSNorm(256, dtype=dtype)(x),
        rtol=0,
        atol=0,
    )
    wrong = F.rms_norm(x.float(), (256,), eps=torch.finfo(dtype).eps).to(dtype)
    assert (theirs.float() - wrong.float()).abs().max() > 0.1


def test_eps_zero_is_ba_et_als_definition_and_torchs():
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    for y in _layer_norms(x, (6,), torch.ones(6), torch.zeros(6), eps=0.0).values():
        torch.testing.assert_close(y, F.layer_norm(x, (6,), eps=0.0))
    const = torch.full((2, 6), 2.0)
    for y in _layer_norms(const, (6,), torch.ones(6), torch.zeros(6), 0.0).values():
        assert (
            torch.isnan(y).all()
            and torch.isnan(F.layer_norm(const, (6,), eps=0.0)).all()
        )
    torch.testing.assert_close(
        CF.rms_norm(x, 6, eps=0.0), F.rms_norm(x, (6,), eps=0.0)
    )


def test_a_query_whose_scores_are_all_minus_inf_gets_zero_output():
    """Overflowed scores (1e38 * -1e38) and a float mask of -inf, as torch: 0, not
    NaN."""
    q = torch.full((1, 2, 4), 1e38)
    k = -torch.full((1, 3, 4), 1e38)
    v = torch.randn(1, 3, 4)
    out = CF.scaled_dot_product_attention(q, k, v)
    assert torch.equal(out, torch.zeros_like(out))
    assert torch.equal(out, F.scaled_dot_product_attention(q, k, v))
    q, k = torch.randn(1, 2, 4), torch.randn(1, 3, 4)
    bias = torch.tensor([[0.0, -1.0, float("-inf")], [float("-inf")] * 3])
    torch.testing.assert_close(
        CF.scaled_dot_product_attention(q, k, v, bias),
        F.scaled_dot_product_attention(q, k, v, bias),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_arguments_as_torchs(dtype):
    """Float (additive) masks, is_causal with L_q != L_k, dropout drawn as torch
    draws it, and grouped-query attention."""
    g = torch.Generator().manual_seed(2)
    q = torch.randn(2, 4, 5, 8, generator=g, dtype=dtype)
    k, v = (torch.randn(2, 4, 7, 8, generator=g, dtype=dtype) for _ in range(2))
    bias = torch.randn(5, 7, generator=g, dtype=dtype)
    tol = {"rtol": 0, "atol": 1e-5 if dtype == torch.float32 else 1e-12}
    for kwargs in ({"attn_mask": bias}, {"is_causal": True}, {"scale": 0.3}):
        torch.testing.assert_close(
            CF.scaled_dot_product_attention(q, k, v, **kwargs),
            F.scaled_dot_product_attention(q, k, v, **kwargs),
            **tol,
        )
    torch.manual_seed(3)
    ours = CF.scaled_dot_product_attention(q, k, v, dropout_p=0.3)
    torch.manual_seed(3)
    theirs = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3)
    torch.testing.assert_close(ours, theirs, **tol)
    k2, v2 = k[:, :2], v[:, :2]  # 2 key/value heads for 4 query heads
    torch.testing.assert_close(
        CF.scaled_dot_product_attention(q, k2, v2, enable_gqa=True),
        F.scaled_dot_product_attention(q, k2, v2, enable_gqa=True),
        **tol,
    )


def torch_sdpa(
    query,
    key,
    value,
    attn_mask=None,
    dropout_p=0.0,
    is_causal=False,
    *,
    scale=None,
    enable_gqa=False,
):
    """The signature torch documents for F.scaled_dot_product_attention, a builtin
    that inspect cannot read."""


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (CF.layer_norm, F.layer_norm),
        (CF.rms_norm, F.rms_norm),
        (CF.batch_norm, F.batch_norm),
        (CF.scaled_dot_product_attention, torch_sdpa),
    ],
    ids=["layer_norm", "rms_norm", "batch_norm", "sdpa"],
)
def test_functional_takes_torchs_arguments_in_torchs_order(ours, theirs):
    """Every argument torch's function takes, with its name, kind and default, in
    its order; only keyword-only arguments of course_lib's own may follow."""

    def spec(sig):
        return [(p.name, p.kind, p.default) for p in sig.parameters.values()]

    if isinstance(theirs, str):
        theirs_sig = inspect.Signature.from_callable(
            eval(f"lambda {theirs[1:-1]}: 0")
        )
    else:
        theirs_sig = inspect.signature(theirs)
    ours_spec, theirs_spec = spec(inspect.signature(ours)), spec(theirs_sig)
    assert ours_spec[: len(theirs_spec)] == theirs_spec
    extra = ours_spec[len(theirs_spec) :]
    assert all(kind is inspect.Parameter.KEYWORD_ONLY for _, kind, _ in extra)


# ------------------------------------------------------------ DyT (Zhu et al. 2025)


def _alpha(kind: str, value: float, dtype: torch.dtype):
    """DyT's slope as each accepted kind: a float, a 0-dim or a (1,) tensor."""
    if kind == "float":
        return value
    t = torch.tensor(value, dtype=dtype)
    return t if kind == "0-dim" else t.reshape(1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8,), (3, 4)])
@pytest.mark.parametrize("kind", ["float", "0-dim", "(1,)"])
def test_dynamic_tanh_is_the_formula_bit_for_bit(dtype, shape, kind):
    g = _gen(3)
    x = torch.randn(2, 5, *shape, generator=g, dtype=dtype) * 3
    w = torch.randn(shape, generator=g, dtype=dtype)
    b = torch.randn(shape, generator=g, dtype=dtype)
    alpha = _alpha(kind, 0.7, dtype)
    expected = w * torch.tanh(alpha * x) + b  # the paper's line, by hand
    ours = CF.dynamic_tanh(x, alpha, w, b)
    assert ours.shape == x.shape and ours.dtype == dtype
    assert torch.equal(ours, expected)
    assert torch.equal(CF.dynamic_tanh(x, alpha), torch.tanh(alpha * x))
    assert torch.equal(
        CF.dynamic_tanh(x, alpha, weight=w), w * torch.tanh(alpha * x)
    )
    assert torch.equal(CF.dynamic_tanh(x, alpha, bias=b), torch.tanh(alpha * x) + b)


def test_dynamic_tanh_keeps_the_input_shape_whatever_alpha_s():
    x = torch.randn(4)
    for alpha in (torch.tensor(0.5), torch.tensor([0.5]), torch.tensor([[0.5]])):
        y = CF.dynamic_tanh(x, alpha)
        assert y.shape == x.shape and torch.equal(y, torch.tanh(0.5 * x))
    scalar = torch.tensor(2.0)  # 0-dim input: no weight to cover any dimension
    assert torch.equal(CF.dynamic_tanh(scalar, 0.5), torch.tanh(torch.tensor(1.0)))


def test_dynamic_tanh_is_element_wise_and_bounded():
    """No statistics: an element's output depends on that element only, and lies in
    (bias - |weight|, bias + |weight|)."""
    x = torch.randn(3, 6, dtype=torch.float64)
    w, b = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    y = CF.dynamic_tanh(x, 0.5, w, b)
    changed = x.clone()
    changed[:, 0] = 1e6  # an outlier that would move a LayerNorm's whole row
    z = CF.dynamic_tanh(changed, 0.5, w, b)
    assert torch.equal(y[:, 1:], z[:, 1:])
    torch.testing.assert_close(z[:, 0], (w[0] + b[0]).expand(3), rtol=0, atol=1e-12)
    assert bool(((y - b).abs() < w.abs()).all())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [(8, {}), ((3, 4), {}), (8, {"alpha_init": 1.7})],
    ids=["8", "3x4", "alpha-1.7"],
)
def test_dynamic_tanh_module_matches_the_authors_module(dtype, shape, kwargs):
    """The same parameters give the same output and the same gradients, bit for
    bit, as the authors' channels-last module."""
    with default_dtype(dtype):  # theirs is made in torch's default dtype
        theirs = AuthorsDynamicTanh(
            shape, True, alpha_init_value=kwargs.get("alpha_init", 0.5)
        )
    ours = norms.DynamicTanh(shape, dtype=dtype, **kwargs)
    for key, value in theirs.state_dict().items():  # the same starting values
        assert torch.equal(ours.state_dict()[key], value), key
    with torch.no_grad():
        g = _gen(5)
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    ours.load_state_dict(theirs.state_dict())
    shape_t = (shape,) if isinstance(shape, int) else shape
    x = torch.randn(2, 3, *shape_t, generator=_gen(6), dtype=dtype) * 2
    up = torch.randn(x.shape, generator=_gen(7), dtype=dtype)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_theirs = ours(x1), theirs(x2)
    assert torch.equal(y_ours, y_theirs)
    y_ours.backward(up)
    y_theirs.backward(up)
    assert torch.equal(x1.grad, x2.grad)
    for (name, p), q in zip(
        ours.named_parameters(), theirs.parameters(), strict=True
    ):
        torch.testing.assert_close(p.grad, q.grad, **TOL[dtype], msg=name)


def test_dynamic_tanh_channels_first_is_the_authors_after_a_permute():
    """The authors' channels_last=False, over (N, C, H, W) images, is ours over the
    channel-last (N, H, W, C) view: the one layout we leave out."""
    theirs = AuthorsDynamicTanh(3, False, alpha_init_value=0.9)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
        theirs.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    ours = norms.DynamicTanh(3, alpha_init=0.9)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 4, 5, generator=_gen(8))  # (N, C, H, W)
    y = ours(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(y, theirs(x), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dynamic_tanh_of_16_bit_input_is_computed_in_float32(dtype):
    """One rounding at the end, as the library's other norms; the authors' module,
    computing in the 16-bit dtype, agrees to within its own round-off."""
    g = _gen(9)
    x = (torch.randn(4, 64, generator=g) * 3).to(dtype)
    w, b = (
        torch.randn(64, generator=g).to(dtype),
        torch.randn(64, generator=g).to(dtype),
    )
    alpha = torch.tensor([0.6]).to(dtype)
    in_float32 = w.float() * torch.tanh(alpha.float() * x.float()) + b.float()
    ours = CF.dynamic_tanh(x, alpha, w, b)
    assert ours.dtype == dtype
    assert torch.equal(ours, in_float32.to(dtype))
    module = norms.DynamicTanh(64, alpha_init=0.6, dtype=dtype)
    with torch.no_grad():
        module.weight.copy_(w)
        module.bias.copy_(b)
    assert torch.equal(module(x), ours)
    theirs = AuthorsDynamicTanh(64, True, alpha_init_value=0.6).to(dtype)
    theirs.load_state_dict(module.state_dict())
    tol = {"atol": 2e-2, "rtol": 1e-2} if dtype == torch.bfloat16 else {}
    torch.testing.assert_close(
        theirs(x).float(), ours.float(), **(tol or {"atol": 4e-3, "rtol": 2e-3})
    )


def test_dynamic_tanh_takes_its_arguments_in_the_documented_order():
    params = inspect.signature(CF.dynamic_tanh).parameters.values()
    assert [(p.name, p.default) for p in params] == [
        ("input", inspect.Parameter.empty),
        ("alpha", inspect.Parameter.empty),
        ("weight", None),
        ("bias", None),
    ]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda x: CF.dynamic_tanh(x.tolist(), 0.5), TypeError, "input"),
        (lambda x: CF.dynamic_tanh(x.long(), 0.5), TypeError, "input"),
        (lambda x: CF.dynamic_tanh(x, "0.5"), TypeError, "alpha"),
        (lambda x: CF.dynamic_tanh(x, True), TypeError, "alpha"),
        (lambda x: CF.dynamic_tanh(x, float("nan")), ValueError, "alpha"),
        (lambda x: CF.dynamic_tanh(x, torch.tensor([1])), TypeError, "alpha"),
        (lambda x: CF.dynamic_tanh(x, torch.ones(2)), ValueError, "alpha"),
        (
            lambda x: CF.dynamic_tanh(x, torch.ones(1, dtype=torch.float64)),
            TypeError,
            "alpha",
        ),
        (lambda x: CF.dynamic_tanh(x, 0.5, torch.ones(5)), ValueError, "weight"),
        (lambda x: CF.dynamic_tanh(x, 0.5, torch.ones(())), ValueError, "weight"),
        (
            lambda x: CF.dynamic_tanh(x, 0.5, torch.ones(6, dtype=torch.float64)),
            TypeError,
            "weight",
        ),
        (
            lambda x: CF.dynamic_tanh(x, 0.5, None, torch.ones(4)),
            ValueError,
            "bias",
        ),
        (
            lambda x: CF.dynamic_tanh(x, 0.5, torch.ones(6), torch.ones(3, 6)),
            ValueError,
            "bias",
        ),
    ],
)
def test_dynamic_tanh_refuses_bad_arguments_by_name(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.randn(3, 6))


def test_dynamic_tanh_gradients_pass_gradcheck():
    """Autograd through every argument, alpha included, against finite
    differences in float64."""
    g = _gen(11)
    x = torch.randn(2, 3, 4, generator=g, dtype=torch.float64).requires_grad_()
    alpha = torch.tensor([0.8], dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.randn(3, 4, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(CF.dynamic_tanh, (x, alpha, w, b))
    assert torch.autograd.gradgradcheck(CF.dynamic_tanh, (x, alpha, w, b))
