"""What the live test shares: JupyterLab started as Binder starts it, and a reader's
run of each chapter notebook in it (Restart Kernel and Run All Cells, then every
explorer's controls moved), recorded once per chapter so that each check is its
own test.

The server is the project's ``.venv/bin/jupyter-lab``, run through ``binder/start``
(which sources ``scripts/kernel.env``), on 127.0.0.1 with a token and a free port.
It serves copies of the notebooks from a temporary folder, so the stored outputs
in ``book/`` are never touched, and it reaches no other host: no news, no update
check, a read-only extension manager (the Makefile's ``LAB_OFFLINE``, which
``make lab`` passes too), and every browser request to another host is blocked and
counted.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from browser_support import ROOT, Tab

LIVE_DIR = ROOT / "_build" / "live"
VENV_BIN = ROOT / ".venv" / "bin"
BINDER_START = ROOT / "binder" / "start"
# The chapter notebooks, as the Makefile's NOTEBOOKS lists them: Part II chapters
# and appendices are included as they land.
NOTEBOOKS = sorted(
    [*ROOT.glob("book/[0-9][0-9]_*.ipynb"), *ROOT.glob("book/appendix_*.ipynb")]
)
# docs/DEVELOPMENT.md: a chapter runs in at most 20 s, kernel start included.
BUDGET_S = 20.0
# Seconds to wait for one explorer to redraw after a move (scripts/kernel.env's
# CELL_TIMEOUT_S is the limit for a cell; a redraw is one call of a plot function).
REDRAW_TIMEOUT_S = 60.0
STDERR_MIME = "application/vnd.jupyter.stderr"  # stderr streams and tracebacks
CHECK_LINE = re.compile(r"^(PASS|FAIL): ")  # course_lib.notebook.check's lines


def _load_kernel_env() -> Any:
    """scripts/kernel.env, read by the one parser the scripts use."""
    path = ROOT / "scripts" / "execute_notebooks.py"
    spec = importlib.util.spec_from_file_location("_live_execute_notebooks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.KERNEL


KERNEL = _load_kernel_env()


def lab_offline_flags() -> list[str]:
    """The Makefile's ``LAB_OFFLINE``: the server options that keep JupyterLab off
    the network (``make lab`` passes the same)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^LAB_OFFLINE\s*:=\s*(.+)$", text, flags=re.M)
    if match is None:
        raise AssertionError("the Makefile defines no LAB_OFFLINE := ... line")
    return match.group(1).split()


# The reader's settings, written to the server's own settings folder (the user's
# ~/.jupyter is not read): no news and no update check (no request leaves the
# machine), no extension manager, no autosave (the copies stay as copied), and
# each cell's kernel timestamps recorded in its metadata (recordTiming: how much of
# a run is the kernel's). The notebook renders only the cells in view, as a
# reader's does: the checks read every cell's outputs from the notebook's model.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"recordTiming": True},
}


# ------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    """A running JupyterLab: its URL, token, the folder it serves and its log."""

    process: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:<port>/
    token: str
    root: Path  # holds book/, the copies of the notebooks
    log: Path

    def get(self, path: str, method: str = "GET") -> Any:
        """Call a JSON endpoint of the server (``api/status``, ``api/kernels``)."""
        request = urllib.request.Request(
            self.url + path,
            headers={"Authorization": f"token {self.token}"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
            return json.loads(body) if body else None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> list[str]:
        """Stop the server and every process it started (kernels included), even
        if it hangs; returns what had to be killed."""
        killed: list[str] = []
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if self.process.poll() is None:
            # SIGTERM: jupyter_server shuts its kernels down, then exits.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                killed.append(f"jupyter-lab (pid {self.process.pid})")
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            try:
                killed.append(f"{child.name()} (pid {child.pid})")
                child.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        return killed


def start_lab(workdir: Path, log: Path) -> LabServer:
    """JupyterLab from ``.venv`` under ``binder/start``, serving copies of the
    notebooks in ``workdir/root/book``; its output goes to ``log``."""
    root = workdir / "root"
    (root / "book").mkdir(parents=True)
    for path in NOTEBOOKS:
        shutil.copy2(path, root / "book" / path.name)
    settings = workdir / "settings"
    for name, values in LAB_SETTINGS.items():
        file = settings / f"{name}.jupyterlab-settings"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(values), encoding="utf-8")
    env = {
        name: value
        for name, value in os.environ.items()
        # binder/start must set these itself (test_binder_start_sets_...)
        if name not in KERNEL.environment and not name.startswith("JUPYTER")
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"),
        JUPYTER_CONFIG_DIR=str(workdir / "config"),
        JUPYTER_DATA_DIR=str(workdir / "data"),
        JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
    )
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        str(BINDER_START),
        str(VENV_BIN / "jupyter-lab"),
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        # window.jupyterapp: the test waits on the kernel's status through it
        "--LabApp.expose_app_in_browser=True",
        *lab_offline_flags(),
    ]
    if os.geteuid() == 0:  # CI containers run as root; Binder does not
        command.append("--ServerApp.allow_root=True")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lab = LabServer(process, f"http://127.0.0.1:{port}/", token, root, log)
    deadline = time.monotonic() + KERNEL.start_timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"jupyter-lab exited with {process.returncode}:\n"
                + lab.log_text()[-3000:]
            )
        try:
            lab.get("api/status")
            return lab
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                lab.stop()
                raise RuntimeError(
                    f"jupyter-lab did not answer within {KERNEL.start_timeout_s} s:"
                    "\n" + lab.log_text()[-3000:]
                ) from None
            time.sleep(0.2)


# ------------------------------------------------------------ what a chapter holds


@dataclass(frozen=True)
class Control:
    name: str  # the keyword of explorer(...)
    widget: str  # the ipywidgets class, e.g. "IntSlider"

    @property
    def kind(self) -> str:
        if self.widget.endswith("Slider"):
            return "slider"
        if self.widget in {"Dropdown", "Select", "RadioButtons", "ToggleButtons"}:
            return "dropdown" if self.widget == "Dropdown" else self.widget
        if self.widget in {"Checkbox", "ToggleButton"}:
            return "checkbox" if self.widget == "Checkbox" else self.widget
        return self.widget


@dataclass(frozen=True)
class ExplorerCell:
    index: int  # the cell's position in the notebook
    controls: tuple[Control, ...]


def _widget_class(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            return func.attr
        if isinstance(func, ast.Name):
            return func.id
    return type(node).__name__


def explorer_cells(path: Path) -> list[ExplorerCell]:
    """Every ``explorer(plot, name=widgets.X(...), ...)`` call of a notebook, with
    its controls in order."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code" or "explorer(" not in "".join(
            cell["source"]
        ):
            continue
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if (
                isinstance(node, ast.Call)
                and _widget_class(node) == "explorer"
                and node.keywords
            ):
                controls = tuple(
                    Control(k.arg or "**", _widget_class(k.value))
                    for k in node.keywords
                )
                found.append(ExplorerCell(index, controls))
    return found


def stored_check_lines(path: Path) -> list[str]:
    """The check lines (``PASS: ...`` / ``FAIL: ...``) of the stored outputs."""
    lines = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output["name"] == "stdout":
                text = "".join(output["text"])
                lines += [s for s in text.splitlines() if CHECK_LINE.match(s)]
    return lines


# --------------------------------------------------------------- one run, recorded


@dataclass
class Move:
    """One move of one control, and what the explorer showed after it."""

    control: str  # "depth (IntSlider)"
    action: str  # "to max", "option 'layer'", "checked"
    value: str = ""  # the value the control shows after the move
    value_ok: bool = False  # the control reached the value the move aims for
    changed: bool = False  # the output differs from the one before the move
    output: str = ""  # "image" or "text"
    widget_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    screenshot: Path | None = None
    problem: str = ""  # what went wrong, if anything


@dataclass
class ExplorerRun:
    cell: int
    controls: list[str] = field(default_factory=list)  # as the page shows them
    expected: list[str] = field(default_factory=list)  # as the notebook writes them
    before: Path | None = None  # screenshot before the first move
    moves: list[Move] = field(default_factory=list)
    problem: str = ""


@dataclass
class ChapterRun:
    """What a reader met running one chapter in JupyterLab."""

    name: str
    run_s: float = 0.0  # Restart Kernel and Run All Cells, kernel start included
    # of which: from the click to the first cell's start (restart, kernel start),
    # the kernel's run of the cells (first start to last reply, its timestamps)
    restart_s: float = 0.0
    cells_s: float = 0.0
    slowest: list[tuple[int, float]] = field(default_factory=list)  # (code cell, s)
    open_s: float = 0.0  # opening the notebook, until its first kernel is idle
    close_s: float = 0.0  # closing it, its kernel shut down
    counts: list[int | None] = field(default_factory=list)  # execution counts
    stderr: list[str] = field(default_factory=list)  # stderr and error outputs
    widget_problems: list[str] = field(default_factory=list)
    check_lines: list[str] = field(default_factory=list)
    explorers: list[ExplorerRun] = field(default_factory=list)
    explorers_s: float = 0.0
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed_local: list[str] = field(default_factory=list)
    error: str | None = None


# The open notebook, its kernel's status, and the code cells' prompts and outputs.
_NOTEBOOK_JS = "window.liveNotebook"
_KERNEL_JS = f"""() => {{
  const nb = {_NOTEBOOK_JS};
  const k = nb && nb.sessionContext.session && nb.sessionContext.session.kernel;
  return k ? k.status + "/" + k.connectionStatus : "none";
}}"""

_OPEN_JS = """async (path) => {
  const app = window.jupyterapp;
  await app.restored;
  const nb = await app.commands.execute("docmanager:open", {path: path});
  await nb.context.ready;
  await nb.sessionContext.ready;
  app.shell.activateById(nb.id);
  window.liveNotebook = nb;
  return nb.content.widgets.length;
}"""

# Clear the stored outputs and execution counts first, so that a count is one this
# run gave; every cell gets its data-live-cell index.
_PREPARE_JS = f"""async () => {{
  const nb = {_NOTEBOOK_JS};
  await window.jupyterapp.commands.execute("notebook:clear-all-cell-outputs");
  nb.content.widgets.forEach((cell, i) => cell.node.dataset.liveCell = String(i));
}}"""

# Every code cell's outputs in nbformat's JSON, from the notebook's model (the
# cells out of view are not rendered).
_CODE_CELLS_JS = f"""{_NOTEBOOK_JS}.content.widgets
  .filter(c => c.model.type === "code")"""

# Done: the kernel is idle, and every code cell has the count this run gave it or
# one failed (Run All stops at an error: the cells after it never run).
_DONE_JS = f"""() => {{
  const nb = {_NOTEBOOK_JS};
  const k = nb.sessionContext.session && nb.sessionContext.session.kernel;
  if (!k || k.status !== "idle") return false;
  const cells = {_CODE_CELLS_JS};
  const counts = cells.map(c => c.model.executionCount);
  const failed = cells.some(c => c.model.outputs.toJSON()
    .some(o => o.output_type === "error"));
  return counts.every(n => n !== null) || failed ? counts : false;
}}"""

_OUTPUTS_JS = f"""() => {{
  const nb = {_NOTEBOOK_JS};
  const outputs = {_CODE_CELLS_JS}.flatMap(c => c.model.outputs.toJSON());
  const join = t => Array.isArray(t) ? t.join("") : String(t);
  const rendered = sel => Array.from(nb.node.querySelectorAll(sel))
    .map(e => e.textContent);
  return {{
    stderr: outputs.filter(o => o.output_type === "error")
      .map(o => `${{o.ename}}: ${{o.evalue}}\n` + join(o.traceback))
      .concat(outputs.filter(o => o.output_type === "stream" && o.name === "stderr")
        .map(o => join(o.text)))
      // and what the cells in view show on stderr ("{STDERR_MIME}")
      .concat(rendered('.jp-OutputArea-output[data-mime-type="{STDERR_MIME}"]')
        .map(t => "(rendered) " + t)),
    stdout: outputs.filter(o => o.output_type === "stream" && o.name === "stdout")
      .map(o => join(o.text)),
    // a widget the front end cannot show ("Error displaying widget", a model
    // class that does not load) or one still "Loading widget..."
    widgets: rendered(".jp-OutputArea-output").filter(
      t => /Error displaying widget|Loading widget|Failed to load model/.test(t)),
  }};
}}"""

# Each code cell's kernel timestamps (recordTiming), as epoch seconds.
_TIMING_JS = f"""() => {{
  const nb = {_NOTEBOOK_JS};
  return {_CODE_CELLS_JS}.map(c => {{
    const t = c.model.getMetadata("execution") || {{}};
    return [Date.parse(t["iopub.status.busy"]) / 1000,
            Date.parse(t["shell.execute_reply"]) / 1000];
  }});
}}"""

# Close the notebook (discarding the run); returns its session, which _close
# shuts down (with its kernel) while the next notebook opens.
_CLOSE_JS = f"""() => {{
  const nb = {_NOTEBOOK_JS};
  window.liveNotebook = null;
  if (!nb) return null;
  const session = nb.sessionContext.session;
  nb.dispose();
  return session ? session.id : null;
}}"""

# The explorer of one cell: its controls and a signature of its output (a hash of
# every image's data and of the text), with the errors the output area holds.
_BOX = ".widget-vbox:not([data-live-stale])"  # the explorer's newest view
_EXPLORER_JS = f"""(index) => {{
  const cell = document.querySelector(`[data-live-cell="${{index}}"]`);
  const box = cell && cell.querySelector({json.dumps(_BOX)});
  if (!box) return null;
  const row = box.querySelector(":scope > .widget-hbox");
  const out = box.querySelector(":scope > .widget-output");
  const kind = el => ["widget-slider", "widget-dropdown", "widget-checkbox"]
    .find(c => el.classList.contains(c)) || el.className;
  const controls = row ? Array.from(row.children).map(el => ({{
    kind: kind(el).replace("widget-", ""),
    label: (el.querySelector(".widget-label") || {{}}).textContent || "",
  }})) : [];
  let hash = 2166136261;
  const add = s => {{
    for (let i = 0; i < s.length; i++) {{
      hash = Math.imul(hash ^ s.charCodeAt(i), 16777619) >>> 0;
    }}
  }};
  const images = out ? Array.from(out.querySelectorAll("img")) : [];
  images.forEach(img => add(img.src));
  const text = out ? out.textContent.trim() : "";
  add(text);
  const nb = {_NOTEBOOK_JS};
  const k = nb.sessionContext.session && nb.sessionContext.session.kernel;
  return {{
    controls: controls,
    output: images.length ? "image" : (text ? "text" : ""),
    signature: images.length || text ? hash : null,
    errors: out ? Array.from(out.querySelectorAll(
      '[data-mime-type="{STDERR_MIME}"]')).map(e => e.textContent.slice(0, 2000))
      : [],
    idle: Boolean(k && k.status === "idle"),
  }};
}}"""

# Waits for the explorer's output to differ from `before` with the kernel idle
# again (the redraw is over), or for an error in the output.
_REDRAWN_JS = f"""([index, before]) => {{
  const state = ({_EXPLORER_JS})(index);
  if (!state) return false;
  if (state.errors.length && state.idle) return state;
  return state.signature !== null && state.signature !== before && state.idle
    ? state : false;
}}"""


# Runs the explorer's cell again (a fresh explorer, every control at its default);
# the views it replaces are marked stale.
_RERUN_JS = """async (index) => {
  const nb = window.liveNotebook;
  const cell = nb.content.widgets[index];
  cell.node.querySelectorAll(".widget-vbox")
    .forEach(b => b.dataset.liveStale = "1");
  nb.content.activeCellIndex = index;
  nb.content.deselectAll();  // run this cell only
  await window.jupyterapp.commands.execute("notebook:run-cell");
}"""

_SCROLL_JS = """async (index) => {
  const nb = window.liveNotebook;
  nb.content.activeCellIndex = index;
  await nb.content.scrollToItem(index, "start");
}"""

_FRESH_JS = f"""([index]) => {{
  const s = ({_EXPLORER_JS})(index);
  return s && s.signature !== null && s.idle ? s : false;
}}"""


class LiveLab:
    """One browser tab on the lab; runs each chapter once (cached), as a reader."""

    def __init__(self, browser: Any, lab: LabServer, shots: Path) -> None:
        self.lab = lab
        self.shots = shots
        self.tab = Tab(browser, lab.url)
        self.api_paths: list[str] = []  # every local API path the page asked for
        self.tab.page.on("request", self._request)
        self._runs: dict[str, ChapterRun] = {}
        self._closing: list[threading.Thread] = []
        self.shutdown_errors: list[str] = []
        self.tab.page.goto(f"{lab.url}lab?token={lab.token}", wait_until="load")
        self.tab.page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.restored",
            timeout=KERNEL.start_timeout_s * 1000,
        )
        self.tab.page.evaluate("async () => { await window.jupyterapp.restored; }")

    def _request(self, request: Any) -> None:
        if request.url.startswith(self.lab.url):
            self.api_paths.append(request.url[len(self.lab.url) :].split("?")[0])

    def _shut_down(self, session: str) -> None:
        try:
            self.lab.get(f"api/sessions/{session}", "DELETE")
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            self.shutdown_errors.append(f"session {session}: {exc}")

    def wait_closed(self) -> None:
        """Wait for the shutdowns of the chapters' kernels."""
        for closing in self._closing:
            closing.join(timeout=60)

    def close(self) -> None:
        self.wait_closed()
        self.tab.close()

    def run(self, path: Path) -> ChapterRun:
        if path.stem not in self._runs:
            self._runs[path.stem] = self._run(path)
        return self._runs[path.stem]

    def runs(self) -> list[ChapterRun]:
        return list(self._runs.values())

    def _one_kernel(self, timeout_s: float) -> None:
        """Wait until the kernel of the notebook before is gone: the timed run
        shares the machine with nothing else of the test."""
        deadline = time.monotonic() + timeout_s
        while len(self.lab.get("api/kernels")) > 1:
            if time.monotonic() > deadline:
                raise TimeoutError("the last chapter's kernel is still running")
            time.sleep(0.1)

    def _errors(self) -> list[str]:
        return self.tab.console_errors + self.tab.page_errors

    def _run(self, path: Path) -> ChapterRun:
        page, tab = self.tab.page, self.tab
        run = ChapterRun(path.stem)
        marks = (
            len(tab.console_errors),
            len(tab.page_errors),
            len(tab.blocked),
            len(tab.failed_local),
        )
        timeout_ms = KERNEL.start_timeout_s * 1000
        try:
            start = time.perf_counter()
            page.evaluate(_OPEN_JS, f"book/{path.name}")
            # the kernel the notebook starts on opening, as in Binder
            page.wait_for_function(
                f"() => ({_KERNEL_JS})() === 'idle/connected'",
                timeout=timeout_ms,
                polling=100,
            )
            run.open_s = time.perf_counter() - start
            self._one_kernel(timeout_ms / 1000)
            page.evaluate(_PREPARE_JS)
            # Kernel > Restart Kernel and Run All Cells..., then the dialog's
            # Restart: what a reader clicks
            page.locator(".lm-MenuBar-item", has_text="Kernel").click()
            page.get_by_role(
                "menuitem", name="Restart Kernel and Run All Cells…", exact=True
            ).click()
            accept = page.locator(".jp-Dialog .jp-mod-accept")
            accept.wait_for()
            assert accept.inner_text().strip() == "Restart", accept.inner_text()
            start, clicked = time.perf_counter(), time.time()
            accept.click()
            run.counts = page.wait_for_function(
                _DONE_JS,
                timeout=(timeout_ms + KERNEL.cell_timeout_s * 1000),
                polling=100,
            ).json_value()
            run.run_s = time.perf_counter() - start
            stamps = [s for s in page.evaluate(_TIMING_JS) if None not in s]
            if stamps:
                run.restart_s = stamps[0][0] - clicked
                run.cells_s = max(s[1] for s in stamps) - stamps[0][0]
                run.slowest = sorted(
                    ((i, s[1] - s[0]) for i, s in enumerate(stamps)),
                    key=lambda c: -c[1],
                )[:3]
            outputs = page.evaluate(_OUTPUTS_JS)
            run.stderr = outputs["stderr"]
            run.widget_problems = outputs["widgets"]
            run.check_lines = [
                line
                for text in outputs["stdout"]
                for line in text.splitlines()
                if CHECK_LINE.match(line)
            ]
            start = time.perf_counter()
            if not run.stderr:
                for cell in explorer_cells(path):
                    run.explorers.append(self._explore(path, cell))
            run.explorers_s = time.perf_counter() - start
        except Exception as exc:  # recorded once, reported by every check
            run.error = f"{type(exc).__name__}: {exc}"
        finally:
            start = time.perf_counter()
            try:
                session = page.evaluate(_CLOSE_JS)
                if session:  # the server answers once the kernel is gone
                    closing = threading.Thread(
                        target=self._shut_down, args=(session,), daemon=True
                    )
                    closing.start()
                    self._closing.append(closing)
            except Exception as exc:
                run.error = run.error or f"closing: {type(exc).__name__}: {exc}"
            run.close_s = time.perf_counter() - start
            run.console_errors = tab.console_errors[marks[0] :]
            run.page_errors = tab.page_errors[marks[1] :]
            run.blocked = tab.blocked[marks[2] :]
            run.failed_local = tab.failed_local[marks[3] :]
        return run

    # ---------------------------------------------------------------- explorers

    def _shot(self, path: Path, cell: int, label: str) -> Path:
        shot = self.shots / f"{path.stem}-cell{cell}-{label}.png"
        box = self.tab.page.locator(f'[data-live-cell="{cell}"] {_BOX}')
        box.screenshot(path=str(shot), animations="disabled")
        return shot

    def _explore(self, path: Path, cell: ExplorerCell) -> ExplorerRun:
        page = self.tab.page
        result = ExplorerRun(cell.index)
        result.expected = [f"{c.name} ({c.widget})" for c in cell.controls]
        try:
            # into view: the notebook renders only the cells in view
            page.evaluate(_SCROLL_JS, cell.index)
            page.wait_for_function(
                _FRESH_JS,
                arg=[cell.index],
                timeout=REDRAW_TIMEOUT_S * 1000,
                polling=100,
            )
        except Exception as exc:
            result.problem = f"the explorer never showed an output: {exc}"
            return result
        state = page.evaluate(_EXPLORER_JS, cell.index)
        result.controls = [f"{c['label']} ({c['kind']})" for c in state["controls"]]
        if [c["kind"] for c in state["controls"]] != [
            c.kind for c in cell.controls
        ]:
            result.problem = (
                f"the page shows the controls {result.controls}; the notebook "
                f"builds {result.expected}"
            )
            return result
        if state["errors"]:
            result.problem = f"error before any move: {state['errors']}"
            return result
        result.before = self._shot(path, cell.index, "0-before")
        signature = state["signature"]
        row = page.locator(f'[data-live-cell="{cell.index}"] {_BOX}').locator(
            ":scope > .widget-hbox > *"
        )
        for position, control in enumerate(cell.controls):
            if position:
                # each control is moved from the explorer's defaults: the moves
                # before it may leave a state where it has nothing to show (a
                # constant row has no eps to see; QK-norm undoes a query's scale)
                try:
                    page.evaluate(_RERUN_JS, cell.index)
                    state = page.wait_for_function(
                        _FRESH_JS,
                        arg=[cell.index],
                        timeout=REDRAW_TIMEOUT_S * 1000,
                        polling=50,
                    ).json_value()
                except Exception as exc:
                    result.problem = (
                        f"running the explorer's cell again: {type(exc).__name__}: "
                        f"{exc}"
                    )
                    return result
                signature = state["signature"]
            element = row.nth(position)
            for action, do, read in self._actions(control, element):
                move = Move(f"{control.name} ({control.widget})", action)
                errors_before = len(self._errors())
                start = time.perf_counter()
                aimed = None
                try:
                    aimed = do()
                    state = page.wait_for_function(
                        _REDRAWN_JS,
                        arg=[cell.index, signature],
                        timeout=REDRAW_TIMEOUT_S * 1000,
                        polling=50,
                    ).json_value()
                    move.changed = state["signature"] != signature
                    move.output = state["output"]
                    move.widget_errors = state["errors"]
                    signature = state["signature"]
                except Exception as exc:
                    move.problem = f"no new output: {type(exc).__name__}: {exc}"
                move.seconds = time.perf_counter() - start
                if aimed is not None:
                    move.value, move.value_ok = read(aimed)
                move.console_errors = self._errors()[errors_before:]
                n = len(result.moves) + 1
                slug = re.sub(
                    r"[^a-z0-9]+", "-", f"{control.name} {action}".lower()
                )
                move.screenshot = self._shot(
                    path, cell.index, f"{n}-{slug.strip('-')}"
                )
                result.moves.append(move)
        return result

    def _actions(
        self, control: Control, element: Any
    ) -> list[tuple[str, Any, Any]]:
        """(what, do(), read(aimed) -> (value shown, reached)) for every move of a
        control: a slider to both ends, each other option of a dropdown, a
        checkbox both ways."""
        if control.kind == "slider":
            handle = element.locator(".noUi-handle")

            def end(key: str, bound: str) -> Any:
                def do() -> str:
                    handle.press(key)  # noUiSlider: End/Home = max/min
                    return handle.get_attribute(bound) or ""

                return do

            readout = element.locator(".widget-readout")

            def read(aimed: str) -> tuple[str, bool]:
                # the readout: a SelectionSlider's noUiSlider value is an index
                now = handle.get_attribute("aria-valuenow") or ""
                return readout.inner_text().strip(), float(now) == float(aimed)

            at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute(
                "aria-valuemax"
            )
            ends = [
                ("to max", end("End", "aria-valuemax"), read),
                ("to min", end("Home", "aria-valuemin"), read),
            ]
            return ends[::-1] if at_max else ends
        if control.kind == "dropdown":
            select = element.locator("select")
            options = select.locator("option").all_inner_texts()
            current = select.evaluate("s => s.selectedIndex")

            def pick(i: int) -> Any:
                def do() -> int:
                    select.select_option(index=i)
                    return i

                return do

            def read_select(aimed: int) -> tuple[str, bool]:
                index = select.evaluate("s => s.selectedIndex")
                return options[index], index == aimed

            return [
                (f"option {text.replace(chr(0xA0), ' ')!r}", pick(i), read_select)
                for i, text in enumerate(options)
                if i != current
            ]
        if control.kind == "checkbox":
            box = element.locator("input[type=checkbox]")

            def toggle() -> bool:
                aimed = not box.is_checked()
                box.click()
                return aimed

            def read_box(aimed: bool) -> tuple[str, bool]:
                checked = box.is_checked()
                return str(checked), checked == aimed

            first = "unchecked" if box.is_checked() else "checked"
            second = "checked" if first == "unchecked" else "unchecked"
            return [(first, toggle, read_box), (second, toggle, read_box)]

        def unsupported() -> None:
            raise NotImplementedError(
                f"the live test has no move for a {control.widget}: add one to "
                "tests/live_support.py"
            )

        return [("move", unsupported, lambda _: ("", False))]
