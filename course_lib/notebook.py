"""``setup()``: the first call of every chapter notebook.

It makes a fresh run print exactly what the stored outputs show: fixed seeds, one
thread (float sums change with the thread count), deterministic kernels, fixed print
precision, and figures as PNG (which nbval does not compare byte by byte).
"""

from __future__ import annotations

import os
import random
import warnings

import numpy as np
import torch

__all__ = ["setup"]


def setup(seed: int = 0) -> None:
    """Seed everything, use one thread, fix print options and the figure style.

    Call it first in a notebook, and again with a seed before an experiment that must
    not depend on what ran before it.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - readers may use the legacy global RNG
    torch.manual_seed(seed)
    torch.set_printoptions(precision=4, sci_mode=False, linewidth=100)
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    # Third-party deprecation chatter would land on stderr in the stored outputs.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)

    from .plotting import apply_style

    apply_style()
