"""Claims of chapter 3 (padding corruption), tested beyond the notebook's examples.

* the padding law: batch mean (1 - p) mu, variance (1 - p) sigma^2 + p (1 - p) mu^2;
* LayerNorm of a real token is bit-identical under any amount or content of padding;
* masked BatchNorm equals BatchNorm on the unpadded rows (outputs and running
  stats), while unmasked BatchNorm drifts with the padding exactly as the law
  predicts;
* what masking leaves: dependence on batch-mates, and eval mode's batch
  independence;
* attention outputs of real tokens are unchanged by PAD positions when the padding
  mask is used (and change without it); a query with no real key gives zeros, not
  NaN;
* a constant row leaves LayerNorm as beta, not zero;
* the reduction-axes figure shades exactly the elements one statistic of each norm
  (course_lib's and torch's) depends on.
"""

from __future__ import annotations

from decimal import Decimal

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from course_lib import functional as CF
from course_lib import norms, transformer
from course_lib.data import PADDED_LENGTHS, PRODUCTION_BATCH, contextual_batch
from course_lib.experiments import ch03_padding_corruption as ch03
from course_lib.notebook import note_agrees

F64 = torch.float64


def _padded_batch(
    seed: int, n_rows: int, feats: int, p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows with random per-feature means and scales; round(p * n_rows) of them
    zeroed."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.empty(feats, dtype=F64).uniform_(-10, 10, generator=g)
    sd = torch.empty(feats, dtype=F64).uniform_(0.1, 5, generator=g)
    rows = mu + sd * torch.randn(n_rows, feats, generator=g, dtype=F64)
    is_real = torch.ones(n_rows, dtype=torch.bool)
    is_real[torch.randperm(n_rows, generator=g)[: round(p * n_rows)]] = False
    return rows * is_real[:, None], is_real


# --- the law ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("p", [0.0, 0.05, 0.25, 0.5, 0.7, 0.9, 0.99])
def test_padding_law_equals_numeric_batch_statistics(p, seed):
    rows, is_real = _padded_batch(seed, 1000, 5, p)
    mean_real, var_real = ch03.feature_moments(rows, is_real)
    mean_pad, var_pad = ch03.feature_moments(rows)
    exact_p = 1 - is_real.sum().item() / is_real.numel()
    law_mean, law_var = ch03.padding_law(mean_real, var_real, exact_p)
    torch.testing.assert_close(law_mean, mean_pad, rtol=1e-12, atol=0)
    torch.testing.assert_close(law_var, var_pad, rtol=1e-12, atol=0)
    # and batch_norm really normalizes with these statistics
    eps = 1e-5
    expected = (rows - law_mean) / torch.sqrt(law_var + eps)
    torch.testing.assert_close(
        CF.batch_norm(rows, None, None, training=True, eps=eps),
        expected,
        rtol=1e-11,
        atol=1e-11,
    )


def test_padding_law_on_the_notes_batch():
    x = contextual_batch()
    mask = CF.padding_mask(PADDED_LENGTHS, x.shape[1])
    law_mean, law_var = ch03.padding_law(*ch03.feature_moments(x, mask), 0.25)
    mean8, var8 = ch03.feature_moments(x)
    torch.testing.assert_close(law_mean, mean8, rtol=1e-12, atol=0)
    torch.testing.assert_close(law_var, var8, rtol=1e-12, atol=0)
    # here every variance grows: |mu| / sigma is above 1 / sqrt(1 - p) everywhere
    mean6, var6 = ch03.feature_moments(x, mask)
    assert bool((mean6.abs() / var6.sqrt() > 1 / 0.75**0.5).all())
    assert bool((var8 > var6).all())


# note 003's hand-worked squared deviations, typed in as printed
_NOTES_SQ_DEV_F1 = [
    "7.62",
    "0.21",
    "13.99",
    "13.99",
    "3.84",
    "0.12",
    "26.63",
    "6.45",
]
_NOTES_SQ_DEV_HI = ["0.76", "12.46", "7.13"]


def test_notes_hand_values_for_the_two_sentence_batch():
    x = contextual_batch()
    mask = CF.padding_mask(PADDED_LENGTHS, x.shape[1])
    mean8, var8 = ch03.feature_moments(x)
    mean6, _ = ch03.feature_moments(x, mask)
    # all the means are right
    for note, value in zip(["3.74", "4.41", "4.09"], mean8, strict=True):
        assert note_agrees(note, value)
    for note, value in zip(["4.98", "5.88", "5.45"], mean6, strict=True):
        assert note_agrees(note, value)
    f1, hi = x.reshape(-1, 3)[:, 0], x[0, 0]
    for values, notes, n_wrong in [
        (f1, _NOTES_SQ_DEV_F1, 7),
        (hi, _NOTES_SQ_DEV_HI, 3),
    ]:
        mu = values.mean()
        exact = (values - mu) ** 2
        from_rounded_mean = (values - round(mu.item(), 2)) ** 2
        verdicts = [note_agrees(n, v) for n, v in zip(notes, exact, strict=True)]
        assert verdicts.count(False) == n_wrong
        # each slip is squaring the deviation from the mean rounded to 2 decimals
        assert all(
            note_agrees(n, v) for n, v in zip(notes, from_rounded_mean, strict=True)
        )
    # feature 1: 72.85 is the sum of the rounded terms; it and 9.11 are one unit
    # off, the std 3.02 agrees, the PAD part 27.98 is off; 34.12 / 4.27 / 2.07 are
    # wrong
    ss = ((f1 - f1.mean()) ** 2).sum()
    assert sum(Decimal(n) for n in _NOTES_SQ_DEV_F1) == Decimal("72.85")
    assert not note_agrees("72.85", ss) and note_agrees("72.84", ss)
    assert not note_agrees("9.11", ss / 8) and note_agrees("3.02", (ss / 8).sqrt())
    assert not note_agrees("27.98", 2 * f1.mean() ** 2)
    assert note_agrees("38", 100 * 2 * f1.mean() ** 2 / ss)
    assert not any(
        note_agrees(n, v)
        for n, v in [("34.12", ss), ("4.27", var8[0]), ("2.07", var8[0].sqrt())]
    )
    # "Hi": the errors cancel in the sum, so mean, variance and std are right
    dev_hi = (hi - hi.mean()) ** 2
    assert sum(Decimal(n) for n in _NOTES_SQ_DEV_HI) == Decimal("20.35")
    assert note_agrees("20.35", dev_hi.sum()) and note_agrees("6.78", dev_hi.mean())
    assert note_agrees("5.63", hi.mean()) and note_agrees(
        "2.60", dev_hi.mean().sqrt()
    )
    hi_hat = (hi - hi.mean()) / dev_hi.mean().sqrt()
    assert note_agrees("0.33", hi_hat[0]) and note_agrees("-1.36", hi_hat[1])
    assert not note_agrees("1.03", hi_hat[2])
    # the two wrong single-token standard deviations
    assert not note_agrees("2.51", hi.std(unbiased=False))
    assert not note_agrees("3.04", x[1, 0].std(unbiased=False))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_note_001_layer_norm_class_is_nn_layer_norm_and_note_003s_is_not(seed):
    g = torch.Generator().manual_seed(seed)
    d = 3 + seed
    x = 4 * torch.randn(5, 7, d, generator=g, dtype=F64) + 2
    mean = x.mean(-1, keepdim=True)
    # note 001: biased variance, eps = 1e-5 inside the square root
    note001 = (x - mean) / torch.sqrt(
        x.var(-1, keepdim=True, unbiased=False) + 1e-5
    )
    torch.testing.assert_close(
        note001, F.layer_norm(x, (d,)), rtol=1e-12, atol=1e-12
    )
    # note 003 (eps = 0 here): the unbiased std, so sqrt(D / (D - 1)) apart
    note003 = (x - mean) / x.std(-1, keepdim=True)
    ratio = F.layer_norm(x, (d,), eps=0.0) / note003
    torch.testing.assert_close(
        ratio, torch.full_like(ratio, (d / (d - 1)) ** 0.5), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_production_batch_mean_is_three_tenths_and_variance_follows_the_law(seed):
    prod = PRODUCTION_BATCH
    g = torch.Generator().manual_seed(seed)
    lengths = ch03.lengths_with_total(prod.batch_size, prod.max_len, prod.real, g)
    mask = CF.padding_mask(lengths, prod.max_len)
    feats = 5.0 + 2.0 * torch.randn(
        prod.batch_size, prod.max_len, 3, generator=g, dtype=F64
    )
    feats = feats * mask[..., None]
    assert prod.pad_fraction == pytest.approx(0.7, abs=1e-15)
    mean_r, var_r = ch03.feature_moments(feats, mask)
    mean_p, var_p = ch03.feature_moments(feats)
    torch.testing.assert_close(
        mean_p / mean_r, torch.full((3,), 0.3, dtype=F64), rtol=1e-12, atol=0
    )
    torch.testing.assert_close(
        var_p, 0.3 * var_r + 0.21 * mean_r**2, rtol=1e-12, atol=0
    )


def test_variance_grows_exactly_above_the_threshold():
    p, n = 0.7, 1000
    threshold = 1 / (1 - p) ** 0.5
    g = torch.Generator().manual_seed(0)
    z = torch.randn(round((1 - p) * n), 1, generator=g, dtype=F64)
    z = (z - z.mean()) / z.std(unbiased=False)
    for factor, grows in [(0.99, False), (1.01, True)]:
        real = factor * threshold + z
        padded = torch.cat([real, torch.zeros(n - real.shape[0], 1, dtype=F64)])
        assert (
            ch03.feature_moments(padded)[1] > ch03.feature_moments(real)[1]
        ).item() is grows


# --- LayerNorm vs BatchNorm under padding -----------------------------------------


@pytest.mark.parametrize("d", [3, 16, 64])
@pytest.mark.parametrize("pad_content", ["zeros", "junk"])
def test_layer_norm_is_bit_identical_under_any_padding(d, pad_content):
    g = torch.Generator().manual_seed(d)
    sentences = [
        torch.randn(n, d, generator=g, dtype=F64) * 3 + 1 for n in (2, 5, 7)
    ]
    weight = torch.rand(d, generator=g, dtype=F64) + 0.5
    bias = torch.randn(d, generator=g, dtype=F64)
    module = norms.LayerNorm(d).double()
    alone = [CF.layer_norm(s, d, weight, bias) for s in sentences]
    alone_torch = [F.layer_norm(s, (d,)) for s in sentences]
    with torch.no_grad():
        alone_module = [module(s) for s in sentences]
    for max_len in (7, 8, 20, 64):
        batch, mask = ch03.pad_sequences(sentences, max_len)
        if pad_content == "junk":
            junk = 1e3 * torch.randn(batch.shape, generator=g, dtype=F64)
            batch = torch.where(mask[..., None], batch, junk)
        out = CF.layer_norm(batch, d, weight, bias)
        out_torch = F.layer_norm(batch, (d,))
        with torch.no_grad():
            out_module = module(batch)
        for b, s in enumerate(sentences):
            n = s.shape[0]
            assert torch.equal(out[b, :n], alone[b])
            assert torch.equal(out_torch[b, :n], alone_torch[b])
            assert torch.equal(out_module[b, :n], alone_module[b])


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masked_batch_norm_equals_batch_norm_on_the_unpadded_rows(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 12, (6,), generator=g).tolist()
    sentences = [
        torch.randn(n, 4, generator=g, dtype=dtype) * 2 + 3 for n in lengths
    ]
    batch, mask = ch03.pad_sequences(sentences, max(lengths) + 5)
    # non-zero PAD
    batch = torch.where(mask[..., None], batch, torch.full_like(batch, 7.0))
    packed = torch.cat(sentences)  # (sum of lengths, 4): no PAD rows at all
    masked_bn, packed_bn = (
        norms.BatchNorm(4).to(dtype),
        norms.BatchNorm(4).to(dtype),
    )
    with torch.no_grad():
        masked_bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        packed_bn.weight.copy_(masked_bn.weight)
        masked_bn.bias.fill_(0.25)
        packed_bn.bias.fill_(0.25)
    for _ in range(3):  # several training steps: running statistics too
        out_masked = masked_bn(batch, mask=mask)
        out_packed = packed_bn(packed)
        torch.testing.assert_close(out_masked[mask], out_packed, rtol=0, atol=0)
    torch.testing.assert_close(
        masked_bn.running_mean, packed_bn.running_mean, rtol=0, atol=0
    )
    torch.testing.assert_close(
        masked_bn.running_var, packed_bn.running_var, rtol=0, atol=0
    )
    # and the unmasked BatchNorm of the same batch is different (the padding term)
    plain = CF.batch_norm(batch, None, None, training=True)[mask]
    assert not torch.allclose(
        plain, CF.batch_norm(packed, None, None, training=True)
    )


def test_unmasked_batch_norm_drifts_with_padding_as_the_law_predicts():
    x = contextual_batch()
    mask = CF.padding_mask(PADDED_LENGTHS, 4)
    mean_r, var_r = ch03.feature_moments(x, mask)
    you = x[1, 2]
    previous = None
    for max_len in range(4, 41):
        out = ch03.token_outputs(len_other=2, max_len=max_len, token=2)
        law_m, law_v = ch03.padding_law(mean_r, var_r, out["p"])
        torch.testing.assert_close(
            out["batchnorm"],
            (you - law_m) / torch.sqrt(law_v + 1e-5),
            rtol=0,
            atol=1e-12,
        )
        if previous is not None:
            assert not torch.allclose(out["batchnorm"], previous["batchnorm"])
            assert torch.equal(out["layernorm"], previous["layernorm"])
            assert torch.equal(
                out["masked_batchnorm"], previous["masked_batchnorm"]
            )
        previous = out


def test_token_outputs_at_the_notes_setting():
    x = contextual_batch()
    mask = CF.padding_mask(PADDED_LENGTHS, 4)
    out = ch03.token_outputs()
    assert out["p"] == 0.25
    assert torch.equal(
        out["batchnorm"], CF.batch_norm(x, None, None, training=True)[1, 2]
    )
    assert torch.equal(
        out["masked_batchnorm"],
        CF.batch_norm(x, None, None, training=True, mask=mask)[1, 2],
    )
    assert torch.equal(out["layernorm"], CF.layer_norm(x, 3)[1, 2])


# --- what masking leaves ----------------------------------------------------------


def test_masked_batch_norm_still_depends_on_batch_mates():
    x = contextual_batch()
    tracked = x[1]
    outs = []
    for mate in (
        x[0, :2],
        torch.tensor([[1.0, 9.0, 2.0]], dtype=F64),
        x[0, :1] * 2,
    ):
        batch, mask = ch03.pad_sequences([tracked, mate])
        outs.append(CF.batch_norm(batch, None, None, training=True, mask=mask)[0])
        assert torch.equal(CF.layer_norm(batch, 3)[0], CF.layer_norm(tracked, 3))
    assert not torch.allclose(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


def test_eval_mode_batch_norm_works_on_a_batch_of_one_and_ignores_the_batch():
    g = torch.Generator().manual_seed(0)
    bn = norms.BatchNorm(5).double()
    for _ in range(5):
        bn(torch.randn(4, 6, 5, generator=g, dtype=F64))
    bn.eval()
    batch = torch.randn(8, 6, 5, generator=g, dtype=F64)
    assert torch.equal(bn(batch[:1])[0], bn(batch)[0])
    bn.train()
    with pytest.raises(ValueError, match="more than 1 value"):
        bn(batch[:1, :1])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_running_statistics_from_short_sentences_squeeze_long_ones(seed):
    # the notebook's experiment (seed 3) over more seeds: an untrained attention
    # layer, a masked BatchNorm's running statistics from lengths 4-12 (60 steps)
    torch.manual_seed(seed)
    d = 16
    attn = transformer.MultiHeadAttention(d, n_heads=4).double()
    g = torch.Generator().manual_seed(seed)

    def batch(lo, hi):
        lens = torch.randint(lo, hi + 1, (32,), generator=g)
        m = CF.padding_mask(lens, int(lens.max()))
        emb = torch.randn(*m.shape, d, generator=g, dtype=F64) * m[..., None]
        with torch.no_grad():
            return attn(emb, mask=m), m

    bn = norms.BatchNorm(d, momentum=0.1).double()
    for _ in range(60):
        h, m = batch(4, 12)
        bn(h, mask=m)
    bn.eval()
    h, m = batch(48, 80)
    with torch.no_grad():
        y_eval = bn(h, mask=m)[m]
    y_batch = CF.batch_norm(h, None, None, training=True, mask=m)[m]
    assert y_eval.std(0, unbiased=False).mean() < 0.6
    assert abs(y_batch.std(0, unbiased=False).mean() - 1) < 0.01


def test_layer_norm_maps_a_constant_row_to_beta():
    norm = norms.LayerNorm(4).double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([2.0, 0.5, 1.0, 3.0]))
        norm.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        for value in (0.0, 5.0, -2.5):
            assert torch.equal(
                norm(torch.full((1, 4), value, dtype=F64))[0], norm.bias
            )


# --- attention and the padding mask -----------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdpa_outputs_of_real_tokens_unchanged_by_pad_positions(seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 5, 8, generator=g, dtype=F64)
    k = torch.randn(1, 5, 8, generator=g, dtype=F64)
    v = torch.randn(1, 5, 8, generator=g, dtype=F64)
    alone = CF.scaled_dot_product_attention(q, k, v)
    for extra in (1, 4, 30):
        junk = [
            100 * torch.randn(1, extra, 8, generator=g, dtype=F64) for _ in range(3)
        ]
        qp, kp, vp = (
            torch.cat([t, j], dim=1) for t, j in zip((q, k, v), junk, strict=True)
        )
        # (1, 1, T) keys that are real
        allowed = CF.padding_mask([5], 5 + extra)[:, None, :]
        masked = CF.scaled_dot_product_attention(qp, kp, vp, attn_mask=allowed)[
            :, :5
        ]
        torch.testing.assert_close(masked, alone, rtol=0, atol=1e-12)
        unmasked = CF.scaled_dot_product_attention(qp, kp, vp)[:, :5]
        assert not torch.allclose(unmasked, alone, atol=1e-3)


@pytest.mark.parametrize("norm_first", [False, True])
def test_block_outputs_of_real_tokens_unchanged_by_pad_positions(norm_first):
    torch.manual_seed(0)
    config = transformer.BlockConfig(
        d_model=16, n_heads=4, d_ff=32, norm_first=norm_first
    )
    block = transformer.TransformerBlock(config).double().eval()
    attn = transformer.MultiHeadAttention(16, 4).double().eval()
    g = torch.Generator().manual_seed(1)
    lengths = [3, 6, 1]
    sentences = [torch.randn(n, 16, generator=g, dtype=F64) for n in lengths]
    with torch.no_grad():
        alone_block = [block(s[None])[0] for s in sentences]
        alone_attn = [attn(s[None])[0] for s in sentences]
        for max_len in (6, 9, 40):
            batch, mask = ch03.pad_sequences(sentences, max_len)
            junk = 50 * torch.randn(batch.shape, generator=g, dtype=F64)
            batch = torch.where(mask[..., None], batch, junk)
            out_block = block(batch, mask=mask)
            out_attn = attn(batch, mask=mask)
            no_mask = block(batch)
            for b, n in enumerate(lengths):
                torch.testing.assert_close(
                    out_block[b, :n], alone_block[b], rtol=0, atol=1e-12
                )
                torch.testing.assert_close(
                    out_attn[b, :n], alone_attn[b], rtol=0, atol=1e-12
                )
                # without the mask, the PAD junk reaches the real tokens
                if n < max_len:
                    assert not torch.allclose(
                        no_mask[b, :n], alone_block[b], atol=1e-3
                    )


def test_query_with_no_real_key_gives_zeros_not_nan():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 8, generator=g, dtype=F64)
    mask = CF.padding_mask([4, 2, 0], 4)  # the third sentence is empty
    weights = CF.attention_weights(x, x, attn_mask=mask[:, None, :])
    assert not weights.isnan().any()
    assert torch.equal(weights[2], torch.zeros(4, 4, dtype=F64))
    naive = torch.softmax(
        (x @ x.transpose(-2, -1) / 8**0.5).masked_fill(
            ~mask[:, None, :], float("-inf")
        ),
        dim=-1,
    )
    assert naive[2].isnan().all()  # the failure the convention avoids
    torch.testing.assert_close(weights[:2], naive[:2], rtol=0, atol=1e-15)
    block = transformer.TransformerBlock(
        transformer.BlockConfig(d_model=8, n_heads=2, d_ff=16)
    ).double()
    assert not block(x, mask=mask).isnan().any()
    # torch's SDPA gives the empty sentence an output of exactly zero; the pinned
    # nn.MultiheadAttention gives NaN in every output of it
    sdpa = F.scaled_dot_product_attention(x, x, x, attn_mask=mask[:, None, :])
    assert torch.equal(sdpa[2], torch.zeros_like(sdpa[2]))
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()
    with torch.no_grad():
        out = mha(x, x, x, key_padding_mask=~mask)[0]
    assert out[2].isnan().all() and not out[:2].isnan().any()


def test_masked_loss_equals_the_unpadded_loss_and_sends_no_gradient_to_pad():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, generator=g, dtype=F64, requires_grad=True)
    labels = torch.randint(0, 5, (2, 4), generator=g)
    mask = CF.padding_mask(PADDED_LENGTHS, 4)
    loss = F.cross_entropy(
        logits.reshape(-1, 5), labels.masked_fill(~mask, -100).reshape(-1)
    )
    unpadded = F.cross_entropy(logits[mask], labels[mask])
    torch.testing.assert_close(loss, unpadded, rtol=0, atol=1e-14)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.equal(grad[~mask], torch.zeros_like(grad[~mask]))


# --- the chapter's helpers --------------------------------------------------------


@pytest.mark.parametrize(
    ("batch_size", "max_len", "total", "seed"),
    [
        (32, 100, 960, 0),
        (32, 100, 960, 1),
        (5, 10, 14, 0),
        (5, 10, 50, 0),
        (1, 7, 7, 0),
    ],
)
def test_lengths_with_total(batch_size, max_len, total, seed):
    lengths = ch03.lengths_with_total(
        batch_size, max_len, total, torch.Generator().manual_seed(seed)
    )
    assert len(lengths) == batch_size
    assert sum(lengths) == total
    assert max(lengths) == max_len == lengths[0]
    assert min(lengths) >= 1
    again = ch03.lengths_with_total(
        batch_size, max_len, total, torch.Generator().manual_seed(seed)
    )
    assert again == lengths


def test_pad_sequences_and_sinusoidal_positions():
    a, b = torch.ones(2, 3, dtype=F64), torch.full((4, 3), 2.0, dtype=F64)
    batch, mask = ch03.pad_sequences([a, b])
    assert batch.shape == (2, 4, 3)
    assert mask.tolist() == [[True, True, False, False], [True] * 4]
    assert torch.equal(batch[0, 2:], torch.zeros(2, 3, dtype=F64))
    assert ch03.pad_sequences([a, b], 9)[0].shape == (2, 9, 3)
    pe = ch03.sinusoidal_positions(50, 8)
    assert torch.equal(pe[0], torch.tensor([0.0, 1.0] * 4, dtype=F64))
    t, i = 17, 2  # PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(...)
    angle = torch.tensor(t / 10000 ** (2 * i / 8), dtype=F64)
    assert pe[t, 2 * i].item() == pytest.approx(torch.sin(angle).item(), abs=1e-14)
    assert pe[t, 2 * i + 1].item() == pytest.approx(
        torch.cos(angle).item(), abs=1e-14
    )


def test_other_sentence_starts_with_the_notes_tokens():
    s = ch03.other_sentence(10)
    assert s.shape == (10, 3)
    assert torch.equal(s[:2], contextual_batch()[0, :2])
    assert torch.equal(ch03.other_sentence(64)[:10], s)
    assert bool(((s >= 0) & (s <= 10)).all())


# --- the reduction-axes figure ----------------------------------------------------


def _norm_outputs(kind: str, x: torch.Tensor, mask: torch.Tensor):
    """course_lib's and torch's version of each norm of the figure, no affine
    step."""
    c = x.shape[-1]
    if kind == "batchnorm":
        ours = CF.batch_norm(x, None, None, training=True)
        rows = F.batch_norm(x.reshape(-1, c), None, None, training=True)
        return ours, rows.reshape(x.shape)
    if kind == "masked_batchnorm":
        ours = CF.batch_norm(x, None, None, training=True, mask=mask)
        # torch has no mask: BatchNorm of the real rows alone, scattered back
        theirs = torch.zeros_like(x).masked_scatter(
            mask[..., None],
            F.batch_norm(x[mask], None, None, training=True),
        )
        return ours, theirs
    if kind == "layernorm":
        return CF.layer_norm(x, c), F.layer_norm(x, (c,))
    return CF.rms_norm(x, c), F.rms_norm(x, (c,))


def _dependence(out: torch.Tensor, x: torch.Tensor, b: int, t: int, c: int):
    """The elements of x that out[b, t, c] depends on (a non-zero gradient)."""
    (grad,) = torch.autograd.grad(out[b, t, c], x, retain_graph=True)
    return grad != 0


@pytest.mark.parametrize("kind", ch03.NORM_KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shared_statistic_is_what_each_norm_output_depends_on(kind, seed):
    g = torch.Generator().manual_seed(seed)
    n_b, n_t, n_c = 3, 5, 4
    lengths = torch.randint(1, n_t + 1, (n_b,), generator=g).tolist()
    lengths[0], lengths[-1] = n_t, 2  # one full sentence, one padded
    mask = CF.padding_mask(lengths, n_t)  # (3, 5)
    x = torch.randn(n_b, n_t, n_c, generator=g, dtype=F64)
    x = x.masked_fill(~mask[..., None], 0.0).requires_grad_(True)  # PAD rows zero
    outputs = _norm_outputs(kind, x, mask)
    for b, t in mask.nonzero().tolist():  # one real element at a time
        for c in range(n_c):
            expected = ch03.shared_statistic(
                kind, mask, n_c, token=(b, t), channel=c
            )
            for out in outputs:
                assert torch.equal(_dependence(out, x, b, t, c), expected)


def test_shared_statistic_sizes_on_the_notes_batch():
    mask = CF.padding_mask(PADDED_LENGTHS, 4)
    sizes = {
        k: int(ch03.shared_statistic(k, mask, 3).sum()) for k in ch03.NORM_KINDS
    }
    # BatchNorm: 8 positions (2 of them PAD); masked: the 6 real ones; LN/RMS: C
    assert sizes == {
        "batchnorm": 8,
        "masked_batchnorm": 6,
        "layernorm": 3,
        "rmsnorm": 3,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rms_norm_uses_the_mean_of_squares_and_no_mean(seed):
    g = torch.Generator().manual_seed(seed)
    x = 3.0 + torch.randn(4, 5, 6, generator=g, dtype=F64)  # far from centred
    eps = 1e-6
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    torch.testing.assert_close(CF.rms_norm(x, 6, eps=eps), expected)
    # LayerNorm subtracts the mean first; RMSNorm does not, so they differ here
    assert not torch.allclose(
        CF.rms_norm(x, 6, eps=eps), CF.layer_norm(x, 6, eps=eps)
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_nan_row_survives_a_multiplied_mask_and_spreads_through_batch_norm(seed):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(3, 4, 8, generator=g, dtype=F64)
    mask = CF.padding_mask([4, 2, 1], 4)
    h[2, 1:] = float("nan")  # NaN at PAD positions of the last sentence only
    token_loss = h.pow(2).mean(-1)  # (3, 4)
    assert bool((token_loss * mask).sum().isnan())
    assert not bool(token_loss[mask].sum().isnan())
    out = CF.batch_norm(h, None, None, training=True)  # every row counted
    assert bool(out.isnan().all())
    masked = CF.batch_norm(h, None, None, training=True, mask=mask)
    assert not bool(masked[mask].isnan().any())


def _drawn_cells(ax):
    """(face, b, t, c) -> (filled, hatched) for every cell the panel draws."""
    cells, hatched = {}, set()
    for patch in ax.patches:
        if patch.get_gid():
            face, idx = patch.get_gid().split(":")
            key = (face, *map(int, idx.split(",")))
            assert key not in cells, f"{key} drawn twice"
            cells[key] = patch
    for patch in ax.patches:  # the PAD overlays lie exactly on their cell
        if patch.get_hatch():
            for key, cell in cells.items():
                if cell.get_xy().shape == patch.get_xy().shape and bool(
                    (cell.get_xy() == patch.get_xy()).all()
                ):
                    hatched.add(key)
    white = matplotlib.colors.to_rgba("white")
    return {
        key: (tuple(cell.get_facecolor()) != white, key in hatched)
        for key, cell in cells.items()
    }


@pytest.mark.parametrize(
    ("lengths", "n_t", "n_c", "token", "channel"),
    [(PADDED_LENGTHS, 4, 3, (0, 0), 0), ((5, 2, 3), 6, 4, (0, 1), 0)],
)
def test_reduction_axes_figure_fills_what_one_statistic_depends_on(
    lengths, n_t, n_c, token, channel
):
    mask = CF.padding_mask(list(lengths), n_t)
    notes = lengths == PADDED_LENGTHS
    fig, axes = ch03.reduction_axes_figure(
        None if notes else mask, n_c, token=token, channel=channel
    )
    try:
        assert axes.shape == (2, 2)
        x = torch.randn(len(lengths), n_t, n_c, dtype=F64)
        x = x.masked_fill(~mask[..., None], 0.0).requires_grad_(True)
        b0, t0 = token
        for ax, kind in zip(axes.flat, ch03.NORM_KINDS, strict=True):
            # what one statistic depends on, read off course_lib's norm by autograd
            depends = _dependence(
                _norm_outputs(kind, x, mask)[0], x, b0, t0, channel
            )
            drawn = _drawn_cells(ax)
            visible = (
                {
                    ("front", b, t, 0)
                    for b in range(len(lengths))
                    for t in range(n_t)
                }
                | {("top", 0, t, c) for t in range(n_t) for c in range(n_c)}
                | {
                    ("side", b, n_t - 1, c)
                    for b in range(len(lengths))
                    for c in range(n_c)
                }
            )
            assert set(drawn) == visible
            for (face, b, t, c), (filled, hatched) in drawn.items():
                assert filled == bool(depends[b, t, c]), (kind, face, b, t, c)
                assert hatched == (not bool(mask[b, t])), (kind, face, b, t, c)
            # every element it depends on that lies on a visible face is filled
            on_faces = {(b, t, c) for _, b, t, c in visible}
            assert {
                k for k in map(tuple, depends.nonzero().tolist()) if k in on_faces
            } == {(b, t, c) for (_, b, t, c), (f, _) in drawn.items() if f}
        assert "mean of squares" in axes.flat[3].get_title()
    finally:
        plt.close(fig)


BAD = [
    (
        "feature_moments list",
        lambda: ch03.feature_moments([[1.0, 2.0]]),
        TypeError,
        "x",
    ),
    (
        "feature_moments 1-d",
        lambda: ch03.feature_moments(torch.ones(3)),
        ValueError,
        "x",
    ),
    (
        "feature_moments mask shape",
        lambda: ch03.feature_moments(
            torch.ones(2, 4, 3), torch.ones(2, 3, dtype=torch.bool)
        ),
        ValueError,
        "mask",
    ),
    (
        "feature_moments empty mask",
        lambda: ch03.feature_moments(
            torch.ones(2, 3), torch.zeros(2, dtype=torch.bool)
        ),
        ValueError,
        "mask",
    ),
    ("padding_law p = 1", lambda: ch03.padding_law(1.0, 1.0, 1.0), ValueError, "p"),
    (
        "padding_law p negative",
        lambda: ch03.padding_law(1.0, 1.0, -0.1),
        ValueError,
        "p",
    ),
    (
        "padding_law p string",
        lambda: ch03.padding_law(1.0, 1.0, "0.5"),
        TypeError,
        "p",
    ),
    (
        "padding_law negative var",
        lambda: ch03.padding_law(1.0, -1.0, 0.5),
        ValueError,
        "var",
    ),
    (
        "padding_law shapes",
        lambda: ch03.padding_law(
            torch.ones(3, dtype=F64), torch.ones(2, dtype=F64), 0.5
        ),
        ValueError,
        "same shape",
    ),
    (
        "pad_sequences tensor",
        lambda: ch03.pad_sequences(torch.ones(2, 3, 4)),
        TypeError,
        "sequences",
    ),
    (
        "pad_sequences empty",
        lambda: ch03.pad_sequences([]),
        ValueError,
        "sequences",
    ),
    (
        "pad_sequences widths",
        lambda: ch03.pad_sequences([torch.ones(2, 3), torch.ones(2, 4)]),
        ValueError,
        "sequences[1]",
    ),
    (
        "pad_sequences max_len too short",
        lambda: ch03.pad_sequences([torch.ones(5, 3)], 4),
        ValueError,
        "max_len",
    ),
    (
        "lengths_with_total impossible total",
        lambda: ch03.lengths_with_total(4, 10, 50, torch.Generator()),
        ValueError,
        "total",
    ),
    (
        "lengths_with_total no generator",
        lambda: ch03.lengths_with_total(4, 10, 20, 0),
        TypeError,
        "generator",
    ),
    (
        "sinusoidal_positions odd",
        lambda: ch03.sinusoidal_positions(4, 5),
        ValueError,
        "d_model",
    ),
    (
        "sinusoidal_positions float",
        lambda: ch03.sinusoidal_positions(4.0, 4),
        TypeError,
        "max_len",
    ),
    (
        "other_sentence too long",
        lambda: ch03.other_sentence(65),
        ValueError,
        "length",
    ),
    (
        "token_outputs bad token",
        lambda: ch03.token_outputs(token=4),
        ValueError,
        "token",
    ),
    (
        "token_outputs short max_len",
        lambda: ch03.token_outputs(6, 5),
        ValueError,
        "max_len",
    ),
    (
        "shared_statistic unknown kind",
        lambda: ch03.shared_statistic(
            "groupnorm", torch.ones(2, 4, dtype=torch.bool), 3
        ),
        ValueError,
        "kind",
    ),
    (
        "shared_statistic float mask",
        lambda: ch03.shared_statistic("layernorm", torch.ones(2, 4), 3),
        TypeError,
        "mask",
    ),
    (
        "shared_statistic 1-d mask",
        lambda: ch03.shared_statistic(
            "layernorm", torch.ones(4, dtype=torch.bool), 3
        ),
        ValueError,
        "mask",
    ),
    (
        "shared_statistic token out of range",
        lambda: ch03.shared_statistic(
            "layernorm", torch.ones(2, 4, dtype=torch.bool), 3, token=(2, 0)
        ),
        ValueError,
        "token",
    ),
    (
        "shared_statistic token not a pair",
        lambda: ch03.shared_statistic(
            "layernorm", torch.ones(2, 4, dtype=torch.bool), 3, token=0
        ),
        TypeError,
        "token",
    ),
    (
        "shared_statistic channel out of range",
        lambda: ch03.shared_statistic(
            "batchnorm", torch.ones(2, 4, dtype=torch.bool), 3, channel=3
        ),
        ValueError,
        "channel",
    ),
    (
        "reduction_axes_figure too many channels",
        lambda: ch03.reduction_axes_figure(channels=50),
        ValueError,
        "channels",
    ),
    (
        "reduction_axes_figure huge mask",
        lambda: ch03.reduction_axes_figure(torch.ones(2, 40, dtype=torch.bool)),
        ValueError,
        "mask",
    ),
]


@pytest.mark.parametrize(
    ("fn", "exc", "words"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_input_names_the_argument(fn, exc, words):
    with pytest.raises(exc) as info:
        fn()
    assert words in str(info.value)
