"""course_lib.profiling: the pass counter and the median timer."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from course_lib import profiling
from course_lib.profiling import count_passes, fmt_passes, median_seconds


def test_docstring_examples_run():
    result = doctest.testmod(profiling, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2
    assert result.failed == 0


def test_passes_follow_the_code():
    x = torch.randn(64, 32)
    assert count_passes(lambda: F.layer_norm(x, (32,)), 64, 32) == 1
    assert count_passes(lambda: x * 2.0, 64, 32) == 1
    assert count_passes(lambda: (x * 2.0) * 3.0 + 1.0, 64, 32) == 3
    # one number per row or per feature is free; a view moves nothing
    assert count_passes(lambda: x.view(32, 64), 64, 32) == 0
    assert count_passes(lambda: x[:16] * 2.0, 64, 32) == 0.25


def test_median_seconds_calls_warmup_plus_repeat_times():
    calls = []
    t = median_seconds(lambda: calls.append(1), repeat=3, warmup=2)
    assert len(calls) == 5
    assert 0 <= t < 1


def test_fmt_passes():
    assert fmt_passes(2.0) == "2"
    assert fmt_passes(2.5) == "2.5"


def test_importing_it_does_not_import_torch():
    """The bench sets its thread count before torch is first imported."""
    code = "import sys, course_lib.profiling; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="fn"):
        count_passes(3, 4, 4)
    with pytest.raises(ValueError, match="rows"):
        count_passes(lambda: None, 0, 4)
    with pytest.raises(TypeError, match="features"):
        count_passes(lambda: None, 4, 4.0)
    with pytest.raises(TypeError, match="fn"):
        median_seconds(None)
    with pytest.raises(ValueError, match="repeat"):
        median_seconds(lambda: None, repeat=0)
    with pytest.raises(ValueError, match="warmup"):
        median_seconds(lambda: None, warmup=-1)
