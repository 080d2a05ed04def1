"""The variables of ``numerics.env``: the same arithmetic on every x86-64 machine.

The Makefile exports them to every command; the scripts that start notebook kernels
also set them themselves, so that running a script by hand gives the same digits.
"""

from __future__ import annotations

from pathlib import Path

NUMERICS_ENV = Path(__file__).resolve().parent.parent / "numerics.env"


def numerics_env() -> dict[str, str]:
    """``KEY=value`` lines of ``numerics.env`` (comments skipped), as a dict."""
    env = {}
    for line in NUMERICS_ENV.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            env[key.strip()] = value.strip()
    return env
