"""Mail servers (presets and custom): add, change, remove (`server ...`, the API's servers, the
page's "Создать сервер"). A preset cannot be removed; changing one writes an entry of the same
name that replaces it."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.edit import SettingsDocument, Value
from ..config.load import load_presets
from ..config.model import SECURITY_CHOICES, Endpoint, Server
from ..errors import Conflict, Invalid, NotFound
from .workspace import Workspace


@dataclass(frozen=True, slots=True)
class ServerChange:
    """What to set of a server; None leaves a field as it is."""

    imap: Endpoint | None = None
    pop3: Endpoint | None = None
    smtp: Endpoint | None = None
    verify_certificate: bool | None = None
    ssl: bool | None = None  # implicit TLS for IMAP/POP3
    security: str | None = None  # SMTP: none, ssl, starttls
    files_sent_mail: bool | None = None

    def values(self) -> dict[str, Value]:
        if self.security is not None and self.security not in SECURITY_CHOICES:
            raise Invalid(f'security must be one of {", ".join(SECURITY_CHOICES)}, not "{self.security}"')
        values: dict[str, Value] = {"imap": self.imap, "pop3": self.pop3, "smtp": self.smtp,
                                    "verify_certificate": self.verify_certificate, "ssl": self.ssl,
                                    "security": self.security, "files_sent_mail": self.files_sent_mail}
        return {k: v for k, v in values.items() if v is not None}


def endpoint(text: str) -> Endpoint:
    """`host:port` ([v6]:port too); Invalid otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise Invalid(f'"{text}" is not HOST:PORT')
    return Endpoint(host.strip("[]"), int(port))


def add_server(workspace: Workspace, name: str, change: ServerChange) -> Server:
    name = name.strip().lower()
    if not name or any(c.isspace() for c in name):
        raise Invalid(f'"{name}" is not a server name (its address, e.g. mail.example.org)', field="name")
    if workspace.config().server(name) is not None:
        raise Conflict(f'server "{name}" already exists (change it with: server edit {name})', field="name")
    doc = workspace.document()
    doc.append("servers", {"name": name, **change.values()})
    saved = workspace.save(doc)
    server = saved.server(name)
    assert server is not None
    return server


def edit_server(workspace: Workspace, name: str, change: ServerChange) -> Server:
    name = name.strip().lower()
    server = workspace.config().server(name)
    if server is None:
        raise NotFound(f'no server "{name}"')
    doc = workspace.document()
    if _in(doc, name):
        doc.update("servers", doc.index_of("servers", "name", name), change.values())
    else:  # a preset: a full entry of the same name replaces it
        doc.append("servers", {**_entry(server), **change.values()})
    saved = workspace.save(doc)
    changed = saved.server(name)
    assert changed is not None
    return changed


def remove_server(workspace: Workspace, name: str) -> bool:
    """Whether a preset of that name applies again. A server a gateway uses is not removed
    (the save refuses, naming the gateway)."""
    name = name.strip().lower()
    if workspace.config().server(name) is None:
        raise NotFound(f'no server "{name}"')
    doc = workspace.document()
    if not _in(doc, name):
        raise Conflict(f'"{name}" is a preset shipped with prostoy-mail; it cannot be removed')
    doc.remove("servers", doc.index_of("servers", "name", name))
    workspace.save(doc)
    return any(p.name == name for p in load_presets())


def _entry(server: Server) -> dict[str, Value]:
    return {"name": server.name, "imap": server.imap, "pop3": server.pop3, "smtp": server.smtp,
            "verify_certificate": server.verify_certificate, "ssl": server.ssl,
            "security": server.security, "files_sent_mail": server.files_sent_mail}


def _in(doc: SettingsDocument, name: str) -> bool:
    try:
        doc.index_of("servers", "name", name)
    except NotFound:
        return False
    return True
