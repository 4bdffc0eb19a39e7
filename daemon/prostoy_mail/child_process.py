"""How the daemon starts its helper processes (SMTP workers, the store's sync process)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def module_command(module: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run `python -m module args` with this interpreter
    and this copy of prostoy_mail importable (also when it is not installed, as in a checkout)."""
    package_parent = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p))
    return [sys.executable, "-m", module, *args], env
