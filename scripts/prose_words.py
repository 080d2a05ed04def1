"""Words of a chapter's prose: its markdown outside exercises and their solutions.

A chapter's prose aims at 3,000 words at most (tests/test_hygiene.py holds it).
Exercises and solutions are excluded: a reader opens them on purpose. The count
reads the markdown cells in order as one text, drops every ``{exercise}`` block
(its opening fence to the matching closing fence) and everything from a
``{solution-start}`` fence to the end of the ``{solution-end}`` fence, and counts
whitespace-separated words in what is left.

    python -m scripts.prose_words [book/NN_name.ipynb ...]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROSE_WORD_LIMIT = 3000

_FENCE = re.compile(r"^\s*(`{3,}|:{3,})\{([a-z-]+)\}")


def markdown_text(path: Path | str) -> str:
    """The notebook's markdown cells, in order, joined by blank lines."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    return "\n\n".join(
        "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"
    )


def prose(text: str) -> str:
    """``text`` without its exercise blocks and solutions."""
    kept: list[str] = []
    closing: str | None = None  # the fence that ends the block being skipped
    in_solution = False
    for line in text.splitlines():
        if closing is not None:
            if line.strip() == closing:
                closing = None
            continue
        match = _FENCE.match(line)
        kind = match.group(2) if match else None
        if kind == "exercise":
            closing = match.group(1)
            continue
        if kind == "solution-start":
            in_solution, closing = True, match.group(1)
            continue
        if kind == "solution-end":
            in_solution, closing = False, match.group(1)
            continue
        if not in_solution:
            kept.append(line)
    return "\n".join(kept)


def prose_words(path: Path | str) -> int:
    """Number of words of prose in the notebook at ``path``."""
    return len(prose(markdown_text(path)).split())


def main(argv: list[str]) -> int:
    paths = argv or sorted(str(p) for p in (ROOT / "book").glob("*.ipynb"))
    for p in paths:
        n = prose_words(p)
        flag = "" if n <= PROSE_WORD_LIMIT else f"  (over {PROSE_WORD_LIMIT:,})"
        print(f"{n:6,d} words of prose  {p}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
