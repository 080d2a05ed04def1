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

    for control in controls.values():
        # the whole label, however long ("sample 5 z1" was cut to "sample 5...")
        if hasattr(control.style, "description_width"):
            control.style.description_width = "initial"
    output = widgets.interactive_output(draw, controls)
    # controls wrap onto further lines instead of shrinking to fit one (four
    # sliders in one row of a narrow JupyterLab pane were too short to move finely)
    row = widgets.HBox(
        list(controls.values()), layout=widgets.Layout(flex_flow="row wrap")
    )
    return widgets.VBox([row, output])
