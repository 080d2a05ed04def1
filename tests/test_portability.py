"""make portability: the settings, how they reach the kernels, the report.

The stored notebook outputs must be what any x86-64 processor prints;
``make portability`` runs strict nbval under each setting of
``portability/settings.ini``. These tests check the machinery: every setting names
the variables that choose each library's kernels, a setting really changes what
torch runs, nothing in the project overrides the settings, and the script counts
cells and skips a setting the processor cannot run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNEL_VARIABLES = {
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "ONEDNN_MAX_CPU_ISA",
    "NPY_DISABLE_CPU_FEATURES",
}


@pytest.fixture(scope="module")
def portability():
    spec = importlib.util.spec_from_file_location(
        "portability", ROOT / "scripts" / "portability.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["portability"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("portability", None)


def test_three_settings_each_choose_every_librarys_kernels(portability):
    settings = {s.name: s for s in portability.read_settings()}
    assert list(settings) == ["scalar", "avx2", "avx512"]
    for setting in settings.values():
        assert set(setting.env) == KERNEL_VARIABLES, setting.name
    assert settings["scalar"].env["ATEN_CPU_CAPABILITY"] == "default"
    assert settings["avx2"].requires == ("avx2", "fma")
    assert "avx512f" in settings["avx512"].requires


def test_a_setting_reaches_torch_and_an_empty_value_unsets(
    portability, monkeypatch
):
    monkeypatch.setenv("NPY_DISABLE_CPU_FEATURES", "X86_V4")
    scalar = next(s for s in portability.read_settings() if s.name == "scalar")
    env = portability.environment(scalar)
    assert portability.torch_capability(env) == "DEFAULT"
    avx512 = next(s for s in portability.read_settings() if s.name == "avx512")
    assert "NPY_DISABLE_CPU_FEATURES" not in portability.environment(avx512)


def test_nothing_in_the_project_sets_the_kernel_variables():
    """A setting must reach the kernels as it is: no file that starts them overrides
    it."""
    files = [ROOT / "Makefile", ROOT / ".ci" / "run", ROOT / "binder" / "start"]
    # the environment the Makefile includes
    files += [ROOT / "scripts" / "kernel.env"]
    files += sorted((ROOT / "scripts").rglob("*.py")) + sorted(
        (ROOT / "course_lib").rglob("*.py")
    )
    files += sorted((ROOT / "tests").glob("conftest.py")) + sorted(
        ROOT.glob("conftest.py")
    )
    for path in files:
        if path.name == "portability.py":
            continue  # the script that applies the settings
        text = path.read_text(encoding="utf-8")
        for name in KERNEL_VARIABLES:
            assert name not in text, f"{path.relative_to(ROOT)} mentions {name}"


def test_make_test_runs_portability():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    test_line = next(
        line for line in makefile.splitlines() if line.startswith("test:")
    )
    assert "portability" in test_line.split()


def test_cells_are_counted_from_the_junit_report(portability, tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(
        '<testsuites><testsuite tests="10" skipped="1" failures="2" errors="1"/>'
        "</testsuites>"
    )
    assert portability.count_cells(report) == (9, 3)


def test_a_setting_the_processor_lacks_is_skipped_with_a_line(
    portability, monkeypatch, capsys
):
    monkeypatch.setattr(portability, "cpu_flags", lambda: {"sse2"})
    assert portability.main(["--only", "avx512", "--", "--co", "-q"]) == 0
    out = capsys.readouterr().out
    assert "avx512   skipped: this processor lacks avx512f" in out


_RUNS = r"""
from course_lib.notebook import setup
setup()
from course_lib.experiments import ch01_internal_covariate_shift as ch01
from course_lib.experiments import ch07_prenorm_vs_postnorm as ch07
config = ch01.RunConfig(steps=40, landscape_at=(), ics_at=())
print(repr(ch01.train_runs("layer", [2], config)[0].final_loss()))
task = ch07.TaskConfig()
_, model = ch07.train_lm(
    task, task.model(True), 2, lr=0.06, warmup_steps=0, steps=60
)
print(repr(ch07.heldout_loss(model, task)))
"""


def test_training_runs_agree_across_settings_far_below_the_printed_digits(
    portability,
):
    """float64 runs with float64 random draws: the same numbers under scalar and
    AVX2."""
    import subprocess

    results = []
    for setting in portability.read_settings()[:2]:  # scalar, avx2
        if any(flag not in portability.cpu_flags() for flag in setting.requires):
            pytest.skip(f"this processor cannot run the {setting.name} setting")
        out = subprocess.run(
            [sys.executable, "-c", _RUNS],
            env=portability.environment(setting),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        results.append([float(v) for v in out])
    for a, b in zip(*results, strict=True):
        assert abs(a - b) <= 1e-8 * abs(a)  # printed with 3-4 digits
