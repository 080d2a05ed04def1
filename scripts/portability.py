"""Strict nbval on every notebook, once per setting of portability/settings.ini.

    python scripts/portability.py [--only NAME ...] [--junit-dir DIR] -- ARGS...

A stored output must be what any x86-64 processor prints. One machine cannot be
another processor, but it can run the kernels another processor would pick: each
section of ``portability/settings.ini`` is a set of environment variables (torch's
ATen kernel width, MKL's code path, oneDNN's ISA, NumPy's dispatch) that emulates
one. This script checks that a setting really reaches torch (it asks a fresh
interpreter), runs nbval with it, and prints one line per setting: cells compared,
cells that differ, seconds. A setting whose ``requires`` flags this processor lacks
is skipped with a printed line. Exit status 1 if any cell differs under any setting.
"""

from __future__ import annotations

import argparse
import configparser
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "portability" / "settings.ini"


@dataclass(frozen=True)
class Setting:
    name: str
    requires: tuple[str, ...]
    env: dict[str, str]


def read_settings(path: Path = SETTINGS) -> list[Setting]:
    """The sections of ``settings.ini``, in file order (variable names keep their
    case)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # environment variables are case-sensitive
    parser.read(path, encoding="utf-8")
    settings = []
    for name in parser.sections():
        items = dict(parser[name])
        requires = tuple(items.pop("requires", "").split())
        settings.append(Setting(name, requires, items))
    return settings


def cpu_flags() -> set[str]:
    """The flags of the first processor in /proc/cpuinfo (empty where there is
    none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def environment(setting: Setting) -> dict[str, str]:
    """This process's environment with the setting's variables; an empty value
    unsets."""
    env = dict(os.environ)
    for key, value in setting.env.items():
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return env


def torch_capability(env: dict[str, str]) -> str:
    """The ATen CPU capability a fresh interpreter reports under ``env``."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def count_cells(junit: Path) -> tuple[int, int]:
    """(cells compared, cells that failed or errored) from a pytest JUnit report."""
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    return tests, bad


def run_setting(
    setting: Setting, pytest_args: list[str], junit: Path
) -> tuple[int, int, float]:
    env = environment(setting)
    wanted = setting.env.get("ATEN_CPU_CAPABILITY", "").upper()
    if wanted:
        got = torch_capability(env)
        if got != wanted:
            raise SystemExit(
                f"{setting.name}: torch runs {got} kernels, not {wanted}"
            )
    cmd = [sys.executable, "-m", "pytest", *pytest_args, f"--junitxml={junit}"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    elapsed = time.perf_counter() - start
    tests, bad = count_cells(junit)
    return tests, bad, elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="settings to run")
    parser.add_argument(
        "--junit-dir", type=Path, default=ROOT / "_build" / "portability"
    )
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    pytest_args = [a for a in args.pytest_args if a != "--"] or ["--nbval", "book"]
    args.junit_dir.mkdir(parents=True, exist_ok=True)
    flags = cpu_flags()
    lines, failed = [], False
    for setting in read_settings():
        if args.only is not None and setting.name not in args.only:
            continue
        missing = [f for f in setting.requires if f not in flags]
        if missing:
            lines.append(
                f"{setting.name:8s} skipped: this processor lacks "
                f"{' '.join(missing)}"
            )
            print(lines[-1], flush=True)
            continue
        print(f"=== portability: setting {setting.name} ===", flush=True)
        junit = args.junit_dir / f"{setting.name}.xml"
        tests, bad, elapsed = run_setting(setting, pytest_args, junit)
        failed |= bad > 0 or tests == 0
        verdict = "ok" if bad == 0 and tests > 0 else "DIFFERS"
        lines.append(
            f"{setting.name:8s} {verdict:7s} {tests} cells compared, {bad} differ, "
            f"{elapsed:.0f} s"
        )
    print("\nportability summary (strict nbval per arithmetic setting):")
    for line in lines:
        print("  " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
