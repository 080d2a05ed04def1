"""Passes over memory, counted from a ``torch.profiler`` trace of one call, and a
median wall-clock time: the two measures of a normalization's speed that ``make
bench``, chapter 8 and the appendices print.

A "pass" is one kernel that streams ``(N, D)``-sized data (``N`` rows of ``D``
features) through memory: an elementwise operation (``x - mean``, ``scale * x``,
``grad * x_hat``), a reduction over it (``mean``, ``sum``, a norm, a matrix-vector
product), or a copy. Operations on ``(N, 1)`` or ``(D,)`` tensors and views cost
nothing and are not counted. Counting from a profile of one forward and one forward
+ backward makes the count follow the code and include what autograd adds (gradients
of broadcasts summed back to ``(N, 1)`` or ``(D,)``, gradients of a tensor used
twice added together).

An operation on a block of rows counts its share of a pass, so an implementation
that goes through the rows in blocks (``course_lib``'s does) counts the same passes
as one that does not; its passes after the first over each block find the block in
the cache, where an unblocked pass over a 16 MiB tensor goes to main memory every
time. torch's native LayerNorm is one fused kernel each way: it visits every row two
or three times too, but while the row sits in the L1 cache, so from memory it reads
``x`` (and ``dL/dy``) once and writes once; that is what a pass count of 1 means and
why it is the yardstick.

torch is imported inside the functions, not at the top: it reads
``OMP_NUM_THREADS`` once, when it is first imported, and the bench sets the thread
count before that.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable

__all__ = ["NO_DATA_OPS", "count_passes", "fmt_passes", "median_seconds"]

# Innermost profiler events that take an (N, D)-sized tensor but move no data.
NO_DATA_OPS = {
    "aten::alias", "aten::as_strided", "aten::chunk", "aten::contiguous",
    "aten::detach", "aten::empty", "aten::empty_like", "aten::empty_strided",
    "aten::expand", "aten::expand_as", "aten::flatten", "aten::lift_fresh",
    "aten::mT", "aten::narrow", "aten::new_empty", "aten::new_empty_strided",
    "aten::new_full", "aten::new_ones", "aten::new_zeros", "aten::numpy_T",
    "aten::permute", "aten::reshape", "aten::resize_", "aten::resolve_conj",
    "aten::resolve_neg", "aten::result_type", "aten::select", "aten::slice",
    "aten::split", "aten::split_with_sizes", "aten::squeeze", "aten::sum_to_size",
    "aten::t", "aten::transpose", "aten::unbind", "aten::unsqueeze", "aten::view",
    "aten::view_as", "aten::_reshape_alias", "aten::_unsafe_view", "aten::to",
    "aten::numel", "aten::size", "aten::stride",
}  # fmt: skip


def count_passes(fn: Callable[[], object], rows: int, features: int) -> float:
    """Passes over ``(rows, features)``-sized data in one call of ``fn``, from a
    profile.

    Each ATen operation that moves data (not a view, not an allocation) counts the
    size of the largest tensor it takes, as a fraction of ``rows * features``: 1 for
    an operation on the whole ``(N, D)`` tensor, 1/4 for one on a quarter of its
    rows, so that an implementation that goes through the rows in blocks counts the
    same passes as one that does not. A tensor counts when one of its dimensions is
    the feature dimension ``D`` and it holds more than ``D`` numbers: one number per
    row, ``(N, 1)``, or per feature, ``(D,)``, is free. An operation that calls
    others counts what they count, or its own input if that is more, so that
    ``mean`` calling ``sum`` counts once and ``F.layer_norm``'s fused kernel counts
    once however it allocates.

    Args:
        fn (callable): called once, with no arguments, under the profiler.
        rows (int): ``N``, the number of rows of the data a pass streams.
        features (int): ``D``, the size of each row.

    Returns:
        float: the passes, rounded to 2 decimals.

    Example:
        >>> import torch
        >>> from course_lib.profiling import count_passes
        >>> x = torch.randn(64, 32)
        >>> count_passes(lambda: torch.nn.functional.layer_norm(x, (32,)), 64, 32)
        1.0
        >>> count_passes(lambda: (x - x.mean(-1, keepdim=True)) * 2.0, 64, 32)
        3.0
    """
    from torch.profiler import ProfilerActivity, profile

    from ._checks import check_int

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    check_int(rows, "rows")
    check_int(features, "features")

    # The profiler's C++ side prints "profiler_start/stop" lines on stderr; keep the
    # table clean by pointing file descriptor 2 at /dev/null while it runs.
    sys.stderr.flush()
    saved_fd = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            fn()
    finally:
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        os.close(devnull)
    full = rows * features

    def data_moved(event) -> float:
        if not event.name.startswith("aten::") or event.name in NO_DATA_OPS:
            return 0.0
        sizes = [
            math.prod(s)
            for s in event.input_shapes
            if s and all(isinstance(d, int) for d in s) and features in s
        ]
        sizes = [size for size in sizes if size > features]
        return max(sizes, default=0) / full

    # a wrapper counts what it calls, at least its own input
    def passes(event) -> float:
        return max(
            data_moved(event), sum(passes(child) for child in event.cpu_children)
        )

    return round(sum(passes(e) for e in prof.events() if e.cpu_parent is None), 2)


def fmt_passes(p: float) -> str:
    """A pass count as printed: ``"2"`` for a whole number, ``"2.5"`` otherwise."""
    return f"{p:.0f}" if p == round(p) else f"{p:.1f}"


def median_seconds(
    fn: Callable[[], object], repeat: int = 5, warmup: int = 1
) -> float:
    """The median wall-clock time of ``repeat`` calls of ``fn``, after ``warmup``
    calls that are not timed (they fault in the memory and fill the caches).

    Wall-clock times differ from machine to machine and from run to run: compare
    them as ratios, measured in one process, with a wide margin.

    Args:
        fn (callable): called with no arguments.
        repeat (int): timed calls, at least 1. Default: 5.
        warmup (int): untimed calls first, at least 0. Default: 1.

    Returns:
        float: seconds.
    """
    import statistics
    import time

    from ._checks import check_int

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    check_int(repeat, "repeat")
    check_int(warmup, "warmup", minimum=0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
