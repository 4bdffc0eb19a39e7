"""The settings of an organisation that lives in the store, read like a configuration file.

Its entries (mailboxes, rules; kept by the store as the file would hold them) are rendered
with the file's [daemon] section into TOML and parsed by the same code as the file: one set
of checks and one `Config` shape for every organisation. `OrganisationDocument` lets the
command line's edits (made for the file through `ConfigDocument`) change them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import ConfigError, Problem
from .edit import ConfigDocument
from .load import parse_config
from .model import Config, OrganisationSettings

SECTIONS = ("servers", "mailboxes", "gateways", "rules")


def organisation_text(file_config: Config, entries: Mapping[str, list[dict[str, Any]]]) -> str:
    """As a file would hold it: `[[section]]` headers (never inline arrays), so that the
    command line's edits work on it as on the file."""
    daemon = file_config.daemon
    blocks = [_table("[daemon]", {"domain": daemon.domain, "store": daemon.store, "hostname": daemon.hostname,
                                  "mail_project": daemon.mail_project})]
    blocks += [_table(f"[[{section}]]", entry) for section in SECTIONS for entry in entries.get(section, [])]
    return "\n".join(blocks)


def _table(header: str, values: Mapping[str, Any]) -> str:
    return header + "\n" + "".join(f"{key} = {_value(value)}\n" for key, value in values.items())


def _value(value: Any) -> str:
    if isinstance(value, dict):  # (an endpoint as {host, port}: inline, inside its entry)
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def display_name(slug: str) -> str:
    return f"organisation {slug}"


def organisation_config(file_config: Config, slug: str, entries: Mapping[str, list[dict[str, Any]]],
                        parsed: Mapping[str, Config] | None = None, keep: dict[str, Config] | None = None) -> Config:
    """ConfigError names the organisation and the entry's key (`organisation acme: rules[2].task: ...`).
    `parsed`: settings parsed before, by their text: an organisation whose entries did not change
    is not parsed again (of a reload with 1,000 organisations, 0.5 s was parsing); `keep`
    collects what this build parsed or reused, for the next."""
    text = organisation_text(file_config, entries)
    key = f"{slug}\n{file_config.fetch.private_servers}\n{text}"
    config = parsed.get(key) if parsed is not None else None
    if config is None:
        config = hosted(parse_config(text, file_config.path, display_name(slug)), slug,
                        file_config.fetch.private_servers)
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


class OrganisationDocument(ConfigDocument):
    """The organisation's entries as a document the command line edits like the file; `save`
    checks the whole and hands the entries to `write` (the store), instead of writing a file."""

    def __init__(self, file_config: Config, slug: str, entries: Mapping[str, list[dict[str, Any]]],
                 write: Callable[[dict[str, list[dict[str, Any]]]], None]) -> None:
        self.path = Path(display_name(slug))
        self.text = organisation_text(file_config, entries)
        self.file_config = file_config
        self.slug = slug
        self.write = write

    def save(self, validate: Callable[[Config], None] | None = None) -> Config:
        config = hosted(parse_config(self.text, self.file_config.path, display_name(self.slug)), self.slug,
                        self.file_config.fetch.private_servers)
        if validate is not None:
            validate(config)
        self.write({section: self.entries(section) for section in SECTIONS if self.entries(section)})
        return config
