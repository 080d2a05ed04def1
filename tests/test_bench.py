"""``make bench`` and the fast LayerNorm reference it times.

The timings themselves are not tested (they belong to the machine, and
``make bench`` reports them); what is tested is what the table's other columns and
docs/DEVELOPMENT.md claim: the pass counts, that the notes' module it times computes
LayerNorm, and that the faster ``course_lib.autograd`` keeps its contract (no input
modified, the forward still differentiable; its values against torch are in
test_layernorm_implementations.py).
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
from course_lib.autograd import LayerNormFunction, layer_norm_forward

ROOT = Path(__file__).resolve().parent.parent
f64 = torch.float64


@pytest.fixture(scope="module")
def bench():
    """The bench package, scripts/bench/, with the modules tested here
    (bench.passes, ...).

    ``scripts`` is loaded from its ``__init__.py`` as a package, so that the bench's
    relative imports resolve as under ``python -m scripts.bench`` (``make bench``).
    """
    spec = importlib.util.spec_from_file_location(
        "scripts",
        ROOT / "scripts" / "__init__.py",
        submodule_search_locations=[str(ROOT / "scripts")],
    )
    scripts = importlib.util.module_from_spec(spec)
    sys.modules["scripts"] = scripts  # its modules import each other through it
    spec.loader.exec_module(scripts)
    for name in ("layernorm", "notebooks", "passes", "table"):
        importlib.import_module(f"scripts.bench.{name}")
    yield importlib.import_module("scripts.bench")
    for name in [
        n for n in sys.modules if n == "scripts" or n.startswith("scripts.")
    ]:
        del sys.modules[name]


@pytest.fixture
def as_in_the_bench():
    """The bench times without deterministic mode, in which torch fills every
    ``empty_like`` with NaN (one more pass per fresh tensor); count passes as it
    runs."""
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
    # N = 32 rows, D = 16
    forward, with_backward = bench.layernorm.layernorm_calls((4, 8, 16))
    assert bench.passes.count_passes(forward[name], 32, 16) == fwd
    assert bench.passes.count_passes(with_backward[name], 32, 16) == fwd_bwd


@pytest.mark.usefixtures("as_in_the_bench")
@pytest.mark.parametrize("block_numel", [64, 100, 512])
def test_blocks_of_rows_count_the_same_passes(bench, monkeypatch, block_numel):
    """Through the rows in 8, 6 or 1 blocks, course_lib still makes 5 and 15
    passes."""
    monkeypatch.setattr(autograd, "ROW_BLOCK_NUMEL", block_numel)
    forward, with_backward = bench.layernorm.layernorm_calls((4, 8, 16))
    assert bench.passes.count_passes(forward["course"], 32, 16) == 5
    assert bench.passes.count_passes(with_backward["course"], 32, 16) == 15


def test_pass_count_ignores_views_and_small_tensors(bench):
    x = torch.randn(6, 5)
    assert (
        bench.passes.count_passes(lambda: x.view(30).reshape(5, 6).t(), 6, 5) == 0
    )
    assert (
        bench.passes.count_passes(lambda: x.mean(-1, keepdim=True) + 1.0, 6, 5) == 1
    )
    assert bench.passes.count_passes(lambda: (x * 2).sum(), 6, 5) == 2
    # half the rows
    assert bench.passes.count_passes(lambda: x[:3] * 2, 6, 5) == 0.5
    assert bench.passes.count_passes(lambda: [t * 2 for t in x.chunk(3)], 6, 5) == 1


@pytest.mark.parametrize("var_as_mean_of_squares", [False, True])
def test_the_notes_module_computes_layer_norm(bench, var_as_mean_of_squares):
    """The bench compares like with like: the notes' module is LayerNorm (gamma=1,
    beta=0)."""
    g = torch.Generator().manual_seed(0)
    module = bench.layernorm.notes_layer_norm_module(
        16, var_as_mean_of_squares=var_as_mean_of_squares
    )
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
    chapters = bench.notebooks.chapters()
    imports = bench.notebooks.chapter_imports(chapters)
    if chapters:
        assert any("course_lib" in line for line in imports)
    source = bench.notebooks.floor_notebook(imports).cells[0].source
    statements = ast.parse(source).body
    *head, last = statements
    assert all(isinstance(s, ast.Import | ast.ImportFrom) for s in head)
    assert ast.unparse(last) == "setup()"


def test_table_aligns_its_columns(bench, capsys):
    table = bench.table
    table.print_table(
        [
            table.Row("a", 1.25, 3, "1.00x floor"),
            table.Row("longer name", 0.0042, 15, passes="13"),
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and set(lines[1]) <= {"-", " "}
    assert "1.2 s" in lines[2] and "4.2 ms" in lines[3]
    assert lines[2].index("3") == lines[3].index("15") + 1  # runs right-aligned


# --- the fast reference keeps its contract ----------------------------------------


def _case(shape, normalized_shape, seed=0, dtype=f64):
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(shape, generator=g, dtype=dtype) + 0.5
    w = torch.randn(normalized_shape, generator=g, dtype=dtype)
    b = torch.randn(normalized_shape, generator=g, dtype=dtype)
    up = torch.randn(shape, generator=g, dtype=dtype)
    return x, w, b, up


def test_forward_does_not_modify_its_input():
    x, *_ = _case((3, 4, 8), (8,))
    saved = x.clone()
    layer_norm_forward(x, (-1,), 1e-5)
    assert torch.equal(x, saved)


def test_forward_is_differentiable_and_the_same_with_or_without_autograd():
    x, *_ = _case((3, 5), (5,), seed=1)
    x.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: layer_norm_forward(t, (-1,), 1e-5), (x,)
    )
    with_grad = layer_norm_forward(x, (-1,), 1e-5)
    without = layer_norm_forward(x.detach(), (-1,), 1e-5)
    for a, b in zip(with_grad, without, strict=True):
        torch.testing.assert_close(a.detach(), b, atol=0, rtol=0)


# --- blocks of rows ---------------------------------------------------------------


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
    big = [
        t
        for t in y.grad_fn.saved_tensors
        if t is not None and t.numel() == x.numel()
    ]
    assert len(big) == 1 and big[0].data_ptr() == x.data_ptr()
    # ... and two numbers per row, the mean and rstd of chapter 4's "as much in
    # another form"
    stats = y.grad_fn.stats
    assert sum(m.shape[0] for m, _ in stats) == 12
    assert all(m.shape == r.shape == (m.shape[0], 1) for m, r in stats)


def test_kernel_env_is_the_one_place_for_pins_and_timeouts(bench, tmp_path):
    execute = importlib.import_module("scripts.execute_notebooks")
    env = execute.read_kernel_env()
    assert (
        env.environment["OMP_NUM_THREADS"]
        == "1"
        == env.environment["MKL_NUM_THREADS"]
    )
    assert 0 < env.start_timeout_s and 0 < env.cell_timeout_s <= env.test_timeout_s
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "include scripts/kernel.env" in makefile
    assert "NUM_THREADS" not in makefile  # pinned in kernel.env only
    bad = tmp_path / "kernel.env"
    bad.write_text("export OMP_NUM_THREADS=1\nCELL_TIMEOUT_S=0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="CELL_TIMEOUT_S"):
        execute.read_kernel_env(bad)
    bad.write_text("CELL_TIMEOUT_S = 5\n", encoding="utf-8")
    with pytest.raises(ValueError, match="NAME=value"):
        execute.read_kernel_env(bad)
