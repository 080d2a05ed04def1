"""Figure helpers shared by the chapters: one colour-blind-safe palette, one style.

Every helper returns ``(fig, ax)`` so a notebook can add to the figure before it
ends the cell with ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "FONT_PT",
    "MAX_WIDTH",
    "PALETTE",
    "apply_style",
    "bar_groups",
    "color",
    "finish_axes",
    "new_figure",
]

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


#: The one text size of every figure, in points: tick labels, axis labels, legends
#: and annotations (titles are one point larger).
FONT_PT = 11.0
#: The widest figure, in inches. At ``figure.dpi`` 100 a 7-inch figure is 700 CSS
#: px wide, about the book's text column at desktop width; on a 390 px phone it is
#: shown about 358 px wide, so its text shrinks by 358 / 700 and ``FONT_PT`` comes
#: out 11 / 72 * 358 / 7 = 7.8 px there (tests/test_notebook_helpers.py holds it to
#: 7.5). A wider figure would shrink its text more on a phone.
MAX_WIDTH = 7.0


def apply_style() -> None:
    """Set matplotlib's defaults for the book: palette, sizes, and PNG output at
    twice the pixels (matplotlib_inline's "retina") in notebooks.

    A retina PNG stores its display width (half its pixels) in the output's
    metadata, and myst-nb writes it as the ``<img>``'s width: the figure shows at
    the size of a 100 dpi one with two image pixels per CSS pixel, sharp on a 2x
    screen.
    """
    mpl.rcParams.update(
        {
            "axes.prop_cycle": cycler(color=[PALETTE[c] for c in _ORDER]),
            "figure.figsize": (MAX_WIDTH, 3.6),
            "figure.dpi": 100,
            "savefig.dpi": 200,
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": FONT_PT,
            "axes.labelsize": FONT_PT,
            "axes.titlesize": FONT_PT + 1,
            "figure.titlesize": FONT_PT + 1,
            "xtick.labelsize": FONT_PT,
            "ytick.labelsize": FONT_PT,
            "legend.fontsize": FONT_PT,
            "legend.title_fontsize": FONT_PT,
            "legend.frameon": False,
            "image.cmap": "cividis",
        }
    )
    try:  # inside IPython: PNG figures, which nbval does not compare byte by byte
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")
        shell = get_ipython()
    except Exception:  # pragma: no cover - outside a kernel there is nothing to set
        shell = None
    if shell is not None:
        png = shell.display_formatter.formatters["image/png"]
        png.for_type(Figure, _width_only(png.lookup_by_type(Figure)))


def _width_only(retina: Callable[[Figure], tuple[str, dict] | None]):
    """The retina formatter, storing only the display width in the output metadata.

    myst-nb writes the metadata as the ``<img>``'s inline style; a fixed height
    there would squash the figure wherever the column is narrower than the
    figure (a phone), while a width alone lets ``max-width: 100%`` shrink it with
    its aspect ratio kept.
    """

    def formatter(fig: Figure) -> tuple[str, dict] | None:
        out = retina(fig)
        if out is None:  # an empty figure
            return None
        data, metadata = out
        return data, {"width": metadata["width"]}

    return formatter


def new_figure(
    ncols: int = 1,
    nrows: int = 1,
    *,
    width: float = MAX_WIDTH,
    height: float = 3.6,
    **kw,
) -> tuple[Figure, np.ndarray | Axes]:
    """``plt.subplots`` with the book's size and a constrained layout.

    ``width`` is at most ``MAX_WIDTH`` inches, so that the text stays legible when a
    phone shrinks the figure to its screen.
    """
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number of inches, got {value!r}")
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if width > MAX_WIDTH:
        raise ValueError(
            f"width must be at most MAX_WIDTH = {MAX_WIDTH} inches (a wider "
            f"figure's text is too small on a phone), got {width!r}"
        )
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
    return finish_axes(ax, "", ylabel, title=title)


def finish_axes(
    ax: Axes, xlabel: str, ylabel: str, *, title: str = "", legend: bool = True
) -> tuple[Figure, Axes]:
    """Label ``ax``'s axes, give it ``title`` (if any) and its legend (if
    ``legend``), and return ``(fig, ax)``, as every figure helper does."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if legend:
        ax.legend()
    return ax.figure, ax
