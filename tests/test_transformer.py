"""course_lib.transformer: torch's constructor arguments (device, dtype),
reset_parameters, the same random draws as always, a BlockConfig trusted once
validated, one check per call, norms from the one vocabulary, and runnable
docstrings."""

from __future__ import annotations

import doctest
import inspect

import pytest
import torch
from contracts import assert_reset_redraws_construction, count_calls
from torch import nn

from course_lib import norms, transformer
from course_lib.norms import NORMS, make_norm
from course_lib.transformer import (
    BlockConfig,
    MultiHeadAttention,
    TransformerBlock,
    TransformerStack,
)

SMALL = BlockConfig(d_model=16, n_heads=4, d_ff=32)
CONFIGS = {
    "post-ln": SMALL,
    "pre-ln-rms-gelu": BlockConfig(
        d_model=16,
        n_heads=2,
        d_ff=48,
        norm="rms",
        norm_first=True,
        activation="gelu",
    ),
    "no-bias": BlockConfig(d_model=8, n_heads=2, d_ff=16, bias=False),
}
PRE_DYT = BlockConfig(d_model=16, n_heads=4, d_ff=32, norm="dyt", norm_first=True)

# name: (a builder taking device / dtype keywords, the width of its input)
BUILDERS = {
    "mha": (lambda **kw: MultiHeadAttention(16, 4, **kw), 16),
    "mha-no-bias": (lambda **kw: MultiHeadAttention(16, 4, bias=False, **kw), 16),
    "mha-bias-kv-zero-attn": (
        lambda **kw: MultiHeadAttention(
            16, 4, add_bias_kv=True, add_zero_attn=True, **kw
        ),
        16,
    ),
    "mha-sequence-first": (
        lambda **kw: MultiHeadAttention(16, 4, batch_first=False, **kw),
        16,
    ),
    "block-post-ln": (lambda **kw: TransformerBlock(CONFIGS["post-ln"], **kw), 16),
    "block-pre-ln-rms-gelu": (
        lambda **kw: TransformerBlock(CONFIGS["pre-ln-rms-gelu"], **kw),
        16,
    ),
    "block-no-bias": (lambda **kw: TransformerBlock(CONFIGS["no-bias"], **kw), 8),
    "stack-pre": (
        lambda **kw: TransformerStack(CONFIGS["pre-ln-rms-gelu"], 3, **kw),
        16,
    ),
    "stack-post-final": (
        lambda **kw: TransformerStack(SMALL, 2, final_norm=True, **kw),
        16,
    ),
    "stack-pre-dyt-final": (
        lambda **kw: TransformerStack(PRE_DYT, 2, final_norm=True, **kw),
        16,
    ),
}


# ---------------------------------------------------------------- signatures


def _spec(fn):
    params = list(inspect.signature(fn).parameters.values())[1:]  # no self
    return [(p.name, p.kind, p.default) for p in params]


KW = inspect.Parameter.KEYWORD_ONLY
POS = inspect.Parameter.POSITIONAL_OR_KEYWORD


def test_block_and_stack_end_in_keyword_only_device_and_dtype():
    for cls in (TransformerBlock, TransformerStack):
        assert _spec(cls.__init__)[-2:] == [
            ("device", KW, None),
            ("dtype", KW, None),
        ], cls


def test_attention_takes_every_argument_of_torchs_in_torchs_order():
    """The same arguments, kinds and defaults as ``nn.MultiheadAttention``, but for
    the course's names of the first two and its batch-first default."""
    renamed = {"embed_dim": "d_model", "num_heads": "n_heads"}
    theirs = [
        (renamed.get(name, name), kind, default)
        for name, kind, default in _spec(nn.MultiheadAttention.__init__)
    ]
    ours = _spec(MultiHeadAttention.__init__)
    assert ("batch_first", POS, False) in theirs
    assert ours == [
        ("batch_first", POS, True)
        if name == "batch_first"
        else (name, kind, default)
        for name, kind, default in theirs
    ]


def test_attention_forward_takes_query_key_value_first_as_torch():
    names = [name for name, *_ in _spec(nn.MultiheadAttention.forward)]
    assert [name for name, *_ in _spec(MultiHeadAttention.forward)][:3] == names[:3]
    # our masks mean the opposite of torch's: never positional
    assert {kind for name, kind, _ in _spec(MultiHeadAttention.forward)[3:]} == {KW}


def test_block_and_stack_keep_their_positional_arguments():
    assert [n for n, k, _ in _spec(TransformerBlock.__init__) if k == POS] == [
        "config"
    ]
    assert [n for n, k, _ in _spec(TransformerStack.__init__) if k == POS] == [
        "config",
        "n_layers",
        "final_norm",
    ]


# ---------------------------------------------------------------- device and dtype


@pytest.mark.parametrize("name", BUILDERS)
def test_dtype_float64_gives_float64_parameters(name):
    module = BUILDERS[name][0](dtype=torch.float64)
    params = list(module.parameters())
    assert params and all(p.dtype == torch.float64 for p in params)


@pytest.mark.parametrize("name", BUILDERS)
def test_device_cpu_is_accepted(name):
    module = BUILDERS[name][0](device="cpu")
    assert {p.device for p in module.parameters()} == {torch.device("cpu")}


@pytest.mark.parametrize("name", BUILDERS)
def test_meta_device_works(name):
    build, width = BUILDERS[name]
    module = build(device="meta")
    assert {p.device.type for p in module.parameters()} == {"meta"}
    out = module(torch.empty(2, 5, width, device="meta"))
    assert out.device.type == "meta"


def test_torchs_encoder_layer_on_meta_has_the_same_parameter_shapes():
    ours = TransformerBlock(SMALL, device="meta")
    theirs = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True, device="meta")
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in theirs.parameters()
    )


def test_float64_block_runs_float64_input_and_refuses_float32():
    block = TransformerBlock(SMALL, dtype=torch.float64).eval()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    assert block(x).dtype == torch.float64
    with pytest.raises(TypeError, match="query must have dtype torch.float64"):
        block.self_attn(x.float())


def test_float64_construction_matches_construction_then_conversion_in_shape_and_dtype():  # noqa: E501
    built = TransformerStack(SMALL, 2, dtype=torch.float64).state_dict()
    converted = TransformerStack(SMALL, 2).double().state_dict()
    assert {k: (v.shape, v.dtype) for k, v in built.items()} == {
        k: (v.shape, v.dtype) for k, v in converted.items()
    }


def test_from_torch_keeps_the_layers_dtype():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    block = TransformerBlock.from_torch(layer.double())
    assert {p.dtype for p in block.parameters()} == {torch.float64}


# ------------------------------------------------------------ the same random draws


def _legacy_attention(d_model: int, bias: bool) -> list[torch.Tensor]:
    """What MultiHeadAttention drew before it had reset_parameters, spelled out in
    torch."""
    in_proj = nn.Linear(d_model, 3 * d_model, bias=bias)
    out_proj = nn.Linear(d_model, d_model, bias=bias)
    nn.init.xavier_uniform_(in_proj.weight)
    tensors = [in_proj.weight, out_proj.weight]
    if bias:
        tensors += [torch.zeros(3 * d_model), torch.zeros(d_model)]
    return tensors


def _legacy_block(c: BlockConfig) -> list[torch.Tensor]:
    tensors = _legacy_attention(c.d_model, c.bias)
    linear1 = nn.Linear(c.d_model, c.d_ff, bias=c.bias)
    linear2 = nn.Linear(c.d_ff, c.d_model, bias=c.bias)
    tensors += [linear1.weight, linear2.weight]
    if c.bias:
        tensors += [linear1.bias, linear2.bias]
    return tensors


def _ours_like_legacy(
    attn: MultiHeadAttention, block: TransformerBlock | None = None
):
    tensors = [attn.in_proj.weight, attn.out_proj.weight]
    if attn.in_proj.bias is not None:
        tensors += [attn.in_proj.bias, attn.out_proj.bias]
    if block is not None:
        tensors += [block.linear1.weight, block.linear2.weight]
        if block.linear1.bias is not None:
            tensors += [block.linear1.bias, block.linear2.bias]
    return tensors


def _assert_same(ours, legacy):
    assert len(ours) == len(legacy)
    for a, b in zip(ours, legacy, strict=True):
        assert torch.equal(a.detach(), b.detach())


@pytest.mark.parametrize("bias", [True, False])
def test_attention_draws_the_same_numbers_as_before(bias):
    torch.manual_seed(11)
    legacy = _legacy_attention(24, bias)
    legacy_state = torch.get_rng_state()
    torch.manual_seed(11)
    ours = MultiHeadAttention(24, 3, bias=bias)
    assert torch.equal(torch.get_rng_state(), legacy_state)
    _assert_same(_ours_like_legacy(ours), legacy)


@pytest.mark.parametrize(
    "options",
    [
        {"kdim": 6, "vdim": 10},
        {"kdim": 6, "add_bias_kv": True, "bias": False},
        {"add_bias_kv": True, "add_zero_attn": True, "vdim": 4},
    ],
)
def test_separate_projections_draw_torchs_numbers(options):
    """With kdim or vdim, ours is laid out as torch's and draws what it draws."""
    torch.manual_seed(3)
    theirs = nn.MultiheadAttention(12, 3, **options)
    after_theirs = torch.get_rng_state()
    torch.manual_seed(3)
    ours = MultiHeadAttention(12, 3, **options)
    assert torch.equal(torch.get_rng_state(), after_theirs)
    assert ours.in_proj is None
    mine = dict(ours.named_parameters())
    assert mine.keys() == dict(theirs.named_parameters()).keys()
    for name, param in theirs.named_parameters():
        assert torch.equal(mine[name].detach(), param.detach()), name


@pytest.mark.parametrize(
    "options", [{"kdim": 6, "vdim": 10}, {"add_bias_kv": True}]
)
def test_reset_parameters_of_the_other_layouts(options):
    assert_reset_redraws_construction(
        lambda: MultiHeadAttention(12, 3, **options), seed=4
    )


@pytest.mark.parametrize("name", CONFIGS)
def test_block_draws_the_same_numbers_as_before(name):
    config = CONFIGS[name]
    torch.manual_seed(5)
    legacy = _legacy_block(config)
    legacy_state = torch.get_rng_state()
    torch.manual_seed(5)
    block = TransformerBlock(config)
    assert torch.equal(torch.get_rng_state(), legacy_state)
    _assert_same(_ours_like_legacy(block.self_attn, block), legacy)
    for norm in (block.norm1, block.norm2):
        assert torch.equal(norm.weight.detach(), torch.ones(config.d_model))


def test_stack_draws_its_blocks_in_order():
    torch.manual_seed(2)
    legacy = [t for _ in range(3) for t in _legacy_block(SMALL)]
    torch.manual_seed(2)
    stack = TransformerStack(SMALL, 3)
    ours = [t for b in stack.layers for t in _ours_like_legacy(b.self_attn, b)]
    _assert_same(ours, legacy)


# ---------------------------------------------------------------- reset_parameters


@pytest.mark.parametrize("name", BUILDERS)
def test_reset_parameters_under_the_same_seed_gives_the_constructions_values(name):
    assert_reset_redraws_construction(BUILDERS[name][0], seed=7)


def test_reset_parameters_without_a_seed_restores_the_fixed_initialisations():
    block = TransformerBlock(SMALL)
    with torch.no_grad():
        for p in block.parameters():
            p.fill_(3.0)
    block.reset_parameters()
    assert torch.equal(block.norm1.weight.detach(), torch.ones(16))
    assert torch.equal(block.norm2.bias.detach(), torch.zeros(16))
    assert torch.equal(block.self_attn.in_proj.bias.detach(), torch.zeros(48))
    assert torch.equal(block.self_attn.out_proj.bias.detach(), torch.zeros(16))
    bound = (6 / (16 + 48)) ** 0.5  # xavier-uniform on the packed (48, 16) in_proj
    assert float(block.self_attn.in_proj.weight.detach().abs().max()) <= bound


# ---------------------------------------------------------- the vocabulary of norms


@pytest.mark.parametrize("norm", ["layer", "rms"])
@pytest.mark.parametrize("bias", [True, False])
def test_block_norms_are_make_norms(norm, bias):
    config = BlockConfig(
        d_model=8, n_heads=2, d_ff=16, norm=norm, bias=bias, eps=1e-6
    )
    block = TransformerBlock(config)
    expected = make_norm(norm, 8, eps=1e-6, bias=bias)
    for built in (block.norm1, block.norm2):
        assert type(built) is type(expected)
        assert repr(built) == repr(expected)
        assert built.state_dict().keys() == expected.state_dict().keys()


def test_dyt_blocks_hold_dynamic_tanh_at_their_alpha_init():
    config = BlockConfig(
        d_model=16, n_heads=4, d_ff=32, norm="dyt", norm_first=True, alpha_init=1.3
    )
    stack = TransformerStack(config, 2, final_norm=True)
    dyts = [m for m in stack.modules() if isinstance(m, norms.DynamicTanh)]
    assert len(dyts) == 2 * 2 + 1  # two per block and the final one
    assert not any(isinstance(m, norms.LayerNorm) for m in stack.modules())
    for m in dyts:
        assert m.normalized_shape == (16,)
        assert float(m.alpha.detach()) == float(torch.tensor(1.3))
    x = torch.randn(2, 5, 16)
    assert stack(x).shape == (2, 5, 16)
    for bad, error in ((0.0, ValueError), (-1.0, ValueError), ("1", TypeError)):
        with pytest.raises(error, match="alpha_init"):
            BlockConfig(norm="dyt", alpha_init=bad)


def test_block_config_norm_names_come_from_the_vocabulary():
    for norm in NORMS:
        if norm in ("layer", "rms", "dyt"):
            assert BlockConfig(norm=norm).norm == norm
        else:
            with pytest.raises(ValueError, match="norm must be one of"):
                BlockConfig(norm=norm)


# ---------------------------------------------------------------- validate once


CONSTRUCTOR_CHECKS = (
    "check_int",
    "check_heads",
    "check_probability",
    "check_eps",
    "check_bool",
    "check_choice",
    "check_factory_kwargs",
)


@pytest.fixture
def calls(monkeypatch):
    """Record every call of the named checks in the norms and transformer
    modules."""
    names = (
        *CONSTRUCTOR_CHECKS,
        "check_self_attn_mask",
        "check_mask",
        "check_tokens",
    )
    seen = count_calls(monkeypatch, (norms, transformer), names)
    import course_lib.functional as functional

    def refuse(*args, **kwargs):
        raise AssertionError(
            "a module called a public, checking function of functional"
        )

    for name in ("layer_norm", "rms_norm", "attention_weights", "check_attn_mask"):
        monkeypatch.setattr(functional, name, refuse)
    return seen


@pytest.mark.parametrize("name", CONFIGS)
def test_block_trusts_its_validated_config(name, calls):
    TransformerBlock(CONFIGS[name])
    TransformerStack(CONFIGS[name], 3)
    # the only checks: TransformerStack's own n_layers and the two factory arguments
    # checks
    assert sorted(calls) == [
        "check_factory_kwargs",
        "check_factory_kwargs",
        "check_int",
    ]


def test_attention_checks_each_mask_once_per_call(calls):
    attn = TransformerBlock(SMALL).self_attn
    x = torch.randn(2, 5, 16)
    calls.clear()
    attn(
        x,
        mask=torch.ones(2, 5, dtype=torch.bool),
        attn_mask=torch.ones(5, 5, dtype=torch.bool),
    )
    assert sorted(calls) == ["check_mask", "check_self_attn_mask", "check_tokens"]


def test_block_forward_uses_only_unchecked_kernels(calls):
    for config in CONFIGS.values():
        block = TransformerBlock(config)
        x = torch.randn(2, 5, config.d_model)
        causal = torch.ones(5, 5, dtype=torch.bool).tril()
        assert block(x, attn_mask=causal).shape == x.shape


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: MultiHeadAttention(8, 0), ValueError, "n_heads"),
        (lambda: MultiHeadAttention(8, 3), ValueError, "divisible"),
        (lambda: MultiHeadAttention(8, 2, dropout=-0.1), ValueError, "dropout"),
        (lambda: MultiHeadAttention(8, 2, bias=None), TypeError, "bias"),
        (lambda: MultiHeadAttention(8, 2, dtype=torch.long), TypeError, "dtype"),
        (lambda: TransformerBlock(SMALL, device=3.0), TypeError, "device"),
        (
            lambda: TransformerStack(SMALL, 2, final_norm="yes"),
            TypeError,
            "final_norm",
        ),
        (lambda: TransformerStack({"d_model": 8}, 2), TypeError, "config"),
        (lambda: BlockConfig(norm_first=1), TypeError, "norm_first"),
        (lambda: BlockConfig(bias=0), TypeError, "bias"),
        (lambda: BlockConfig(d_ff=0), ValueError, "d_ff"),
        (lambda: BlockConfig(eps=-1.0), ValueError, "eps"),
    ],
)
def test_constructors_still_check_their_own_arguments(call, error, words):
    with pytest.raises(error, match=words):
        call()


# ---------------------------------------------------------------- docstrings


@pytest.mark.parametrize(
    "name", ["MultiHeadAttention", "TransformerBlock", "TransformerStack"]
)
def test_module_docstring_has_args_shape_and_example(name):
    doc = inspect.getdoc(getattr(transformer, name)) or ""
    for section in ("Args:", "Shape:", "Example:", ">>> "):
        assert section in doc, f"{name}'s docstring has no {section!r}"


def test_config_and_from_torch_have_examples():
    assert ">>> " in (inspect.getdoc(BlockConfig) or "")
    assert ">>> " in (inspect.getdoc(TransformerBlock.from_torch) or "")


def test_docstring_examples_run():
    result = doctest.testmod(
        transformer, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted >= 15
    assert result.failed == 0
