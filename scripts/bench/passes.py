"""The bench's pass counter: :mod:`course_lib.profiling`, where chapter 8 and the
appendices count passes too. Importing it does not import torch."""

from course_lib.profiling import NO_DATA_OPS, count_passes, fmt_passes

__all__ = ["NO_DATA_OPS", "count_passes", "fmt_passes"]
