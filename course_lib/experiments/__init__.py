"""Small experiments the chapters share: training loops and measurements.

Each chapter's experiments live in their own module of this package; what more than
one chapter needs lives in :mod:`course_lib.experiments.common`.

Every function here that draws random numbers takes a ``seed`` and uses its own
``torch.Generator``, so a result does not depend on what ran before it.
"""
