"""course_lib.notebook: setup() and the Table printer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.notebook import Table, below, check, note_agrees, setup


def test_setup_makes_runs_repeatable_and_single_threaded():
    setup(3)
    a = torch.randn(4)
    b = np.random.rand(2)  # noqa: NPY002 - setup() seeds the legacy global RNG
    setup(3)
    assert torch.equal(torch.randn(4), a)
    c = np.random.rand(2)  # noqa: NPY002 - setup() seeds the legacy global RNG
    assert np.array_equal(c, b)
    assert torch.get_num_threads() == 1
    assert torch.are_deterministic_algorithms_enabled()


def test_setup_rejects_a_non_int_seed():
    with pytest.raises(TypeError, match="seed"):
        setup(1.5)


def test_table_prints_fixed_significant_digits_in_text_and_html():
    t = Table(
        [["a", 2.0, torch.tensor(0.123456), -0.0, True]],
        ["name", "x", "y", "z", "flag"],
    )
    text = repr(t)
    assert (
        "2.000" in text and "0.1235" in text and "-0" not in text and "True" in text
    )
    assert "<td>0.1235</td>" in t._repr_html_()


def test_table_zero_below_prints_round_off_as_zero():
    assert "1e-17" not in repr(Table([[1e-17]], ["v"], zero_below=1e-12))
    assert "1.000e-17" in repr(Table([[1e-17]], ["v"]))


@pytest.mark.parametrize(
    ("rows", "columns", "kw"),
    [([[1, 2]], ["only one"], {}), ([[1]], [], {}), ([[1]], ["a"], {"digits": 0})],
)
def test_table_rejects_bad_shapes(rows, columns, kw):
    with pytest.raises(ValueError):
        Table(rows, columns, **kw)


def test_check_prints_pass_or_fail(capsys):
    check("one", True)
    check("two", False)
    assert capsys.readouterr().out == "PASS: one\nFAIL: two\n"


def test_table_never_prints_a_bare_trailing_point():
    text = repr(Table([[231.0, 1031.0, 2.0]], ["a", "b", "c"], digits=3))
    assert "231 " in text + " " and "1.03e+03" in text and "2.00" in text
    assert "231." not in text


def test_below_prints_the_bound_never_the_round_off():
    assert below(2.2e-16, 1e-12) == "< 1e-12"
    assert below(-3e-17, 1e-12) == "< 1e-12"  # the size of the value is bounded
    assert below(torch.tensor(4e-3, dtype=torch.float64), 1e-2) == "< 1e-2"
    assert below(0.0, 1e5) == "< 1e5"
    # a broken claim is visible: the value and the bound it passes
    assert below(2e-9, 1e-12) == "2.0e-09 (NOT below 1e-12)"
    assert below(1e-12, 1e-12) == "1.0e-12 (NOT below 1e-12)"


@pytest.mark.parametrize(
    ("value", "bound", "error", "match"),
    [
        ("0.1", 1e-12, TypeError, "value"),
        (True, 1e-12, TypeError, "value"),
        (torch.zeros(2), 1e-12, ValueError, "single number"),
        (1e-16, 0.0, ValueError, "bound"),
        (1e-16, -1.0, ValueError, "bound"),
        (1e-16, "1e-12", ValueError, "bound"),
    ],
)
def test_below_rejects_bad_arguments(value, bound, error, match):
    with pytest.raises(error, match=match):
        below(value, bound)


def test_setup_does_not_fill_new_tensors_with_nan():
    setup(0)
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_default_dtype_applies_inside_the_block_and_restores_after():
    from course_lib.experiments.common import default_dtype

    before = torch.get_default_dtype()
    with default_dtype(torch.float64):
        assert torch.nn.Linear(2, 2).weight.dtype == torch.float64
        assert torch.randn(3).dtype == torch.float64
    assert torch.get_default_dtype() == before
    with pytest.raises(RuntimeError), default_dtype(torch.float64):
        raise RuntimeError("restored even when the block raises")
    assert torch.get_default_dtype() == before
    with pytest.raises(TypeError, match="dtype"):
        with default_dtype(torch.int64):
            pass


def test_named_streams_are_disjoint_for_every_chapter_seed():
    from course_lib.experiments.common import STREAMS, stream_seed

    assert stream_seed(2, "batches") == STREAMS["batches"] + 2
    assert stream_seed(0, "weights") == 0
    seeds = range(10)  # the chapters' seeds are 0 to 9
    drawn = [stream_seed(s, kind) for kind in STREAMS for s in seeds]
    assert len(set(drawn)) == len(drawn)  # no run and kind shares another's stream
    with pytest.raises(ValueError, match="stream"):
        stream_seed(0, "weight")
    with pytest.raises(ValueError, match="seed"):
        stream_seed(-1, "batches")


@pytest.mark.parametrize(
    ("note", "value", "agrees"),
    [
        ("1.09", 1.0954, False),  # rounds to 1.10: one unit off disagrees
        ("1.10", 1.0954, True),
        ("1.09", 1.0854, True),
        ("1.09", 1.0949, True),
        ("2.60", 2.5981, True),  # the trailing zero counts as a digit
        ("2.6", 2.6499, True),
        ("2.60", 2.6049, True),
        ("2.60", 2.6051, False),
        ("-0.18", -0.2041, False),
        ("-0.20", -0.2041, True),
        ("5", 5.4, True),
        ("5", 5.6, False),
    ],
)
def test_note_agrees_is_equality_after_rounding_to_the_printed_digits(
    note, value, agrees
):
    assert note_agrees(note, value) is agrees
    assert note_agrees(note, torch.tensor(value, dtype=torch.float64)) is agrees


@pytest.mark.parametrize(
    ("note", "value", "error", "words"),
    [
        (1.09, 1.09, TypeError, "note"),
        ("one", 1.0, ValueError, "note"),
        ("nan", 1.0, ValueError, "note"),
        ("1.0", "1.0", TypeError, "value"),
        ("1.0", True, TypeError, "value"),
        ("1.0", torch.ones(2), ValueError, "value"),
    ],
)
def test_note_agrees_rejects_bad_arguments(note, value, error, words):
    with pytest.raises(error, match=words):
        note_agrees(note, value)


def test_table_html_has_no_empty_header_cell():
    """An unnamed column (the row labels) gets an empty corner <td>, not an empty
    <th> that a screen reader announces as a header with no name (axe-core's
    empty-table-header); named columns keep their <th>."""
    import re

    html = Table([["row a", 1.0, "x"]], ["", "value", " "])._repr_html_()
    head = html[html.index("<thead>") : html.index("</thead>")]
    headers = re.findall(r"<th(?:\s[^>]*)?>(.*?)</th>", head)
    assert headers == ["value"]
    assert head.count("<td></td>") == 2
    assert "<tbody><tr><td>row a</td><td>1.000</td><td>x</td></tr>" in html


def test_check_wraps_a_long_label_under_its_first_word(capsys):
    from course_lib.notebook import LINE_LENGTH

    label = "the drift grows from every layer to the next, " * 4 + "in every seed"
    check(label, True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 1 and lines[0].startswith("PASS: ")
    assert all(len(line) <= LINE_LENGTH for line in lines)
    assert all(line.startswith(" " * 6) and line[6] != " " for line in lines[1:])
    assert " ".join(line.strip() for line in lines) == f"PASS: {label.strip()}"


def test_wrap_keeps_short_lines_and_indents_continuations():
    from course_lib.notebook import LINE_LENGTH, wrap

    long = "  (0-7): 8 x BatchNorm(32, " + ", ".join(["eps=1e-05"] * 12) + ")"
    text = "short line\n" + long + "\n" + "x" * 100
    lines = wrap(text).splitlines()
    assert lines[0] == "short line"
    assert lines[-1] == "x" * 100  # a word longer than a line is not cut
    wrapped = lines[1:-1]
    assert len(wrapped) > 1 and all(len(line) <= LINE_LENGTH for line in wrapped)
    assert wrapped[0].startswith("  (0-7)")
    assert all(line.startswith(" " * 6) for line in wrapped[1:])
    assert " ".join(line.strip() for line in wrapped) == long.strip()
    with pytest.raises(TypeError, match="text"):
        wrap(3)
    with pytest.raises(ValueError, match="indent"):
        wrap("x", indent=-1)


#: How wide a figure is shown on a 390 px phone (the page's content width there).
PHONE_FIGURE_PX = 358


def smallest_font_pt() -> float:
    """The smallest text size, in points, that plotting.apply_style sets."""
    import matplotlib as mpl
    from matplotlib.font_manager import FontProperties

    from course_lib.plotting import apply_style

    with mpl.rc_context():
        apply_style()
        keys = (
            "font.size",
            "axes.labelsize",
            "axes.titlesize",
            "xtick.labelsize",
            "ytick.labelsize",
            "legend.fontsize",
            "legend.title_fontsize",
            "figure.titlesize",
        )
        return min(
            FontProperties(size=mpl.rcParams[k]).get_size_in_points() for k in keys
        )


def test_figure_text_is_legible_on_a_phone_and_not_huge_on_a_desktop():
    """The widest figure new_figure allows, MAX_WIDTH inches at figure.dpi, is
    shown PHONE_FIGURE_PX wide on a phone: the style's smallest text is at least
    7.5 px tall there, and 12-16 px at its natural size on a desktop."""
    import matplotlib as mpl

    from course_lib.plotting import MAX_WIDTH, apply_style

    with mpl.rc_context():
        apply_style()
        dpi = mpl.rcParams["figure.dpi"]
        assert mpl.rcParams["figure.figsize"][0] <= MAX_WIDTH
    desktop_px = smallest_font_pt() / 72 * dpi
    phone_px = desktop_px * PHONE_FIGURE_PX / (MAX_WIDTH * dpi)
    assert phone_px >= 7.5, f"{phone_px:.2f} px text on a phone"
    assert 12 <= desktop_px <= 16, f"{desktop_px:.1f} px text on a desktop"


def test_new_figure_refuses_a_width_that_makes_text_too_small_on_a_phone():
    import matplotlib.pyplot as plt

    from course_lib.plotting import MAX_WIDTH, new_figure

    fig, _ = new_figure(2, width=MAX_WIDTH)
    assert tuple(fig.get_size_inches()) == (MAX_WIDTH, 3.6)
    plt.close(fig)
    with pytest.raises(ValueError, match="width"):
        new_figure(width=MAX_WIDTH + 0.5)
    with pytest.raises(ValueError, match="height"):
        new_figure(height=0)
    with pytest.raises(TypeError, match="width"):
        new_figure(width="7")


def test_figures_display_at_half_their_pixels_with_a_width_only():
    """In a kernel, apply_style makes a figure's PNG output twice its display size
    and stores only the display width: a height in the <img>'s style would squash
    the figure where the column is narrower than it."""
    import base64
    import struct

    import matplotlib.pyplot as plt
    from IPython.core.interactiveshell import InteractiveShell

    from course_lib.plotting import apply_style, new_figure

    shell = InteractiveShell.instance()
    try:
        apply_style()
        fig, ax = new_figure(height=3.0)
        ax.plot([0, 1], [0, 1])
        data, metadata = shell.display_formatter.format(fig)
        plt.close(fig)
    finally:
        InteractiveShell.clear_instance()
    meta = metadata["image/png"]
    assert set(meta) == {"width"}
    width, height = struct.unpack(
        ">II", base64.b64decode(data["image/png"][:64])[16:24]
    )
    assert width >= 1.5 * meta["width"] and 650 <= meta["width"] <= 730
    assert height >= 1.5 * 300 * 0.9
