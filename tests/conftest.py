"""Shared fixtures: a throw-away configuration and store, and the installed command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def console_script() -> str:
    """The installed `prostoy-mail` of this interpreter's environment."""
    beside = Path(sys.executable).parent / "prostoy-mail"
    found = str(beside) if beside.exists() else shutil.which("prostoy-mail")
    assert found, "prostoy-mail is not installed: pip install -e .[test]"
    return found


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    config: Path

    def __call__(self, *args: str, input: str | None = None, ok: bool = True) -> Result:
        env = {**os.environ, "PROSTOY_MAIL_CONFIG": str(self.config)}
        proc = subprocess.run([console_script(), *args], capture_output=True, text=True, env=env,
                              input=input if input is not None else "", timeout=60)
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if ok:
            assert proc.returncode == 0, f"prostoy-mail {' '.join(args)} failed: {proc.stderr}{proc.stdout}"
        assert "Traceback" not in proc.stderr, proc.stderr
        return result


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked by its folder: unit, integration or e2e."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in ("unit", "integration", "e2e"):
            item.add_marker(folder)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The command line on a fresh configuration (domain example.test) in tmp_path."""
    config = tmp_path / "prostoy-mail.toml"
    run = Cli(config)
    run("init", "--domain", "example.test")
    return run


@pytest.fixture
def password_file(tmp_path: Path) -> Callable[[str], Path]:
    def make(password: str) -> Path:
        path = tmp_path / f"pw-{abs(hash(password))}"
        path.write_text(password + "\n")
        return path

    return make


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], object]]:
    """Async tests run on uvloop, the daemon's loop in production (a bug once hid on the stdlib loop)."""
    import uvloop

    return {"uvloop": uvloop.new_event_loop}
