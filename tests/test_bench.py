"""``make bench`` and the fast LayerNorm reference it times.

The timings themselves are not tested (they belong to the machine, and ``make bench``
reports them); what is tested is what the table's other columns and docs/DEVELOPMENT.md claim:
the pass counts, that the notes' module it times computes LayerNorm, and that the
faster ``course_lib.autograd`` keeps its contract (no input modified, the forward still
differentiable, every affine and shape case still equal to torch).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from course_lib import autograd
from course_lib.autograd import LayerNormFunction, layer_norm_backward, layer_norm_forward

ROOT = Path(__file__).resolve().parent.parent
f64 = torch.float64


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench", None)


@pytest.fixture
def as_in_the_bench():
    """The bench times without deterministic mode, in which torch fills every
    ``empty_like`` with NaN (one more pass per fresh tensor); count passes as it runs."""
    torch.use_deterministic_algorithms(False)
    yield
    torch.use_deterministic_algorithms(True)


@pytest.mark.usefixtures("as_in_the_bench")
@pytest.mark.parametrize(
    ("name", "fwd", "fwd_bwd"),
    [("course", 5, 15), ("native", 1, 2), ("notes", 6, 24)],
)
def test_pass_counts(bench, name, fwd, fwd_bwd):
    """The pass counts docs/DEVELOPMENT.md quotes."""
    forward, with_backward = bench.layernorm_calls((4, 8, 16))  # N = 32 rows, D = 16
    assert bench.count_passes(forward[name], 32, 16) == fwd
    assert bench.count_passes(with_backward[name], 32, 16) == fwd_bwd


@pytest.mark.usefixtures("as_in_the_bench")
@pytest.mark.parametrize("block_numel", [64, 100, 512])
def test_blocks_of_rows_count_the_same_passes(bench, monkeypatch, block_numel):
    """Through the rows in 8, 6 or 1 blocks, course_lib still makes 5 and 15 passes."""
    monkeypatch.setattr(autograd, "ROW_BLOCK_NUMEL", block_numel)
    forward, with_backward = bench.layernorm_calls((4, 8, 16))
    assert bench.count_passes(forward["course"], 32, 16) == 5
    assert bench.count_passes(with_backward["course"], 32, 16) == 15


def test_pass_count_ignores_views_and_small_tensors(bench):
    x = torch.randn(6, 5)
    assert bench.count_passes(lambda: x.view(30).reshape(5, 6).t(), 6, 5) == 0
    assert bench.count_passes(lambda: x.mean(-1, keepdim=True) + 1.0, 6, 5) == 1
    assert bench.count_passes(lambda: (x * 2).sum(), 6, 5) == 2
    assert bench.count_passes(lambda: x[:3] * 2, 6, 5) == 0.5  # half the rows
    assert bench.count_passes(lambda: [t * 2 for t in x.chunk(3)], 6, 5) == 1


@pytest.mark.parametrize("var_as_mean_of_squares", [False, True])
def test_the_notes_module_computes_layer_norm(bench, var_as_mean_of_squares):
    """The bench compares like with like: the notes' module is LayerNorm (gamma=1, beta=0)."""
    g = torch.Generator().manual_seed(0)
    module = bench.notes_layer_norm_module(16, var_as_mean_of_squares=var_as_mean_of_squares)
    x = (3 * torch.randn(4, 8, 16, generator=g) + 1).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    up = torch.randn(4, 8, 16, generator=g)
    y = module(x)
    y2 = F.layer_norm(x2, (16,), eps=1e-5)
    torch.testing.assert_close(y, y2, atol=1e-5, rtol=1e-5)
    (y * up).sum().backward()
    (y2 * up).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, atol=1e-4, rtol=1e-4)


def test_floor_runs_exactly_the_chapters_imports(bench):
    chapters = bench.chapters()
    imports = bench.chapter_imports(chapters)
    if chapters:
        assert any("course_lib" in line for line in imports)
    source = bench.floor_notebook(imports).cells[0].source
    statements = ast.parse(source).body
    *head, last = statements
    assert all(isinstance(s, ast.Import | ast.ImportFrom) for s in head)
    assert ast.unparse(last) == "setup()"


def test_table_aligns_its_columns(bench, capsys):
    bench.print_table(
        [bench.Row("a", 1.25, 3, "1.00x floor"), bench.Row("longer name", 0.0042, 15, passes="13")]
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and set(lines[1]) <= {"-", " "}
    assert "1.2 s" in lines[2] and "4.2 ms" in lines[3]
    assert lines[2].index("3") == lines[3].index("15") + 1  # runs right-aligned


# --- the fast reference keeps its contract -------------------------------------------------


def _case(shape, normalized_shape, seed=0, dtype=f64):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(shape, generator=g, dtype=dtype) + 0.5
    w = torch.randn(normalized_shape, generator=g, dtype=dtype)
    b = torch.randn(normalized_shape, generator=g, dtype=dtype)
    up = torch.randn(shape, generator=g, dtype=dtype)
    return x, w, b, up


def test_backward_modifies_none_of_its_inputs():
    x, w, _, up = _case((3, 4, 8), (8,))
    x_hat, _, rstd = layer_norm_forward(x, (-1,), 1e-5)
    before = [t.clone() for t in (up, x_hat, rstd, w)]
    grads = layer_norm_backward(up, x_hat, rstd, w, (-1,))
    for t, saved in zip((up, x_hat, rstd, w), before, strict=True):
        assert torch.equal(t, saved)
    assert not any(g.requires_grad for g in grads)


def test_forward_does_not_modify_its_input():
    x, *_ = _case((3, 4, 8), (8,))
    saved = x.clone()
    layer_norm_forward(x, (-1,), 1e-5)
    assert torch.equal(x, saved)


def test_forward_is_differentiable_and_the_same_with_or_without_autograd():
    x, *_ = _case((3, 5), (5,), seed=1)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: layer_norm_forward(t, (-1,), 1e-5), (x,))
    with_grad = layer_norm_forward(x, (-1,), 1e-5)
    without = layer_norm_forward(x.detach(), (-1,), 1e-5)
    for a, b in zip(with_grad, without, strict=True):
        torch.testing.assert_close(a.detach(), b, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("shape", "normalized_shape"),
    [((8,), (8,)), ((3, 4), (3, 4)), ((2, 3, 4), (3, 4)), ((2, 3, 8), (8,))],
)
@pytest.mark.parametrize("affine", ["weight and bias", "weight", "bias", "none"])
def test_every_case_matches_torch(shape, normalized_shape, affine):
    """Including input with no leading dims, where dL/dgamma is not a sum over rows."""
    x, w, b, up = _case(shape, normalized_shape, seed=2)
    w = w if "weight" in affine else None
    b = b if affine in ("weight and bias", "bias") else None
    params = [t.requires_grad_() for t in (x, w, b) if t is not None]
    ours = torch.autograd.grad(
        (LayerNormFunction.apply(x, normalized_shape, w, b, 1e-5) * up).sum(), params
    )
    ref = torch.autograd.grad((F.layer_norm(x, normalized_shape, w, b, 1e-5) * up).sum(), params)
    for a, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, r, atol=1e-10, rtol=1e-10)


def test_float32_at_a_training_shape_matches_torch():
    x, w, b, up = _case((4, 32, 64), (64,), seed=3, dtype=torch.float32)
    params = [t.requires_grad_() for t in (x, w, b)]
    ours = torch.autograd.grad((LayerNormFunction.apply(x, (64,), w, b, 1e-5) * up).sum(), params)
    ref = torch.autograd.grad((F.layer_norm(x, (64,), w, b, 1e-5) * up).sum(), params)
    for a, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, r, atol=2e-5, rtol=1e-4)


# --- blocks of rows ------------------------------------------------------------------------


@pytest.mark.parametrize("block_numel", [1, 24, 40, 10**6])
@pytest.mark.parametrize("affine", ["weight and bias", "weight", "bias", "none"])
def test_blocks_of_rows_change_nothing(monkeypatch, block_numel, affine):
    """One row per block, uneven blocks (40 numbers: 5 rows of 8 in blocks of 5, 5, 2)
    and a single block all give torch's values: the blocks' sums over rows add up."""
    monkeypatch.setattr(autograd, "ROW_BLOCK_NUMEL", block_numel)
    x, w, b, up = _case((3, 4, 8), (8,), seed=4)
    w = w if "weight" in affine else None
    b = b if affine in ("weight and bias", "bias") else None
    params = [t.requires_grad_() for t in (x, w, b) if t is not None]
    ours = torch.autograd.grad((LayerNormFunction.apply(x, (8,), w, b, 1e-5) * up).sum(), params)
    ref = torch.autograd.grad((F.layer_norm(x, (8,), w, b, 1e-5) * up).sum(), params)
    for a, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, r, atol=1e-10, rtol=1e-10)
    if w is not None:  # and layer_norm_backward, on the same blocks, is the same code
        x_hat, _, rstd = layer_norm_forward(x.detach(), (-1,), 1e-5)
        lib = layer_norm_backward(up, x_hat, rstd, w.detach(), (-1,))
        for a, r in zip(ours, lib[: len(ours)], strict=True):
            assert torch.equal(a, r)


def test_row_blocks_cut_every_tensor_at_the_same_rows(monkeypatch):
    monkeypatch.setattr(autograd, "ROW_BLOCK_NUMEL", 30)  # 3 rows of 10 per block
    rows, stats = torch.zeros(10, 10), torch.zeros(10, 1)
    sizes = [(a.shape[0], s.shape[0]) for a, s in autograd.row_blocks(rows, stats)]
    assert sizes == [(3, 3), (3, 3), (3, 3), (1, 1)]
    one_row = [a.shape for (a,) in autograd.row_blocks(torch.zeros(2, 100))]
    assert one_row == [torch.Size([1, 100])] * 2  # a block holds at least one row


def test_function_saves_the_input_not_a_new_x_hat():
    """As F.layer_norm: the saved (N, D) tensor is the input's own memory."""
    x, w, b, _ = _case((3, 4, 8), (8,))
    x.requires_grad_()
    y = LayerNormFunction.apply(x, (8,), w, b, 1e-5)
    big = [t for t in y.grad_fn.saved_tensors if t is not None and t.numel() == x.numel()]
    assert len(big) == 1 and big[0].data_ptr() == x.data_ptr()
    # ... and two numbers per row, the mean and rstd of chapter 4's "as much in another form"
    stats = y.grad_fn.stats
    assert sum(m.shape[0] for m, _ in stats) == 12
    assert all(m.shape == r.shape == (m.shape[0], 1) for m, r in stats)
