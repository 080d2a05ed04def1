"""course_lib.norms: torch's constructors (device, dtype, reset_parameters), the one
vocabulary of norms and its factory, validation done once, and runnable docstrings
(of
norms and of the functional kernels it wraps)."""

from __future__ import annotations

import copy
import doctest
import inspect
import math

import pytest
import torch
from contracts import (
    AuthorsDynamicTanh,
    assert_reset_redraws_construction,
    count_calls,
)
from torch import nn

from course_lib import functional as CF
from course_lib import norms
from course_lib.norms import (
    NORMS,
    BatchNorm,
    DynamicTanh,
    LayerNorm,
    RMSNorm,
    make_norm,
)

# each class with torch's counterpart and arguments that build both
CLASSES = [
    (LayerNorm, nn.LayerNorm, ((3, 4),), {}),
    (LayerNorm, nn.LayerNorm, (4,), {"bias": False}),
    (RMSNorm, nn.RMSNorm, (4,), {"eps": 1e-6}),
    (BatchNorm, nn.BatchNorm1d, (4,), {}),
    (BatchNorm, nn.BatchNorm1d, (4,), {"bias": False, "momentum": None}),
]
CLASS_IDS = [f"{ours.__name__}-{i}" for i, (ours, *_) in enumerate(CLASSES)]


def _float_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in module.state_dict().items() if v.is_floating_point()}


# --------------------------------------------------------------- torch's signatures


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(LayerNorm, nn.LayerNorm), (RMSNorm, nn.RMSNorm), (BatchNorm, nn.BatchNorm1d)],
)
def test_constructor_takes_torchs_arguments_in_torchs_order(ours, theirs):
    def spec(cls):
        # no self
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        return [(p.name, p.kind, p.default) for p in params]

    assert spec(ours) == spec(theirs)


# ---------------------------------------------------------------- device and dtype


@pytest.mark.parametrize(
    ("ours", "theirs", "args", "kwargs"), CLASSES, ids=CLASS_IDS
)
def test_dtype_float64_gives_float64_parameters_and_buffers(
    ours, theirs, args, kwargs
):
    module = ours(*args, **kwargs, dtype=torch.float64)
    reference = theirs(*args, **kwargs, dtype=torch.float64)
    assert {k: v.dtype for k, v in module.state_dict().items()} == {
        k: v.dtype for k, v in reference.state_dict().items()
    }
    assert all(p.dtype == torch.float64 for p in module.parameters())
    assert any(True for _ in module.parameters())  # the check above saw parameters


@pytest.mark.parametrize(
    ("ours", "theirs", "args", "kwargs"), CLASSES, ids=CLASS_IDS
)
def test_device_cpu_is_accepted(ours, theirs, args, kwargs):
    module = ours(*args, **kwargs, device="cpu")
    assert all(
        t.device == torch.device("cpu") for t in module.state_dict().values()
    )
    module_from_object = ours(*args, **kwargs, device=torch.device("cpu"))
    assert module_from_object.state_dict().keys() == module.state_dict().keys()


@pytest.mark.parametrize(
    ("ours", "theirs", "args", "kwargs"), CLASSES, ids=CLASS_IDS
)
def test_meta_device_works_as_torchs(ours, theirs, args, kwargs):
    module = ours(*args, **kwargs, device="meta")
    reference = theirs(*args, **kwargs, device="meta")
    ours_state = {
        k: (tuple(v.shape), v.dtype, v.device.type)
        for k, v in module.state_dict().items()
    }
    theirs_state = {
        k: (tuple(v.shape), v.dtype, v.device.type)
        for k, v in reference.state_dict().items()
    }
    assert ours_state == theirs_state
    assert {device for _, _, device in ours_state.values()} == {"meta"}
    shape = (2, 3, 4) if ours is not BatchNorm else (5, 4)
    out = module.eval()(torch.empty(shape, device="meta"))
    assert out.device.type == "meta" and tuple(out.shape) == shape


@pytest.mark.parametrize(
    ("ours", "theirs", "args", "kwargs"), CLASSES, ids=CLASS_IDS
)
def test_state_dict_loads_into_torchs_module_and_back(ours, theirs, args, kwargs):
    module, reference = ours(*args, **kwargs), theirs(*args, **kwargs)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-1.0, 1.0)
    reference.load_state_dict(module.state_dict())
    again = ours(*args, **kwargs)
    again.load_state_dict(reference.state_dict())
    for key, value in module.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_float64_module_normalizes_float64_input_and_refuses_float32():
    norm = LayerNorm(4, dtype=torch.float64)
    x = torch.randn(2, 4, dtype=torch.float64)
    torch.testing.assert_close(
        norm(x), nn.functional.layer_norm(x, (4,)), rtol=0, atol=1e-12
    )
    with pytest.raises(TypeError, match="input must have dtype torch.float64"):
        norm(x.float())


# ---------------------------------------------------------------- reset_parameters


@pytest.mark.parametrize(
    ("ours", "theirs", "args", "kwargs"), CLASSES, ids=CLASS_IDS
)
def test_reset_parameters_restores_a_fresh_module(ours, theirs, args, kwargs):
    module = ours(*args, **kwargs, dtype=torch.float64)
    fresh = copy.deepcopy(module.state_dict())
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(7.0)
    if isinstance(module, BatchNorm):
        # moves the running stats
        module.train()(torch.randn(8, 4, dtype=torch.float64))
    assert any(not torch.equal(module.state_dict()[k], v) for k, v in fresh.items())
    module.reset_parameters()
    assert module.state_dict().keys() == fresh.keys()
    for key, value in fresh.items():
        assert torch.equal(module.state_dict()[key], value), key


@pytest.mark.parametrize(
    ("ours", "theirs", "args", "kwargs"), CLASSES, ids=CLASS_IDS
)
def test_reset_parameters_draws_what_construction_draws(ours, theirs, args, kwargs):
    assert_reset_redraws_construction(lambda: ours(*args, **kwargs), seed=3)


def test_batch_norm_reset_running_stats_keeps_the_parameters():
    bn = BatchNorm(3, momentum=None)
    with torch.no_grad():
        bn.weight.fill_(2.0)
    bn.train()(torch.randn(6, 3))
    bn.reset_running_stats()
    assert torch.equal(bn.running_mean, torch.zeros(3))
    assert torch.equal(bn.running_var, torch.ones(3))
    assert int(bn.num_batches_tracked) == 0
    assert torch.equal(bn.weight.detach(), torch.full((3,), 2.0))


def test_batch_norm_momentum_none_is_torchs_cumulative_average():
    ours, theirs = BatchNorm(3, momentum=None), nn.BatchNorm1d(3, momentum=None)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        x = torch.randn(10, 3, generator=g, dtype=torch.float32) * 3 + 1
        torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours.running_mean, theirs.running_mean)
    torch.testing.assert_close(ours.running_var, theirs.running_var)
    assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == 3


def test_batch_norm_bias_false_keeps_only_the_scale():
    bn = BatchNorm(3, bias=False)
    assert bn.bias is None and bn.weight is not None
    assert (
        bn.state_dict().keys() == nn.BatchNorm1d(3, bias=False).state_dict().keys()
    )


# ----------------------------------------------------- the vocabulary and make_norm


def test_the_vocabulary_is_five_names():
    assert NORMS == ("none", "batch", "layer", "rms", "dyt")


FACTORY_CASES = [
    # (norm, keyword arguments, class, attributes the layer must have)
    ("none", {}, nn.Identity, {}),
    (
        "batch",
        {},
        BatchNorm,
        {"num_features": 6, "eps": 1e-5, "momentum": 0.1, "affine": True},
    ),
    (
        "batch",
        {"eps": 1e-3, "elementwise_affine": False},
        BatchNorm,
        {
            "eps": 1e-3,
            "affine": False,
            "weight": None,
            "bias": None,
            "track_running_stats": True,
        },
    ),
    ("batch", {"bias": False}, BatchNorm, {"affine": True, "bias": None}),
    (
        "layer",
        {},
        LayerNorm,
        {"normalized_shape": (6,), "eps": 1e-5, "elementwise_affine": True},
    ),
    ("layer", {"eps": 1e-6, "bias": False}, LayerNorm, {"eps": 1e-6, "bias": None}),
    (
        "layer",
        {"elementwise_affine": False},
        LayerNorm,
        {"elementwise_affine": False, "weight": None, "bias": None},
    ),
    (
        "rms",
        {},
        RMSNorm,
        {"normalized_shape": (6,), "eps": 1e-5, "elementwise_affine": True},
    ),
    (
        "rms",
        {"eps": 1e-8, "elementwise_affine": False},
        RMSNorm,
        {"eps": 1e-8, "weight": None},
    ),
    (
        "dyt",
        {},
        DynamicTanh,
        {"normalized_shape": (6,), "alpha_init": 0.5, "elementwise_affine": True},
    ),
    (
        "dyt",
        {"alpha_init": 2.0, "bias": False, "eps": 1e-3},
        DynamicTanh,
        {"alpha_init": 2.0, "bias": None},
    ),
    (
        "dyt",
        {"elementwise_affine": False},
        DynamicTanh,
        {"elementwise_affine": False, "weight": None, "bias": None},
    ),
]


@pytest.mark.parametrize(("norm", "kwargs", "cls", "attributes"), FACTORY_CASES)
def test_make_norm_builds_the_named_layer_with_its_settings(
    norm, kwargs, cls, attributes
):
    layer = make_norm(norm, 6, **kwargs)
    assert type(layer) is cls
    for name, expected in attributes.items():
        value = getattr(layer, name)
        assert (value is None) if expected is None else (value == expected), name
    if getattr(layer, "weight", None) is not None:
        assert tuple(layer.weight.shape) == (6,)


def test_every_name_in_the_vocabulary_is_buildable_and_normalizes_the_last_dim():
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    for norm in NORMS:
        layer = make_norm(norm, 6, dtype=torch.float64)
        y = layer(x)
        assert y.shape == x.shape
        if norm == "none":
            assert y is x
        elif norm == "layer":
            torch.testing.assert_close(y, CF.layer_norm(x, 6), rtol=0, atol=0)
        elif norm == "rms":
            torch.testing.assert_close(
                y, CF.rms_norm(x, 6, eps=1e-5), rtol=0, atol=0
            )
        elif norm == "dyt":
            torch.testing.assert_close(y, torch.tanh(0.5 * x), rtol=0, atol=0)
        else:
            expected = CF.batch_norm(x, None, None, training=True)
            torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_make_norm_passes_device_and_dtype():
    for norm in ("batch", "layer", "rms", "dyt"):
        layer = make_norm(norm, 6, dtype=torch.float64, device="meta")
        assert {(p.dtype, p.device.type) for p in layer.parameters()} == {
            (torch.float64, "meta")
        }


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: make_norm("batchnorm", 4), ValueError, "norm must be one of"),
        (lambda: make_norm("LayerNorm", 4), ValueError, "norm must be one of"),
        (lambda: make_norm("learnable", 4), ValueError, "norm must be one of"),
        (lambda: make_norm(None, 4), TypeError, "norm must be a str"),
        (lambda: make_norm("layer", 0), ValueError, "num_features"),
        (lambda: make_norm("none", 0), ValueError, "num_features"),
        (lambda: make_norm("none", 4, eps=-1e-5), ValueError, "eps"),
        (
            lambda: make_norm("rms", 4, elementwise_affine=1),
            TypeError,
            "elementwise_affine",
        ),
        (lambda: make_norm("batch", 4, bias="yes"), TypeError, "bias"),
        (lambda: make_norm("layer", 4, dtype=torch.int32), TypeError, "dtype"),
        (lambda: make_norm("dyt", 4, alpha_init=0.0), ValueError, "alpha_init"),
        (lambda: make_norm("layer", 4, alpha_init=-1), ValueError, "alpha_init"),
        (lambda: make_norm("dyt", 4, alpha_init="1"), TypeError, "alpha_init"),
    ],
)
def test_make_norm_rejects_bad_arguments_by_name(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_make_norm_takes_its_options_by_keyword_only():
    with pytest.raises(TypeError):
        make_norm("layer", 4, 1e-5)  # eps is keyword-only


# ---------------------------------------------------------------- validate once


@pytest.fixture
def count_checks(monkeypatch):
    """Count the calls to the argument checks of constructors, wherever they are
    used."""
    import course_lib.functional as functional_module

    checks = (
        "check_eps",
        "check_probability",
        "check_param",
        "as_shape",
        "check_real",
        "check_alpha",
        "check_trailing_param",
    )
    return count_calls(monkeypatch, (norms, functional_module), checks)


@pytest.mark.parametrize(
    ("module", "x"),
    [
        (LayerNorm(6), torch.randn(2, 3, 6)),
        (RMSNorm(6), torch.randn(2, 3, 6)),
        (RMSNorm(6, eps=1e-6), torch.randn(2, 3, 6)),
        (BatchNorm(6), torch.randn(2, 3, 6)),
        (BatchNorm(6).eval(), torch.randn(2, 3, 6)),
        (DynamicTanh(6), torch.randn(2, 3, 6)),
        (DynamicTanh((3, 6), elementwise_affine=False), torch.randn(2, 3, 6)),
    ],
    ids=["layer", "rms", "rms-eps", "batch-train", "batch-eval", "dyt", "dyt-bare"],
)
def test_forward_does_not_recheck_the_constructors_arguments(
    module, x, count_checks
):
    y = module(x)
    assert y.shape == x.shape
    assert count_checks == []


def test_the_public_function_still_checks_its_arguments(count_checks):
    CF.layer_norm(torch.randn(2, 6), 6)
    assert "check_eps" in count_checks and "as_shape" in count_checks
    CF.dynamic_tanh(torch.randn(2, 6), 0.5, torch.ones(6), torch.zeros(6))
    assert count_checks.count("check_alpha") == 1
    assert count_checks.count("check_trailing_param") == 2


def test_make_norm_checks_each_argument_once(count_checks):
    make_norm("layer", 6, eps=1e-6)
    assert count_checks.count("check_eps") == 1
    count_checks.clear()
    make_norm("dyt", 6, alpha_init=0.8)
    assert count_checks.count("check_real") == 1  # alpha_init, in make_norm only


def test_forward_still_checks_its_input():
    with pytest.raises(
        ValueError, match="input must end in the dimensions normalized_shape"
    ):
        LayerNorm(6)(torch.randn(2, 5))
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        RMSNorm(6)([[1.0] * 6])
    with pytest.raises(ValueError, match="mask must have shape"):
        BatchNorm(6)(torch.randn(2, 3, 6), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(
        ValueError, match="input must end in the dimensions normalized_shape"
    ):
        DynamicTanh(6)(torch.randn(2, 5))
    with pytest.raises(TypeError, match="input must have dtype torch.float32"):
        DynamicTanh(6)(torch.randn(2, 6, dtype=torch.float64))


# ------------------------------------------------- DynamicTanh and the authors' DyT


def test_dynamic_tanh_constructor_signature():
    params = list(inspect.signature(DynamicTanh.__init__).parameters.values())[1:]
    assert [(p.name, p.default) for p in params] == [
        ("normalized_shape", inspect.Parameter.empty),
        ("alpha_init", 0.5),
        ("elementwise_affine", True),
        ("bias", True),
        ("device", None),
        ("dtype", None),
    ]


@pytest.mark.parametrize("shape", [4, (3, 4)])
@pytest.mark.parametrize("alpha_init", [0.5, 0.3, 2.0])
def test_dynamic_tanh_parameters_are_the_authors(shape, alpha_init):
    """Names, order, shapes, dtypes and starting values of the authors' module,
    bit for bit (alpha 0.3 is rounded to float32 the same way)."""
    ours = DynamicTanh(shape, alpha_init=alpha_init)
    theirs = AuthorsDynamicTanh(shape, True, alpha_init_value=alpha_init)
    ours_params = [(n, tuple(p.shape), p.dtype) for n, p in ours.named_parameters()]
    assert ours_params == [
        (n, tuple(p.shape), p.dtype) for n, p in theirs.named_parameters()
    ]
    assert [n for n, _, _ in ours_params] == ["alpha", "weight", "bias"]
    assert tuple(ours.alpha.shape) == (1,)
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert float(ours.alpha.detach()) == float(
        torch.tensor(alpha_init, dtype=torch.float32)
    )
    assert all(p.requires_grad for p in ours.parameters())


def test_dynamic_tanh_state_dict_loads_into_the_authors_module_and_back():
    ours, theirs = DynamicTanh((3, 4)), AuthorsDynamicTanh((3, 4), True)
    with torch.no_grad():
        for p in ours.parameters():
            p.uniform_(-1.0, 1.0)
    theirs.load_state_dict(ours.state_dict())
    again = DynamicTanh((3, 4))
    again.load_state_dict(theirs.state_dict())
    for key, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    assert list(ours.state_dict()) == ["alpha", "weight", "bias"]


@pytest.mark.parametrize(
    ("kwargs", "keys"),
    [
        ({"elementwise_affine": False}, ["alpha"]),
        ({"bias": False}, ["alpha", "weight"]),
        ({"elementwise_affine": False, "bias": False}, ["alpha"]),
    ],
)
def test_dynamic_tanh_without_affine_or_bias_keeps_fewer_parameters(kwargs, keys):
    dyt = DynamicTanh(5, **kwargs)
    assert list(dyt.state_dict()) == keys
    for name in ("weight", "bias"):
        assert (getattr(dyt, name) is None) == (name not in keys)
    x = torch.randn(2, 5)
    expected = torch.tanh(0.5 * x)
    if "weight" in keys:
        expected = dyt.weight * expected
    torch.testing.assert_close(dyt(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dynamic_tanh_dtype_and_device(dtype):
    dyt = DynamicTanh(4, dtype=dtype, device="cpu")
    assert {(p.dtype, p.device.type) for p in dyt.parameters()} == {(dtype, "cpu")}
    meta = DynamicTanh(4, dtype=dtype, device="meta")
    assert {(p.dtype, p.device.type) for p in meta.parameters()} == {
        (dtype, "meta")
    }
    out = meta(torch.empty(2, 3, 4, dtype=dtype, device="meta"))
    assert out.device.type == "meta" and tuple(out.shape) == (2, 3, 4)
    assert float(DynamicTanh(4, 0.7, dtype=dtype).alpha.detach()) == float(
        torch.tensor(0.7, dtype=dtype)
    )


def test_dynamic_tanh_reset_parameters():
    dyt = DynamicTanh((2, 3), alpha_init=1.5, dtype=torch.float64)
    fresh = copy.deepcopy(dyt.state_dict())
    with torch.no_grad():
        for p in dyt.parameters():
            p.fill_(7.0)
    dyt.reset_parameters()
    for key, value in fresh.items():
        assert torch.equal(dyt.state_dict()[key], value), key
    assert torch.equal(dyt.alpha.detach(), torch.tensor([1.5], dtype=torch.float64))
    assert_reset_redraws_construction(lambda: DynamicTanh(4, 0.25), seed=3)


def test_dynamic_tanh_repr():
    assert repr(DynamicTanh(8)) == (
        "DynamicTanh((8,), alpha_init=0.5, elementwise_affine=True, bias=True)"
    )
    assert repr(DynamicTanh((2, 4), 1.0, bias=False)) == (
        "DynamicTanh((2, 4), alpha_init=1.0, elementwise_affine=True, bias=False)"
    )


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: DynamicTanh(4, alpha_init=0.0), ValueError, "alpha_init"),
        (lambda: DynamicTanh(4, alpha_init=-0.5), ValueError, "alpha_init"),
        (lambda: DynamicTanh(4, alpha_init=math.inf), ValueError, "alpha_init"),
        (lambda: DynamicTanh(4, alpha_init="0.5"), TypeError, "alpha_init"),
        (lambda: DynamicTanh(4, alpha_init=True), TypeError, "alpha_init"),
        (lambda: DynamicTanh(0), ValueError, "normalized_shape"),
        (lambda: DynamicTanh(4.0), TypeError, "normalized_shape"),
        (lambda: DynamicTanh(4, elementwise_affine=1), TypeError, "elementwise"),
        (lambda: DynamicTanh(4, bias="no"), TypeError, "bias"),
        (lambda: DynamicTanh(4, dtype=torch.int64), TypeError, "dtype"),
    ],
)
def test_dynamic_tanh_rejects_bad_arguments_by_name(call, error, words):
    with pytest.raises(error, match=words):
        call()


# ---------------------------------------------------------------- docstrings


# functional is documented here too: the norms are thin wrappers over its kernels
# data, documented by the #: comments above them
CONSTANTS = ("NORMS", "NORM_LABELS")
PUBLIC = [(norms, n) for n in norms.__all__ if n not in CONSTANTS] + [
    (CF, n) for n in CF.__all__
]


@pytest.mark.parametrize(("module", "name"), PUBLIC, ids=[n for _, n in PUBLIC])
def test_public_docstring_has_args_shape_and_example(module, name):
    doc = inspect.getdoc(getattr(module, name)) or ""
    for section in ("Args:", "Shape:", "Example:", ">>> "):
        assert section in doc, f"{name}'s docstring has no {section!r}"


@pytest.mark.parametrize("module", [norms, CF], ids=["norms", "functional"])
def test_docstring_examples_run(module):
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted >= 10
    assert result.failed == 0


def test_every_norm_name_has_a_label_and_chapters_use_the_names():
    from course_lib.experiments import ch01_internal_covariate_shift as ch01
    from course_lib.experiments import ch04_layernorm_derivation as ch04

    assert set(norms.NORM_LABELS) == set(NORMS)
    assert set(ch01.NORMS) <= set(NORMS) and set(ch04.INVARIANCE_NORMS) <= set(
        NORMS
    )
