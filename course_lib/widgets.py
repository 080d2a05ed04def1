"""Thin builders for the chapters' interactive explorers (ipywidgets).

An explorer is a plotting function plus its controls; the figure is redrawn when a
control changes. Explorers need a live kernel: in the HTML book they are replaced by
a "launch to interact" note, and a static figure of the same thing comes first.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt

__all__ = ["explorer"]


def explorer(
    plot: Callable[..., object], **controls: widgets.ValueWidget
) -> widgets.VBox:
    """Return a box of ``controls`` above an output area showing ``plot(**values)``.

    ``plot`` receives each control's value by keyword and draws one figure.
    """
    if not callable(plot):
        raise TypeError(f"plot must be callable, got {type(plot).__name__}")
    if not controls:
        raise ValueError("explorer needs at least one control")
    for name, control in controls.items():
        if not isinstance(control, widgets.ValueWidget):
            raise TypeError(
                f"control {name!r} must be an ipywidgets value widget, got "
                f"{type(control).__name__}"
            )

    def draw(**values: object) -> None:
        plot(**values)
        plt.show()

    output = widgets.interactive_output(draw, controls)
    return widgets.VBox([widgets.HBox(list(controls.values())), output])
