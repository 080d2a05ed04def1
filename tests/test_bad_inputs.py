"""Bad input is rejected with a clear error that names the argument."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import functional as CF
from course_lib import norms as N
from course_lib import transformer as TR
from course_lib.autograd import LayerNormFunction

x3 = torch.randn(2, 4, 3)
# attention inputs: two queries, four keys and values, width 3
q2, k4, v4 = torch.randn(2, 3), torch.randn(4, 3), torch.randn(4, 3)
# a two-head attention layer of width 8 and tokens (B=2, T=3) for it
mha8, t8 = TR.MultiHeadAttention(8, 2), torch.randn(2, 3, 8)
# the same queries attending over keys of width 4 and values of width 6
mha8_kv = TR.MultiHeadAttention(8, 2, kdim=4, vdim=6)
kv5 = (torch.randn(2, 5, 4), torch.randn(2, 5, 6))  # five keys and values for it
rm, rv = torch.zeros(3), torch.ones(3)

CASES = [
    # (id, callable, exception type, words the message must contain)
    (
        "layer_norm not a tensor",
        lambda: CF.layer_norm([[1.0, 2.0]], 2),
        TypeError,
        "input",
    ),
    (
        "layer_norm integer dtype",
        lambda: CF.layer_norm(torch.arange(6).view(2, 3), 3),
        TypeError,
        "floating",
    ),
    (
        "layer_norm 0-d input",
        lambda: CF.layer_norm(torch.tensor(1.0), 1),
        ValueError,
        "input",
    ),
    (
        "layer_norm shape mismatch",
        lambda: CF.layer_norm(x3, 4),
        ValueError,
        "normalized_shape",
    ),
    (
        "layer_norm shape longer than input",
        lambda: CF.layer_norm(torch.randn(3), (1, 3)),
        ValueError,
        "normalized_shape",
    ),
    (
        "layer_norm shape of floats",
        lambda: CF.layer_norm(x3, (3.0,)),
        TypeError,
        "normalized_shape",
    ),
    (
        "layer_norm eps negative",
        lambda: CF.layer_norm(x3, 3, eps=-1e-5),
        ValueError,
        "eps",
    ),
    (
        "layer_norm eps negative",
        lambda: CF.layer_norm(x3, 3, eps=-1e-5),
        ValueError,
        "eps",
    ),
    (
        "layer_norm eps nan",
        lambda: CF.layer_norm(x3, 3, eps=math.nan),
        ValueError,
        "eps",
    ),
    (
        "layer_norm eps inf",
        lambda: CF.layer_norm(x3, 3, eps=math.inf),
        ValueError,
        "eps",
    ),
    (
        "layer_norm eps string",
        lambda: CF.layer_norm(x3, 3, eps="1e-5"),
        TypeError,
        "eps",
    ),
    (
        "layer_norm weight broadcastable but wrong",
        lambda: CF.layer_norm(x3, 3, weight=torch.ones(1)),
        ValueError,
        "weight",
    ),
    (
        "layer_norm bias wrong shape",
        lambda: CF.layer_norm(x3, 3, bias=torch.ones(4, 3)),
        ValueError,
        "bias",
    ),
    (
        "layer_norm weight wrong dtype",
        lambda: CF.layer_norm(x3, 3, weight=torch.ones(3, dtype=torch.float64)),
        TypeError,
        "weight",
    ),
    (
        "rms_norm integer dtype",
        lambda: CF.rms_norm(torch.ones(2, 3, dtype=torch.int32), 3),
        TypeError,
        "floating",
    ),
    (
        "rms_norm eps negative",
        lambda: CF.rms_norm(x3, 3, eps=-1e-5),
        ValueError,
        "eps",
    ),
    (
        "function shape mismatch",
        lambda: LayerNormFunction.apply(x3, (5,), None, None, 1e-5),
        ValueError,
        "normalized_shape",
    ),
    (
        "function eps negative",
        lambda: LayerNormFunction.apply(x3, (3,), None, None, -1.0),
        ValueError,
        "eps",
    ),
    (
        "batch_norm 1-d input",
        lambda: CF.batch_norm(torch.randn(3), rm, rv),
        ValueError,
        "input",
    ),
    (
        "batch_norm integer dtype",
        lambda: CF.batch_norm(torch.ones(4, 3, dtype=torch.long), rm, rv),
        TypeError,
        "input",
    ),
    (
        "batch_norm one value per channel",
        lambda: CF.batch_norm(
            torch.randn(1, 3), rm.clone(), rv.clone(), training=True
        ),
        ValueError,
        "more than 1 value per channel",
    ),
    (
        "batch_norm one real position",
        lambda: CF.batch_norm(
            x3, None, None, training=True, mask=CF.padding_mask([1, 0], 4)
        ),
        ValueError,
        "more than 1 value per channel",
    ),
    (
        "batch_norm mask wrong shape",
        lambda: CF.batch_norm(
            x3, None, None, training=True, mask=torch.ones(2, 3, dtype=torch.bool)
        ),
        ValueError,
        "mask",
    ),
    (
        "batch_norm mask wrong dtype",
        lambda: CF.batch_norm(x3, None, None, training=True, mask=torch.ones(2, 4)),
        TypeError,
        "mask",
    ),
    (
        "batch_norm running_mean wrong shape",
        lambda: CF.batch_norm(x3, torch.zeros(4), rv),
        ValueError,
        "running_mean",
    ),
    (
        "batch_norm eval without stats",
        lambda: CF.batch_norm(x3, None, None, training=False),
        ValueError,
        "running_mean",
    ),
    (
        "batch_norm momentum out of range",
        lambda: CF.batch_norm(
            x3, rm.clone(), rv.clone(), training=True, momentum=1.5
        ),
        ValueError,
        "momentum",
    ),
    (
        "batch_norm eps negative",
        lambda: CF.batch_norm(x3, rm, rv, eps=-1),
        ValueError,
        "eps",
    ),
    (
        "attention d_k mismatch",
        lambda: CF.attention_weights(torch.randn(2, 3), torch.randn(4, 5)),
        ValueError,
        "d_k",
    ),
    (
        "attention float64 mask for float32 scores",
        lambda: CF.attention_weights(q2, k4, attn_mask=torch.ones(2, 4).double()),
        TypeError,
        "attn_mask",
    ),
    (
        "attention mask wrong key length",
        lambda: CF.attention_weights(
            q2, k4, attn_mask=torch.ones(2, 3, dtype=torch.bool)
        ),
        ValueError,
        "attn_mask",
    ),
    (
        "attention mask transposed",
        lambda: CF.attention_weights(
            q2, k4, attn_mask=torch.ones(4, 2, dtype=torch.bool)
        ),
        ValueError,
        "attn_mask",
    ),
    (
        "attention integer query",
        lambda: CF.attention_weights(
            torch.ones(2, 3, dtype=torch.long), torch.randn(4, 3)
        ),
        TypeError,
        "query",
    ),
    (
        "sdpa value length",
        lambda: CF.scaled_dot_product_attention(q2, k4, torch.randn(5, 3)),
        ValueError,
        "value",
    ),
    (
        "padding_mask length too long",
        lambda: CF.padding_mask([2, 5], 4),
        ValueError,
        "lengths",
    ),
    (
        "padding_mask negative length",
        lambda: CF.padding_mask([-1], 4),
        ValueError,
        "lengths",
    ),
    (
        "padding_mask float lengths",
        lambda: CF.padding_mask(torch.tensor([1.5]), 4),
        TypeError,
        "lengths",
    ),
    (
        "padding_mask max_len float",
        lambda: CF.padding_mask([1], 4.0),
        TypeError,
        "max_len",
    ),
    (
        "config d_model not divisible",
        lambda: TR.BlockConfig(d_model=10, n_heads=3),
        ValueError,
        "divisible",
    ),
    ("config bad norm", lambda: TR.BlockConfig(norm="batch"), ValueError, "norm"),
    (
        "config bad activation",
        lambda: TR.BlockConfig(activation="tanh"),
        ValueError,
        "activation",
    ),
    (
        "mha d_model not divisible",
        lambda: TR.MultiHeadAttention(10, 4),
        ValueError,
        "divisible",
    ),
    (
        "mha wrong mask dtype",
        lambda: mha8(t8, mask=torch.ones(2, 3)),
        TypeError,
        "mask",
    ),
    (
        "mha wrong width",
        lambda: mha8(torch.randn(2, 3, 6)),
        ValueError,
        "query must have shape (B, T, 8)",
    ),
    (
        "block needs a config",
        lambda: TR.TransformerBlock({"d_model": 8}),
        TypeError,
        "config",
    ),
    (
        "from_torch needs batch_first",
        lambda: TR.TransformerBlock.from_torch(
            torch.nn.TransformerEncoderLayer(8, 2)
        ),
        ValueError,
        "batch_first",
    ),
    (
        "stack zero layers",
        lambda: TR.TransformerStack(TR.BlockConfig(), 0),
        ValueError,
        "n_layers",
    ),
    (
        "module layer norm eps negative",
        lambda: N.LayerNorm(4, eps=-1e-5),
        ValueError,
        "eps",
    ),
    (
        "module batch norm features",
        lambda: N.BatchNorm(0),
        ValueError,
        "num_features",
    ),
    # constructors: every argument, device and dtype included, is checked where it
    # enters
    (
        "module layer norm shape zero",
        lambda: N.LayerNorm((2, 0)),
        ValueError,
        "normalized_shape",
    ),
    (
        "module layer norm shape float",
        lambda: N.LayerNorm(2.5),
        TypeError,
        "normalized_shape",
    ),
    (
        "module layer norm shape empty",
        lambda: N.LayerNorm(()),
        ValueError,
        "normalized_shape",
    ),
    (
        "module layer norm shape bool",
        lambda: N.LayerNorm(True),
        TypeError,
        "normalized_shape",
    ),
    (
        "module layer norm affine not a bool",
        lambda: N.LayerNorm(4, elementwise_affine=1),
        TypeError,
        "elementwise_affine",
    ),
    (
        "module layer norm bias not a bool",
        lambda: N.LayerNorm(4, bias=None),
        TypeError,
        "bias",
    ),
    (
        "module layer norm integer dtype",
        lambda: N.LayerNorm(4, dtype=torch.int64),
        TypeError,
        "dtype",
    ),
    (
        "module layer norm dtype not a dtype",
        lambda: N.LayerNorm(4, dtype="float64"),
        TypeError,
        "dtype",
    ),
    (
        "module layer norm unknown device",
        lambda: N.LayerNorm(4, device="gpu0"),
        ValueError,
        "device",
    ),
    (
        "module rms norm eps negative",
        lambda: N.RMSNorm(4, eps=-1e-6),
        ValueError,
        "eps",
    ),
    (
        "module rms norm eps string",
        lambda: N.RMSNorm(4, eps="1e-6"),
        TypeError,
        "eps",
    ),
    (
        "module batch norm momentum",
        lambda: N.BatchNorm(4, momentum=1.5),
        ValueError,
        "momentum",
    ),
    (
        "module batch norm features float",
        lambda: N.BatchNorm(4.0),
        TypeError,
        "num_features",
    ),
    (
        "module batch norm stats flag",
        lambda: N.BatchNorm(4, track_running_stats="no"),
        TypeError,
        "track_running_stats",
    ),
    ("module batch norm bias", lambda: N.BatchNorm(4, bias=1), TypeError, "bias"),
    ("make_norm unknown name", lambda: N.make_norm("group", 4), ValueError, "norm"),
    (
        "make_norm chapter 4 name",
        lambda: N.make_norm("LayerNorm", 4),
        ValueError,
        "norm",
    ),
    ("make_norm name not a str", lambda: N.make_norm(1, 4), TypeError, "norm"),
    (
        "make_norm zero features",
        lambda: N.make_norm("rms", 0),
        ValueError,
        "num_features",
    ),
    # module forwards: the input is checked once per call, in the module
    (
        "module layer norm input width",
        lambda: N.LayerNorm(4)(torch.randn(2, 3)),
        ValueError,
        "normalized_shape",
    ),
    (
        "module layer norm input integer",
        lambda: N.LayerNorm(3)(torch.ones(2, 3, dtype=torch.long)),
        TypeError,
        "input",
    ),
    (
        "module layer norm input dtype",
        lambda: N.LayerNorm(3)(torch.randn(2, 3, dtype=torch.float64)),
        TypeError,
        "input",
    ),
    (
        "module rms norm input width",
        lambda: N.RMSNorm(4)(torch.randn(2, 3)),
        ValueError,
        "input",
    ),
    (
        "module batch norm 1-d input",
        lambda: N.BatchNorm(3)(torch.randn(3)),
        ValueError,
        "input",
    ),
    (
        "module batch norm input width",
        lambda: N.BatchNorm(3)(torch.randn(4, 5)),
        ValueError,
        "input",
    ),
    (
        "module batch norm mask shape",
        lambda: N.BatchNorm(3)(x3, mask=torch.ones(2, 3, dtype=torch.bool)),
        ValueError,
        "mask",
    ),
    (
        "module batch norm one value per channel",
        lambda: N.BatchNorm(3)(torch.randn(1, 3)),
        ValueError,
        "more than 1 value per channel",
    ),
    ("mha zero heads", lambda: TR.MultiHeadAttention(8, 0), ValueError, "n_heads"),
    (
        "mha dropout",
        lambda: TR.MultiHeadAttention(8, 2, dropout=2.0),
        ValueError,
        "dropout",
    ),
    (
        "mha bias not a bool",
        lambda: TR.MultiHeadAttention(8, 2, bias="yes"),
        TypeError,
        "bias",
    ),
    (
        "mha float attn_mask",
        lambda: mha8(t8, attn_mask=torch.ones(3, 3)),
        TypeError,
        "attn_mask",
    ),
    (
        "mha attn_mask wrong shape",
        lambda: mha8(t8, attn_mask=torch.ones(3, 4, dtype=torch.bool)),
        ValueError,
        "attn_mask",
    ),
    (
        "mha mask wrong shape",
        lambda: mha8(t8, mask=torch.ones(3, 2, dtype=torch.bool)),
        ValueError,
        "mask",
    ),
    (
        "mha input dtype",
        lambda: mha8(t8.double()),
        TypeError,
        "query",
    ),
    *[
        (f"mha {name} not a bool", bad, TypeError, name)
        for name, bad in (
            ("add_bias_kv", lambda: TR.MultiHeadAttention(8, 2, add_bias_kv=1)),
            (
                "add_zero_attn",
                lambda: TR.MultiHeadAttention(8, 2, add_zero_attn=None),
            ),
            ("batch_first", lambda: TR.MultiHeadAttention(8, 2, batch_first="no")),
        )
    ],
    (
        "mha kdim zero",
        lambda: TR.MultiHeadAttention(8, 2, kdim=0),
        ValueError,
        "kdim",
    ),
    (
        "mha vdim float",
        lambda: TR.MultiHeadAttention(8, 2, vdim=2.5),
        TypeError,
        "vdim",
    ),
    (
        "mha torch's positional order",
        lambda: TR.MultiHeadAttention(8, 2, 0.0, True, False, False, 4, 4, "cpu"),
        TypeError,
        "batch_first",
    ),
    (
        "mha key required when kdim differs",
        lambda: mha8_kv(t8),
        ValueError,
        "key is required: kdim (4)",
    ),
    (
        "mha value required when vdim differs",
        lambda: mha8_kv(t8, kv5[0]),
        ValueError,
        "value is required: vdim (6)",
    ),
    (
        "mha key wrong width",
        lambda: mha8_kv(t8, torch.randn(2, 5, 8), kv5[1]),
        ValueError,
        "key must have shape (B, T, 4)",
    ),
    (
        "mha value wrong width",
        lambda: mha8_kv(t8, kv5[0], torch.randn(2, 5, 4)),
        ValueError,
        "value must have shape (B, T, 6)",
    ),
    (
        "mha key from another batch",
        lambda: mha8_kv(t8, torch.randn(3, 5, 4), torch.randn(3, 5, 6)),
        ValueError,
        "key must have the query's batch size 2",
    ),
    (
        "mha fewer values than keys",
        lambda: mha8_kv(t8, kv5[0], torch.randn(2, 4, 6)),
        ValueError,
        "value must have key's batch size and number of tokens",
    ),
    (
        "mha key dtype",
        lambda: mha8_kv(t8, kv5[0].double(), kv5[1]),
        TypeError,
        "key must have dtype",
    ),
    (
        "mha mask over the queries, not the keys",
        lambda: mha8_kv(t8, *kv5, mask=torch.ones(2, 3, dtype=torch.bool)),
        ValueError,
        "mask",
    ),
    (
        "mha attn_mask (S, T) instead of (T, S)",
        lambda: mha8_kv(t8, *kv5, attn_mask=torch.ones(5, 3, dtype=torch.bool)),
        ValueError,
        "attn_mask must have shape (3, 5) or (2, 3, 5)",
    ),
    (
        "mha sequence-first input of the wrong width",
        lambda: TR.MultiHeadAttention(8, 2, batch_first=False)(
            torch.randn(3, 2, 6)
        ),
        ValueError,
        "query must have shape (T, B, 8)",
    ),
    (
        "mha mask positional (torch's key)",
        lambda: mha8(t8, torch.ones(2, 3, dtype=torch.bool)),
        TypeError,
        "key",
    ),
    (
        "mha from_torch needs torch's attention",
        lambda: TR.MultiHeadAttention.from_torch(mha8),
        TypeError,
        "attn must be a MultiheadAttention",
    ),
    (
        "config d_model bool",
        lambda: TR.BlockConfig(d_model=True),
        TypeError,
        "d_model",
    ),
    (
        "config n_heads zero",
        lambda: TR.BlockConfig(n_heads=0),
        ValueError,
        "n_heads",
    ),
    ("config dropout", lambda: TR.BlockConfig(dropout=-0.5), ValueError, "dropout"),
    ("config eps negative", lambda: TR.BlockConfig(eps=-1e-5), ValueError, "eps"),
    (
        "config norm_first not a bool",
        lambda: TR.BlockConfig(norm_first="yes"),
        TypeError,
        "norm_first",
    ),
    ("config bias not a bool", lambda: TR.BlockConfig(bias=1), TypeError, "bias"),
    (
        "block dtype",
        lambda: TR.TransformerBlock(TR.BlockConfig(), dtype=torch.int8),
        TypeError,
        "dtype",
    ),
    (
        "stack needs a config",
        lambda: TR.TransformerStack("config", 2),
        TypeError,
        "config",
    ),
    (
        "stack final_norm not a bool",
        lambda: TR.TransformerStack(TR.BlockConfig(), 2, final_norm=0),
        TypeError,
        "final_norm",
    ),
    (
        "from_torch needs a layer",
        lambda: TR.TransformerBlock.from_torch(torch.nn.Linear(2, 2)),
        TypeError,
        "layer",
    ),
    # functional: checks moved to _checks keep naming the argument
    (
        "attention scale inf",
        lambda: CF.attention_weights(q2, k4, scale=math.inf),
        ValueError,
        "scale",
    ),
    (
        "attention scale string",
        lambda: CF.attention_weights(q2, k4, scale="0.5"),
        TypeError,
        "scale",
    ),
    (
        "sdpa mask wrong key length",
        lambda: CF.scaled_dot_product_attention(
            q2, k4, v4, attn_mask=torch.ones(2, 3, dtype=torch.bool)
        ),
        ValueError,
        "attn_mask",
    ),
    (
        "sdpa dropout_p above 1",
        lambda: CF.scaled_dot_product_attention(q2, k4, v4, dropout_p=1.5),
        ValueError,
        "dropout_p",
    ),
    (
        "sdpa is_causal not a bool",
        lambda: CF.scaled_dot_product_attention(q2, k4, v4, is_causal=1),
        TypeError,
        "is_causal",
    ),
    (
        "sdpa is_causal with a mask",
        lambda: CF.scaled_dot_product_attention(
            q2, k4, v4, torch.ones(2, 4, dtype=torch.bool), is_causal=True
        ),
        ValueError,
        "is_causal",
    ),
    (
        "sdpa enable_gqa heads not dividing",
        lambda: CF.scaled_dot_product_attention(
            torch.randn(3, 2, 4),
            torch.randn(2, 5, 4),
            torch.randn(2, 5, 4),
            enable_gqa=True,
        ),
        ValueError,
        "enable_gqa",
    ),
    (
        "sdpa value dtype",
        lambda: CF.scaled_dot_product_attention(
            q2, k4, torch.randn(4, 3, dtype=torch.float64)
        ),
        TypeError,
        "value",
    ),
    (
        "batch_norm training not a bool",
        lambda: CF.batch_norm(x3, None, None, training=1),
        TypeError,
        "training",
    ),
    (
        "padding_mask negative max_len",
        lambda: CF.padding_mask([0], -1),
        ValueError,
        "max_len",
    ),
]


@pytest.mark.parametrize(
    ("case", "fn", "exc", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_rejected_with_a_message_naming_it(case, fn, exc, words):
    with pytest.raises(exc) as info:
        fn()
    assert words in str(info.value), (
        f"{case}: message {str(info.value)!r} does not mention {words!r}"
    )


def test_sdpa_takes_torchs_positional_arguments_in_torchs_order():
    """(query, key, value, attn_mask, dropout_p, is_causal), then keyword-only
    ``scale`` and ``enable_gqa``, as torch's."""
    import torch.nn.functional as F

    q, k = torch.randn(3, 4), torch.randn(5, 4)
    torch.testing.assert_close(
        CF.scaled_dot_product_attention(q, k, k, None, 0.0, True),
        F.scaled_dot_product_attention(q, k, k, None, 0.0, True),
    )
    with pytest.raises(TypeError, match="positional"):
        CF.scaled_dot_product_attention(q, k, k, None, 0.0, False, 0.5)
    with pytest.raises(TypeError, match="positional"):
        F.scaled_dot_product_attention(q, k, k, None, 0.0, False, 0.5)
