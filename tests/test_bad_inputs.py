"""Bad input is rejected with a clear error that names the argument."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import functional as CF
from course_lib import modules as M
from course_lib.autograd import LayerNormFunction

x3 = torch.randn(2, 4, 3)
rm, rv = torch.zeros(3), torch.ones(3)

CASES = [
    # (id, callable, exception type, words the message must contain)
    ("layer_norm not a tensor", lambda: CF.layer_norm([[1.0, 2.0]], 2), TypeError, "input"),
    (
        "layer_norm integer dtype",
        lambda: CF.layer_norm(torch.arange(6).view(2, 3), 3),
        TypeError,
        "floating",
    ),
    ("layer_norm 0-d input", lambda: CF.layer_norm(torch.tensor(1.0), 1), ValueError, "input"),
    ("layer_norm shape mismatch", lambda: CF.layer_norm(x3, 4), ValueError, "normalized_shape"),
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
    ("layer_norm eps zero", lambda: CF.layer_norm(x3, 3, eps=0.0), ValueError, "eps"),
    ("layer_norm eps negative", lambda: CF.layer_norm(x3, 3, eps=-1e-5), ValueError, "eps"),
    ("layer_norm eps nan", lambda: CF.layer_norm(x3, 3, eps=math.nan), ValueError, "eps"),
    ("layer_norm eps inf", lambda: CF.layer_norm(x3, 3, eps=math.inf), ValueError, "eps"),
    ("layer_norm eps string", lambda: CF.layer_norm(x3, 3, eps="1e-5"), TypeError, "eps"),
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
    ("rms_norm eps zero", lambda: CF.rms_norm(x3, 3, eps=0.0), ValueError, "eps"),
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
    ("batch_norm 1-d input", lambda: CF.batch_norm(torch.randn(3), rm, rv), ValueError, "input"),
    (
        "batch_norm integer dtype",
        lambda: CF.batch_norm(torch.ones(4, 3, dtype=torch.long), rm, rv),
        TypeError,
        "input",
    ),
    (
        "batch_norm one value per channel",
        lambda: CF.batch_norm(torch.randn(1, 3), rm.clone(), rv.clone(), training=True),
        ValueError,
        "more than 1 value per channel",
    ),
    (
        "batch_norm one real position",
        lambda: CF.batch_norm(x3, None, None, training=True, mask=CF.padding_mask([1, 0], 4)),
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
        lambda: CF.batch_norm(x3, rm.clone(), rv.clone(), training=True, momentum=1.5),
        ValueError,
        "momentum",
    ),
    ("batch_norm eps zero", lambda: CF.batch_norm(x3, rm, rv, eps=0), ValueError, "eps"),
    (
        "attention d_k mismatch",
        lambda: CF.attention_weights(torch.randn(2, 3), torch.randn(4, 5)),
        ValueError,
        "d_k",
    ),
    (
        "attention float mask",
        lambda: CF.attention_weights(
            torch.randn(2, 3), torch.randn(4, 3), attn_mask=torch.ones(2, 4)
        ),
        TypeError,
        "attn_mask",
    ),
    (
        "attention mask wrong key length",
        lambda: CF.attention_weights(
            torch.randn(2, 3), torch.randn(4, 3), attn_mask=torch.ones(2, 3, dtype=torch.bool)
        ),
        ValueError,
        "attn_mask",
    ),
    (
        "attention mask transposed",
        lambda: CF.attention_weights(
            torch.randn(2, 3), torch.randn(4, 3), attn_mask=torch.ones(4, 2, dtype=torch.bool)
        ),
        ValueError,
        "attn_mask",
    ),
    (
        "attention integer query",
        lambda: CF.attention_weights(torch.ones(2, 3, dtype=torch.long), torch.randn(4, 3)),
        TypeError,
        "query",
    ),
    (
        "sdpa value length",
        lambda: CF.scaled_dot_product_attention(
            torch.randn(2, 3), torch.randn(4, 3), torch.randn(5, 3)
        ),
        ValueError,
        "value",
    ),
    ("padding_mask length too long", lambda: CF.padding_mask([2, 5], 4), ValueError, "lengths"),
    ("padding_mask negative length", lambda: CF.padding_mask([-1], 4), ValueError, "lengths"),
    (
        "padding_mask float lengths",
        lambda: CF.padding_mask(torch.tensor([1.5]), 4),
        TypeError,
        "lengths",
    ),
    ("padding_mask max_len float", lambda: CF.padding_mask([1], 4.0), TypeError, "max_len"),
    (
        "config d_model not divisible",
        lambda: M.BlockConfig(d_model=10, n_heads=3),
        ValueError,
        "divisible",
    ),
    ("config bad norm", lambda: M.BlockConfig(norm="batch"), ValueError, "norm"),
    ("config bad activation", lambda: M.BlockConfig(activation="tanh"), ValueError, "activation"),
    ("mha d_model not divisible", lambda: M.MultiHeadAttention(10, 4), ValueError, "divisible"),
    (
        "mha wrong mask dtype",
        lambda: M.MultiHeadAttention(8, 2)(torch.randn(2, 3, 8), mask=torch.ones(2, 3)),
        TypeError,
        "mask",
    ),
    ("mha wrong width", lambda: M.MultiHeadAttention(8, 2)(torch.randn(2, 3, 6)), ValueError, "x"),
    ("block needs a config", lambda: M.TransformerBlock({"d_model": 8}), TypeError, "config"),
    (
        "from_torch needs batch_first",
        lambda: M.TransformerBlock.from_torch(torch.nn.TransformerEncoderLayer(8, 2)),
        ValueError,
        "batch_first",
    ),
    ("stack zero layers", lambda: M.TransformerStack(M.BlockConfig(), 0), ValueError, "n_layers"),
    ("module layer norm eps zero", lambda: M.LayerNorm(4, eps=0.0), ValueError, "eps"),
    ("module batch norm features", lambda: M.BatchNorm(0), ValueError, "num_features"),
]


@pytest.mark.parametrize(("case", "fn", "exc", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_with_a_message_naming_it(case, fn, exc, words):
    with pytest.raises(exc) as info:
        fn()
    assert words in str(info.value), (
        f"{case}: message {str(info.value)!r} does not mention {words!r}"
    )
