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

from ..config.edit import ConfigDocument, SettingsDocument
from ..config.load import config_warnings, load_config
from ..config.model import Config, LimitSettings
from ..config.organisation import OrganisationDocument, organisation_config
from ..errors import ProstoyMailError
from ..operations.workspace import check_limit, validate_settings
from ..store.ports import Organisation
from ..store.sqlite import SqliteStore
from .daemon_link import apply_to_running_daemon

Handler = Callable[["Context"], int]
if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]  # what each module's register() extends


@dataclass
class Context:
    args: argparse.Namespace
    config_path: Path
    _config: Config | None = None  # the configuration file's
    _org_config: Config | None = None  # the working organisation's, when it lives in the store
    _store: SqliteStore | None = None
    out: Any = field(default_factory=lambda: sys.stdout)

    def file_config(self) -> Config:
        """The configuration file: the daemon's settings, and its organisation's."""
        if self._config is None:
            self._config = load_config(self.config_path)
            for warning in config_warnings(self.config_path, self._config):
                print(f"warning: {warning}", file=sys.stderr)
        return self._config

    def config(self) -> Config:
        """The settings of the organisation this command works for: the file's, or (`--org` naming
        one that lives in the store) its entries read like a file, with the file's [daemon]."""
        if getattr(self.args, "org", None) is None:
            return self.file_config()
        organisation = self.organisation()
        if organisation.file_managed:
            return self.file_config()
        if self._org_config is None:
            self._org_config = self.settings_of(organisation)
        return self._org_config

    def settings_of(self, organisation: Organisation) -> Config:
        """Any organisation's settings: the file's, or its entries in the store read like a file."""
        if organisation.file_managed:
            return self.file_config()
        return organisation_config(self.file_config(), organisation.slug, self.store().org_entries(organisation.id))

    def store(self) -> SqliteStore:
        """The store, working for the organisation `--org` names (else the file's)."""
        if self._store is None:
            config = self.file_config()
            location = config.store_location()
            if "://" in location:
                raise ProstoyMailError(f"{self.config_path}: daemon.store: only SQLite stores are supported so far")
            store = SqliteStore(location)
            try:
                store.reconcile_file_organisation(config.organisation.slug, config.organisation.display_name)
                slug = getattr(self.args, "org", None)
                if slug is not None:
                    store.org_id = store.organisation(slug).id
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    def organisation(self) -> Organisation:
        """The organisation this command works for (`--org`, else the one the file declares)."""
        store = self.store()
        assert store.org_id is not None
        return store.organisation_by_id(store.org_id)

    def limits(self, organisation: Organisation) -> LimitSettings:
        """The organisation's limits: its own where it has them, else [limits]."""
        return self.file_config().limits.with_overrides(self.store().limit_overrides(organisation.id))

    def check_limit(self, name: str, count: int) -> None:
        """Refuse one more of `name` when the organisation has `count` of its limit already."""
        check_limit(self, name, count)

    def in_store(self) -> bool:
        """The organisation this command works for lives in the store (not in the file)."""
        return getattr(self.args, "org", None) is not None and not self.organisation().file_managed

    def document(self) -> SettingsDocument:
        """What the command edits: the file, or the store's entries of the organisation."""
        self.config()  # the settings must be valid before we edit them
        organisation = self.organisation()
        if organisation.file_managed:
            return ConfigDocument(self.config_path)
        store = self.store()
        return OrganisationDocument(self.file_config(), organisation.slug, store.org_entries(organisation.id),
                                    lambda sections: store.replace_org_entries(organisation.id, sections))

    def save(self, doc: SettingsDocument) -> Config:
        """Validate the edited settings (also their references into the store, and mailbox logins
        no other organisation has) and write them; then the running daemon applies them."""
        store = self.store()
        organisation = self.organisation()
        saved = doc.save(lambda config: validate_settings(config, organisation, self.file_config(), store,
                                                          str(doc.path)))
        if organisation.file_managed:
            self._config = saved
        else:
            self._org_config = saved
        if not getattr(self.args, "no_reload", False):
            print(apply_to_running_daemon(self.file_config(), store, organisation=organisation), file=sys.stderr)
        return saved

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
