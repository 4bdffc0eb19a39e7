"""Gateways (external mailboxes): add, change, remove (the command line's `gateway ...`, the
API's gateways, the page's "Создать шлюз" and "Редактировать").

A stored password is never sent to a new host: changing a gateway's server or login needs its
password again (when the password is kept in the settings; a `password_file` is the file
organisation's admin's own)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ..config.edit import Value
from ..config.model import Gateway
from ..errors import Conflict, Invalid, NotFound
from ..provisioning import ensure_gateway_task
from ..store.ports import Task
from ..views import GATEWAY_FLAGS
from .workspace import Workspace, check_limit


@dataclass(frozen=True, slots=True)
class GatewayChange:
    """What to set of a gateway; None leaves a field as it is."""

    server: str | None = None
    protocol: str | None = None
    login: str | None = None
    password: str | None = None  # the password itself (write-only: never shown)
    password_file: str | None = None  # (the file's organisation: a file holding it, kept as its path)
    smtp_login: str | None = None  # a different login for SMTP (with its password)
    smtp_password: str | None = None
    smtp_password_file: str | None = None
    same_smtp_login: bool = False  # the same login and password for SMTP again
    personal_for: str | None = None  # "" clears it
    flags: dict[str, bool] = field(default_factory=dict)  # forwarding, keep_on_server, ... (views.GATEWAY_FLAGS)
    import_since: str | None = None  # YYYY-MM-DD

    def values(self) -> dict[str, Value]:
        values: dict[str, Value] = {}
        if self.server:
            values["server"] = self.server.strip().lower()
        if self.protocol:
            values["protocol"] = self.protocol
        if self.login:
            values["login"] = self.login
        if self.password_file is not None:
            values.update(password_file=self.password_file, password=None)
        elif self.password is not None:
            if not self.password:
                raise Invalid("an empty password is not allowed", field="password")
            values.update(password=self.password, password_file=None)
        if self.smtp_login:
            values["smtp_login"] = self.smtp_login
            if self.smtp_password_file is not None:
                values.update(smtp_password_file=self.smtp_password_file, smtp_password=None)
            elif self.smtp_password:
                values.update(smtp_password=self.smtp_password, smtp_password_file=None)
            else:
                raise Invalid("a different SMTP login needs its password", field="smtp_password")
        if self.same_smtp_login:
            values.update(smtp_login=None, smtp_password=None, smtp_password_file=None)
        if self.personal_for is not None:
            values["personal_for"] = self.personal_for or None
        for flag, on in self.flags.items():
            if flag not in GATEWAY_FLAGS:
                raise Invalid(f'"{flag}" is not an option of a gateway ({", ".join(GATEWAY_FLAGS)})')
            values[flag] = on
        if self.import_since:
            try:
                date.fromisoformat(self.import_since)
            except ValueError:
                raise Invalid(f'import_since: "{self.import_since}" is not a date like 2026-01-31',
                              field="import_since") from None
            values["import_since"] = self.import_since
        return values


def add_gateway(workspace: Workspace, email: str, change: GatewayChange) -> tuple[Gateway, Task]:
    """The gateway added, with its task (made now)."""
    email = email.strip().lower()
    config = workspace.config()
    if config.gateway(email) is not None:
        raise Conflict(f'gateway "{email}" already exists (change it with: gateway edit {email})', field="email")
    if not change.server:
        raise Invalid("a gateway needs a server", field="server")
    if change.password is None and change.password_file is None:
        raise Invalid("a gateway needs a password", field="password")
    check_limit(workspace, "gateways", len(config.gateways))
    doc = workspace.document()
    entry: dict[str, Value] = {"email": email, "server": None, "protocol": "imap", "login": email,
                               "password": None, "password_file": None, "smtp_login": None,
                               "smtp_password": None, "smtp_password_file": None, "personal_for": None,
                               "forwarding": True, "keep_on_server": True, "upload_sent": False,
                               "mark_read": False, "delete_on_server_when_deleted": False}
    doc.append("gateways", {**entry, **change.values()})  # in this order; keys left None are not written
    saved = workspace.save(doc)
    gateway = saved.gateway(email)
    assert gateway is not None
    return gateway, ensure_gateway_task(saved, workspace.store(), gateway)


def edit_gateway(workspace: Workspace, email: str, change: GatewayChange) -> Gateway:
    email = email.strip().lower()
    current = workspace.config().gateway(email)
    if current is None:
        raise NotFound(f'no gateway "{email}"')
    moving = ((change.server is not None and change.server.strip().lower() != current.server)
              or (change.login is not None and change.login != current.login))
    if moving and current.password is not None and change.password is None and change.password_file is None:
        raise Invalid("a new server or login needs the password again (a stored password is never sent to a "
                      "new host)", field="password")
    doc = workspace.document()
    doc.update("gateways", doc.index_of("gateways", "email", email), change.values())
    saved = workspace.save(doc)
    gateway = saved.gateway(email)
    assert gateway is not None
    ensure_gateway_task(saved, workspace.store(), gateway)
    return gateway


def remove_gateway(workspace: Workspace, email: str) -> None:
    """Its task and mail stay."""
    doc = workspace.document()
    doc.remove("gateways", doc.index_of("gateways", "email", email.strip().lower()))
    workspace.save(doc)
