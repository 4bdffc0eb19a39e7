"""The settings of an organisation that lives in the store, read like a configuration file.

Its entries (mailboxes, rules; kept by the store as the file would hold them, as TOML gives
them) are read with the file's [daemon] section by the same code as the file
(load.config_from_data): one set of checks and one `Config` shape for every organisation.
`OrganisationDocument` lets the command line's edits (made for the file through
`ConfigDocument`) change them the same way, on the entries themselves.

(Rendered to TOML text and parsed again, as before, a change of one rule among 100 took
6 ms; from the entries, see bench/api_requests.py.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from ..errors import ConfigError, NotFound, Problem, ProstoyMailError
from .edit import Value
from .load import config_from_data
from .model import Config, Endpoint, OrganisationSettings

SECTIONS = ("servers", "mailboxes", "gateways", "rules")
Entries = Mapping[str, list[dict[str, Any]]]


def organisation_data(file_config: Config, entries: Entries) -> dict[str, Any]:
    """The settings as TOML would give them: the file's [daemon] values and the entries."""
    daemon = file_config.daemon
    data: dict[str, Any] = {"daemon": {key: value for key, value in (
        ("domain", daemon.domain), ("store", daemon.store), ("hostname", daemon.hostname),
        ("mail_project", daemon.mail_project)) if value is not None}}
    data.update((section, entries[section]) for section in SECTIONS if entries.get(section))
    return data


def display_name(slug: str) -> str:
    return f"organisation {slug}"


def organisation_config(file_config: Config, slug: str, entries: Entries,
                        parsed: Mapping[bytes, Config] | None = None,
                        keep: dict[bytes, Config] | None = None) -> Config:
    """ConfigError names the organisation and the entry's key (`organisation acme: rules[2].task: ...`).
    `parsed`: settings read before, by what they were read from: an organisation whose entries
    did not change is not read again (of a reload with 1,000 organisations, 0.5 s was reading);
    `keep` collects what this build read or reused, for the next."""
    data = organisation_data(file_config, entries)
    key = orjson.dumps([slug, file_config.fetch.private_servers, data], option=orjson.OPT_SORT_KEYS)
    config = parsed.get(key) if parsed is not None else None
    if config is None:
        config = hosted(config_from_data(data, file_config.path, display_name(slug),
                                         hashlib.sha256(key).hexdigest()), slug, file_config.fetch.private_servers)
    if keep is not None:
        keep[key] = config
    return config


def hosted(config: Config, slug: str, private_servers: bool) -> Config:
    """The settings of organisation `slug`, which lives in the store: the provider's customer.
    They may not name the daemon's files (a password_file would read any file the daemon can),
    and its servers are connected to on public addresses only, unless the file's [fetch]
    private_servers."""
    name = display_name(slug)
    problems = [Problem(name, f"gateways[{i}].{key}", "an organisation in the store cannot use the daemon's files:"
                        " give the password itself")
                for i, gateway in enumerate(config.gateways, 1)
                for key in ("password_file", "smtp_password_file") if getattr(gateway, key) is not None]
    own_servers = [server for server in config.servers if not server.preset]  # (in the entries' order)
    problems += [Problem(name, f"servers[{i}].ca_file", "an organisation in the store cannot use the daemon's files")
                 for i, server in enumerate(own_servers, 1) if server.ca_file is not None]
    if problems:
        raise ConfigError(problems)
    config = replace(config, organisation=OrganisationSettings(slug=slug))
    if private_servers:
        return config
    return replace(config, servers=tuple(replace(server, public_only=True) for server in config.servers))


class OrganisationDocument:
    """The organisation's entries as a document the command line edits like the file (the
    methods of ConfigDocument the operations use, on the entries themselves); `save` checks the
    whole and hands the entries to `write` (the store), instead of writing a file."""

    def __init__(self, file_config: Config, slug: str, entries: Entries,
                 write: Callable[[dict[str, list[dict[str, Any]]]], None],
                 parsed: dict[bytes, Config] | None = None) -> None:
        self.path = Path(display_name(slug))
        self.sections = {section: [dict(entry) for entry in entries.get(section, [])] for section in SECTIONS}
        self.file_config = file_config
        self.slug = slug
        self.write = write
        self.parsed = parsed  # (what save() reads is kept there too)

    def _section(self, section: str) -> list[dict[str, Any]]:
        if section not in self.sections:
            raise ProstoyMailError(f"{self.path}: an organisation in the store has no [[{section}]]")
        return self.sections[section]

    def entries(self, section: str) -> list[dict[str, Any]]:
        return [dict(entry) for entry in self._section(section)]

    def index_of(self, section: str, key: str, wanted: str) -> int:
        for index, entry in enumerate(self._section(section)):
            if str(entry.get(key, "")).lower() == wanted.lower():
                return index
        raise NotFound(f'{self.path}: no [[{section}]] with {key} = "{wanted}"')

    def append(self, section: str, values: Mapping[str, Value]) -> None:
        self._section(section).append({key: _plain(value) for key, value in values.items() if value is not None})

    def update(self, section: str, index: int, values: Mapping[str, Value]) -> None:
        entry = self._section(section)[index]
        for key, value in values.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = _plain(value)

    def remove(self, section: str, index: int) -> None:
        del self._section(section)[index]

    def move(self, section: str, index: int, new_index: int) -> None:
        entries = self._section(section)
        entries.insert(new_index, entries.pop(index))

    def save(self, validate: Callable[[Config], None] | None = None) -> Config:
        config = organisation_config(self.file_config, self.slug, self.sections, self.parsed, self.parsed)
        if validate is not None:
            validate(config)
        self.write({section: entries for section, entries in self.sections.items() if entries})
        return config


def _plain(value: Value) -> Any:
    """As TOML gives it: an endpoint is a table of host and port."""
    if isinstance(value, Endpoint):
        return {"host": value.host, "port": value.port}
    return list(value) if isinstance(value, list) else value
