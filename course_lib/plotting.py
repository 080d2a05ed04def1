"""Figure helpers shared by the chapters: one colour-blind-safe palette, one style.

Every helper returns ``(fig, ax)`` so a notebook can add to the figure before it
ends the cell with ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["PALETTE", "apply_style", "bar_groups", "color", "new_figure"]

#: Okabe & Ito (2008) colours, distinguishable with the common colour-vision
#: deficiencies.
PALETTE: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
_ORDER = (
    "blue",
    "orange",
    "green",
    "vermillion",
    "sky",
    "purple",
    "black",
    "yellow",
)


def color(i: int) -> str:
    """The i-th colour of the palette's cycle (wraps around)."""
    return PALETTE[_ORDER[i % len(_ORDER)]]


def apply_style() -> None:
    """Set matplotlib's defaults for the book: palette, sizes, PNG output in
    notebooks."""
    mpl.rcParams.update(
        {
            "axes.prop_cycle": cycler(color=[PALETTE[c] for c in _ORDER]),
            "figure.figsize": (7.0, 3.6),
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
            "legend.frameon": False,
            "image.cmap": "cividis",
        }
    )
    try:  # inside IPython: PNG figures, which nbval does not compare byte by byte
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except Exception:  # pragma: no cover - outside a kernel there is nothing to set
        pass


def new_figure(
    ncols: int = 1, nrows: int = 1, *, width: float = 7.0, height: float = 3.6, **kw
) -> tuple[Figure, np.ndarray | Axes]:
    """``plt.subplots`` with the book's size and a constrained layout."""
    fig, ax = plt.subplots(
        nrows, ncols, figsize=(width, height), layout="constrained", **kw
    )
    return fig, ax


def bar_groups(
    ax: Axes,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "",
    title: str = "",
) -> tuple[Figure, Axes]:
    """Grouped bars: one group per entry of ``groups``, one bar per series."""
    n = len(series)
    width = 0.8 / max(n, 1)
    x = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        if len(values) != len(groups):
            raise ValueError(
                f"series {label!r} has {len(values)} values for {len(groups)} "
                "groups"
            )
        ax.bar(
            x + (i - (n - 1) / 2) * width,
            values,
            width,
            label=label,
            color=color(i),
        )
    ax.set_xticks(x, list(groups))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    return ax.figure, ax
