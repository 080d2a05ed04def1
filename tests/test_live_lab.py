"""The notebooks as a Binder reader runs them: JupyterLab, Run All, every explorer
moved, in a real browser.

One JupyterLab for the module, started from the project's ``.venv`` through
``binder/start`` (the kernels' environment of ``scripts/kernel.env``) on 127.0.0.1
with a token, serving copies of the chapter notebooks; one tab of the browser
tests' Chromium. For every chapter notebook (``book/[0-9][0-9]_*.ipynb`` and
``book/appendix_*.ipynb``) the tab opens it, clicks Kernel > Restart Kernel and Run
All Cells, and then moves every control of every explorer: a slider to both ends,
each other option of a dropdown, a checkbox both ways. The checks:

- every code cell ran, in order, in the restarted kernel; no cell shows an error
  or writes to stderr; no widget fails to display;
- every check line (``course_lib.notebook.check``) says PASS, as many as stored;
- the run (restart, kernel start included, to the last cell) is within the
  chapter budget of docs/DEVELOPMENT.md, 20 s;
- after each move the explorer shows a new output (an image that differs from the
  last one, or new text), its output holds no error, the control shows the value
  moved to, and the console no JavaScript error;
- no request leaves the machine, from the page (blocked and counted) or from the
  server (no news or update check, nothing in its log, no outside connection);
- ``book/`` is as it was.

Screenshots of each explorer before and after every move go to ``_build/live/``
(``summary.json`` there lists the times and moves; ``lab.log`` is the server's
log). Run these tests alone with ``make live``; without Chromium they skip locally
and fail under CI (``CI=true``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from pathlib import Path

import psutil
import pytest
from browser_support import _unavailable
from live_support import (
    BINDER_START,
    BUDGET_S,
    KERNEL,
    LIVE_DIR,
    NOTEBOOKS,
    VENV_BIN,
    ChapterRun,
    LabServer,
    LiveLab,
    explorer_cells,
    start_lab,
    stored_check_lines,
)

pytestmark = pytest.mark.live

IDS = [p.stem for p in NOTEBOOKS]
WITH_EXPLORERS = [p for p in NOTEBOOKS if explorer_cells(p)]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BOOK_BEFORE = {p.name: _digest(p) for p in NOTEBOOKS}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    if not (VENV_BIN / "jupyter-lab").is_file():
        _unavailable(f"no {VENV_BIN / 'jupyter-lab'}: run `make venv` first")
    LIVE_DIR.mkdir(parents=True, exist_ok=True)
    for old in LIVE_DIR.glob("*.png"):
        old.unlink()
    server = start_lab(tmp_path_factory.mktemp("lab"), LIVE_DIR / "lab.log")
    try:
        yield server
    finally:
        killed = server.stop()
        left = [
            p.info
            for p in psutil.process_iter(["pid", "cmdline"])
            # the lab (its root_dir) and its kernels (their connection files)
            if str(server.root.parent) in " ".join(p.info["cmdline"] or [])
        ]
        assert not left, f"still running after the lab was stopped: {left}"
        assert not killed, f"had to be killed, they did not stop: {killed}"


@pytest.fixture(scope="module")
def live(browser, lab: LabServer):
    tab = LiveLab(browser, lab, LIVE_DIR)
    try:
        yield tab
    finally:
        tab.close()
        summary = {run.name: asdict(run) for run in tab.runs()}
        (LIVE_DIR / "summary.json").write_text(
            json.dumps(summary, indent=1, default=str), encoding="utf-8"
        )


def _run(live: LiveLab, path: Path) -> ChapterRun:
    run = live.run(path)
    assert run.error is None, (
        f"{path.name} could not be run in JupyterLab: {run.error}"
    )
    return run


# ------------------------------------------------------------------------ checks


def test_lab_runs_from_the_venv_under_binder_start(lab: LabServer):
    server = psutil.Process(lab.process.pid)
    # binder/start ends in `exec "$@"`: the process is jupyter-lab itself
    assert server.cmdline()[1] == str(VENV_BIN / "jupyter-lab"), server.cmdline()
    environ = server.environ()
    # start_lab removed these from the environment it passed: binder/start set them
    want = dict(KERNEL.environment)
    assert {k: environ.get(k) for k in want} == want, f"{BINDER_START} did not set"
    assert lab.get("api/kernelspecs")["default"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapter_runs_every_cell_without_error_or_stderr(live: LiveLab, path: Path):
    run = _run(live, path)
    assert None not in run.counts, f"cells that did not run: {run.counts}"
    # a fresh kernel numbers the cells 1, 2, ... in order
    assert run.counts == list(range(1, len(run.counts) + 1)), (
        f"not one run of every cell in the restarted kernel: {run.counts}"
    )
    assert not run.stderr, "error or stderr output:\n" + "\n---\n".join(
        s[:2000] for s in run.stderr
    )
    assert not run.widget_problems, run.widget_problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapter_check_lines_all_pass(live: LiveLab, path: Path):
    run = _run(live, path)
    failed = [line for line in run.check_lines if line.startswith("FAIL")]
    assert not failed, failed
    stored = stored_check_lines(path)
    assert len(run.check_lines) == len(stored), (
        f"{len(run.check_lines)} check lines in JupyterLab, {len(stored)} stored"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapter_runs_within_its_budget(live: LiveLab, path: Path):
    run = _run(live, path)
    assert run.run_s <= BUDGET_S, (
        f"{path.name}: Restart Kernel and Run All Cells took {run.run_s:.1f} s in "
        f"JupyterLab (budget {BUDGET_S:.0f} s, kernel start included)"
    )


@pytest.mark.parametrize(
    "path", WITH_EXPLORERS, ids=[p.stem for p in WITH_EXPLORERS]
)
def test_every_explorer_control_redraws_the_output(live: LiveLab, path: Path):
    run = _run(live, path)
    assert len(run.explorers) == len(explorer_cells(path)), run.explorers
    problems = []
    for explorer in run.explorers:
        where = f"explorer of cell {explorer.cell}"
        if explorer.problem:
            problems.append(f"{where}: {explorer.problem}")
        if not explorer.moves and not explorer.problem:
            problems.append(f"{where}: no control was moved")
        for move in explorer.moves:
            what = f"{where}, {move.control} {move.action}"
            if move.problem:
                problems.append(f"{what}: {move.problem}")
                continue
            if not move.value_ok:
                problems.append(f"{what}: the control shows {move.value!r}")
            if not move.changed:
                problems.append(f"{what}: the output did not change")
            if move.widget_errors:
                problems.append(
                    f"{what}: error in the output: {move.widget_errors}"
                )
            if move.console_errors:
                problems.append(f"{what}: console errors {move.console_errors}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_console_error_and_no_outside_request(live: LiveLab, path: Path):
    run = _run(live, path)
    assert not run.console_errors, run.console_errors
    assert not run.page_errors, run.page_errors
    assert not run.blocked, f"requests to other hosts (blocked): {run.blocked}"
    assert not run.failed_local, run.failed_local


def test_the_server_reached_no_other_host(live: LiveLab, lab: LabServer):
    for path in NOTEBOOKS:  # every chapter has been run (cached)
        live.run(path)
    asked = {p for p in live.api_paths if re.search(r"lab/api/(news|update)", p)}
    assert not asked, f"the page asked for news or updates: {sorted(asked)}"
    log = lab.log_text()
    outside = re.findall(r"\b(?:https?|wss?)://(?!127\.0\.0\.1[:/])\S+", log)
    assert not outside, f"the server's log names other hosts: {outside}"
    errors = [
        line
        for line in log.splitlines()
        if line.startswith("[E ") or "Traceback" in line
    ]
    assert not errors, "\n".join(errors)
    server = psutil.Process(lab.process.pid)
    remote = [
        f"{proc.name()}: {c.raddr}"
        for proc in [server, *server.children(recursive=True)]
        for c in proc.net_connections(kind="inet")
        if c.raddr and c.raddr.ip not in {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
    ]
    assert not remote, remote


def test_every_chapter_kernel_was_shut_down(live: LiveLab, lab: LabServer):
    for path in NOTEBOOKS:
        live.run(path)
    live.wait_closed()
    assert not live.shutdown_errors, live.shutdown_errors
    assert lab.get("api/kernels") == [], "kernels left running"


def test_book_notebooks_are_unchanged(live: LiveLab):
    for path in NOTEBOOKS:
        live.run(path)
    assert {p.name: _digest(p) for p in NOTEBOOKS} == BOOK_BEFORE
