"""Notebook and book hygiene that nbval cannot see.

nbval passes a notebook whose cells were never executed (there is nothing stored to
compare), so these tests check that every code cell has run and stored clean
outputs, and that the table of contents and the Binder environment agree with the
repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from book_toc import toc_entries

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _toc_files() -> list[str]:
    return toc_entries()


def _resolve(entry: str) -> list[Path]:
    return [
        p
        for p in (ROOT / f"{entry}.md", ROOT / f"{entry}.ipynb", ROOT / entry)
        if p.is_file()
    ]


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks in book/"


@pytest.mark.parametrize("entry", _toc_files())
def test_every_toc_entry_exists(entry):
    assert _resolve(entry), (
        f"_toc.yml lists {entry!r} but no such .md or .ipynb exists"
    )


def test_every_chapter_notebook_is_in_the_toc():
    listed = {Path(e).name for e in _toc_files()}
    missing = [nb.name for nb in NOTEBOOKS if nb.stem not in listed]
    assert not missing, f"notebooks not in _toc.yml: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_was_executed_cleanly(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb["cells"]
    first_md = next(c for c in cells if c["cell_type"] == "markdown")
    assert "".join(first_md["source"]).lstrip().startswith("# "), (
        "first markdown cell is not '# Title'"
    )
    counts = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        assert cell.get("execution_count") is not None, (
            f"code cell {i} was never executed"
        )
        counts.append(cell["execution_count"])
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", (
                f"code cell {i} stores an error: {out.get('ename')}"
            )
            if out["output_type"] == "stream":
                assert out["name"] != "stderr", (
                    f"code cell {i} wrote to stderr: {''.join(out['text'])[:200]}"
                )
            text = json.dumps(out.get("data", {})) + "".join(out.get("text", []))
            assert not re.search(r" at 0x[0-9a-fA-F]{6,}", text), (
                f"code cell {i} prints a memory address"
            )
    assert counts == list(range(1, len(counts) + 1)), (
        "cells were not executed once, top to bottom"
    )
    assert "widgets" not in nb.get("metadata", {}), (
        "widget state is stored (dead controls in the HTML)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_starts_with_setup_and_never_edits_sys_path(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "setup(" in code[0], (
        "the first code cell must call course_lib.notebook.setup()"
    )
    assert "course_lib" in code[0]
    assert not any("sys.path" in c for c in code), (
        "notebooks import the installed course_lib"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_widget_cells_are_ignored_by_nbval_and_hidden_in_html(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and re.search(
            r"\bexplorer\(|ipywidgets|interact\(", src
        ):
            if (
                "import" in src
                and "explorer(" not in src
                and "interact(" not in src
            ):
                continue  # an import only
            tags = set(cell.get("metadata", {}).get("tags", []))
            assert {"nbval-ignore-output", "remove-output"} <= tags, (
                f"widget cell {i} lacks its tags"
            )


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        assert "==" in line, f"{path.name}: {line!r} is not an exact pin"
        name, version = line.split("==", 1)
        pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_binder_pins_the_same_versions_as_requirements():
    main = _pins(ROOT / "requirements.txt")
    binder = _pins(ROOT / "binder" / "requirements.txt")
    assert binder.pop("torch") == main.pop("torch") + "+cpu"
    assert binder == main


def test_jupyter_book_is_version_1():
    assert _pins(ROOT / "requirements.txt")["jupyter-book"].startswith("1.")


_DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?:e[-+]?\d+)?")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_decimal_in_the_prose_is_computed_or_typed_in_code(path):
    """A decimal number in a markdown cell must appear in a code cell or an output.

    Results are printed by cells; numbers quoted from the notes or chosen as
    parameters are typed in code. A number found in neither was typed into the prose
    by hand, and nothing would notice if the code changed and it went stale.
    """
    nb = json.loads(path.read_text(encoding="utf-8"))
    computed = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        computed.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            computed.append("".join(out.get("text", "")))
            for key in ("text/plain", "text/html", "text/markdown"):
                computed.append("".join(out.get("data", {}).get(key, "")))
    haystack = "\n".join(computed)
    missing = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for match in _DECIMAL.finditer("".join(cell["source"])):
            number = match.group(0).lstrip("-")
            forms = {number, number.rstrip("0").rstrip("."), f"{float(number):g}"}
            if not any(
                re.search(rf"(?<![\d.]){re.escape(f)}(?!\d)", haystack)
                for f in forms
            ):
                missing.append(f"cell {i}: {number}")
    assert not missing, (
        f"numbers in the prose that no cell computes or types: {missing}"
    )


def test_contributing_module_map_matches_the_tree():
    """CONTRIBUTING.md's module map lists every Python file of course_lib, scripts,
    tests."""
    import re

    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text[text.index("## Module map") :]
    section = section[: section.index("\n## ", 1)]
    listed = set(re.findall(r"^\| `([^`]+\.py)` \|", section, flags=re.M))
    tree = {
        str(p.relative_to(ROOT))
        for folder in ("course_lib", "scripts", "tests")
        for p in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert listed == tree, (sorted(tree - listed), sorted(listed - tree))


def _prose_words_module():
    """scripts/prose_words.py (``make words``), loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "prose_words", ROOT / "scripts" / "prose_words.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_is_at_most_3000_words(path):
    """A chapter reads in one sitting: its prose (markdown outside exercises and
    solutions, counted by scripts/prose_words.py) stays at or under 3,000 words."""
    counter = _prose_words_module()
    assert counter.prose_words(path) <= counter.PROSE_WORD_LIMIT


def test_prose_words_skips_exercises_and_solutions_only():
    """The counter drops exercise blocks and solutions, and keeps the prose around
    them, including text after a solution's end fence in the same cell."""
    prose = _prose_words_module().prose
    text = "\n".join(
        [
            "one two",
            "```{exercise}",
            ":label: ex",
            "hidden words here",
            "```",
            "three",
            "```{solution-start} ex",
            ":class: dropdown",
            "```",
            "solution words",
            "```python",
            "code()",
            "```",
            "```{solution-end}",
            "```",
            "four five",
            "````{exercise}",
            "```python",
            "x = 1",
            "```",
            "````",
            "six",
        ]
    )
    assert prose(text).split() == ["one", "two", "three", "four", "five", "six"]


def _toc_notebooks() -> list[Path]:
    return [p for e in _toc_files() for p in _resolve(e) if p.suffix == ".ipynb"]


def _shown_text_outputs(nb: dict) -> list[tuple[int, str]]:
    """(cell index, text) of every stored text output a reader sees: stream text,
    and text/plain where no HTML replaces it; outputs of cells tagged remove-output
    (the widget explorers) are not in the book."""
    texts = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if "remove-output" in cell.get("metadata", {}).get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                texts.append((i, "".join(out["text"])))
            data = out.get("data", {})
            if "text/plain" in data and "text/html" not in data:
                texts.append((i, "".join(data["text/plain"])))
    return texts


@pytest.mark.parametrize("path", _toc_notebooks(), ids=lambda p: p.stem)
def test_every_printed_line_fits_the_code_column(path):
    """A stored output line is at most 84 characters, the code cells' line length
    (CONTRIBUTING, "The notebook", rule 8): a longer one scrolls sideways in the
    book, and its hidden tail is often the point (a check's PASS)."""
    from course_lib.notebook import LINE_LENGTH

    nb = json.loads(path.read_text(encoding="utf-8"))
    long = [
        f"cell {i}: {len(line)} characters: {line[:60]}..."
        for i, text in _shown_text_outputs(nb)
        for line in text.splitlines()
        if len(line) > LINE_LENGTH
    ]
    assert LINE_LENGTH == 84
    assert not long, f"printed lines over {LINE_LENGTH} characters: {long}"


def _png_size(data: str) -> tuple[int, int]:
    """(width, height) in pixels of a base64 PNG, from its IHDR chunk."""
    import base64
    import struct

    head = base64.b64decode("".join(data)[:64])
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def _figures(path: Path) -> list[tuple[int, dict, tuple[int, int]]]:
    """(cell index, the output's image/png metadata, PNG pixel size) per figure."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [
        (i, out.get("metadata", {}).get("image/png", {}), _png_size(png))
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        for out in cell.get("outputs", [])
        if (png := out.get("data", {}).get("image/png"))
    ]


@pytest.mark.parametrize("path", _toc_notebooks(), ids=lambda p: p.stem)
def test_figures_are_stored_at_twice_their_display_size(path):
    """Every figure is a "retina" PNG: its output metadata gives the display width
    in CSS px (myst-nb writes it as the <img>'s width), and the PNG has at least 1.5
    image pixels per displayed pixel, so it is sharp on a 2x screen. No height is
    stored: a fixed height would squash the figure in a narrower column."""
    for i, meta, (w, _) in _figures(path):
        assert "width" in meta, (
            f"cell {i}: the figure has no display width (not a retina PNG)"
        )
        assert "height" not in meta, f"cell {i}: a fixed display height is stored"
        assert w >= 1.5 * meta["width"], (
            f"cell {i}: {w} pixels shown {meta['width']} px wide"
        )


def test_every_figure_is_narrow_enough_for_legible_text_on_a_phone():
    """On a 390 px phone a figure is shown PHONE_FIGURE_PX wide; the widest stored
    figure shrinks the style's smallest text to at least 7.5 px there (desktop text
    is FONT_PT at 100 dpi, shrunk by the same factor)."""
    from test_notebook_helpers import PHONE_FIGURE_PX, smallest_font_pt

    widths = {
        f"{p.stem} cell {i}": meta["width"]
        for p in _toc_notebooks()
        for i, meta, _ in _figures(p)
        if "width" in meta
    }
    assert widths, "no figures found"
    widest = max(widths.values())
    text_px = smallest_font_pt() / 72 * 100  # at the figure's natural size
    phone_px = text_px * min(1.0, PHONE_FIGURE_PX / widest)
    assert phone_px >= 7.5, (
        f"the widest figure ({max(widths, key=widths.get)}, {widest} px) shows "
        f"{phone_px:.1f} px text on a phone"
    )


_FONTSIZE = re.compile(
    r"""\b(?:fontsize|size)\s*=\s*(?:([\d.]+)|["'](xx-small|x-small|small|smaller)["'])"""
)


def test_no_figure_text_is_set_smaller_than_the_style():
    """Explicit text sizes in the figure code (course_lib and the notebooks) are not
    below plotting.FONT_PT, which the phone arithmetic above assumes."""
    from course_lib.plotting import FONT_PT

    sources = {
        str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
        for p in (ROOT / "course_lib").rglob("*.py")
    }
    for nb_path in NOTEBOOKS:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        sources[nb_path.name] = "\n".join(
            "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"
        )
    small = [
        f"{name}: {m.group(0)}"
        for name, text in sources.items()
        for m in _FONTSIZE.finditer(text)
        if m.group(2) or float(m.group(1)) < FONT_PT
    ]
    assert not small, f"figure text below {FONT_PT} pt: {small}"
