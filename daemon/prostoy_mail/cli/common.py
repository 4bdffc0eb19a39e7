"""What every command shares: the configuration and store it works on, output, passwords."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.edit import ConfigDocument
from ..config.load import config_warnings, load_config
from ..config.model import Config
from ..errors import ConfigError, ProstoyMailError
from ..provisioning import check_references
from ..store.sqlite import SqliteStore
from .daemon_link import apply_to_running_daemon

Handler = Callable[["Context"], int]
if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]  # what each module's register() extends


@dataclass
class Context:
    args: argparse.Namespace
    config_path: Path
    _config: Config | None = None
    _store: SqliteStore | None = None
    out: Any = field(default_factory=lambda: sys.stdout)

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
            for warning in config_warnings(self.config_path, self._config):
                print(f"warning: {warning}", file=sys.stderr)
        return self._config

    def store(self) -> SqliteStore:
        if self._store is None:
            location = self.config().store_location()
            if "://" in location:
                raise ProstoyMailError(f"{self.config_path}: daemon.store: only SQLite stores are supported so far")
            self._store = SqliteStore(location)
        return self._store

    def document(self) -> ConfigDocument:
        self.config()  # the file must be valid before we edit it
        return ConfigDocument(self.config_path)

    def save(self, doc: ConfigDocument) -> Config:
        """Validate the edited file (also its references into the store) and write it."""
        store = self.store()

        def references(config: Config) -> None:
            problems = check_references(config, store, str(self.config_path))
            if problems:
                raise ConfigError(problems)

        self._config = doc.save(references)
        if not getattr(self.args, "no_reload", False):
            print(apply_to_running_daemon(self._config, store), file=sys.stderr)
        return self._config

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def emit_json(self, value: Any) -> None:
        json.dump(value, self.out, ensure_ascii=False, indent=2)
        self.out.write("\n")

    def emit_table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        cells = [[_cell(v) for v in row] for row in rows]
        if not cells:
            print("(none)", file=self.out)
            return
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        for row in [list(headers), *cells]:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=self.out)

    def say(self, text: str) -> None:
        print(text, file=self.out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def read_password(file: str | None, what: str, *, required: bool) -> str | None:
    """A password from a file ("-" is standard input) or a prompt; never from the command line."""
    if file is not None:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text("utf-8")
        except OSError as exc:
            raise ProstoyMailError(f"{file}: cannot read the password: {exc.strerror}") from None
        password = text.rstrip("\r\n")
        if not password:
            raise ProstoyMailError(f"{file}: the password file is empty")
        return password
    if sys.stdin.isatty():
        first = getpass.getpass(f"{what}: ")
        if getpass.getpass(f"{what} (again): ") != first:
            raise ProstoyMailError("the passwords do not match")
        if not first:
            raise ProstoyMailError("an empty password is not allowed")
        return first
    if required:
        raise ProstoyMailError(f"{what} needed: give --password-file FILE (or - to read standard input)")
    return None
