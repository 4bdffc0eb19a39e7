"""Domain mailboxes: add one (the page's "Prostoy.biz" button), remove one (`mailbox ...`)."""

from __future__ import annotations

from collections.abc import Sequence

from ..config.load import LOGIN_RE
from ..config.model import Mailbox
from ..errors import Conflict, Invalid
from ..identifiers import normalise_domain
from ..provisioning import ensure_mailbox_task
from ..store.ports import Task
from .workspace import Workspace, check_limit


def mailbox_login(text: str, shared_domain: str) -> str:
    """A mailbox's login from what was typed: `sales`, `sales@<shared domain>` (the same) or
    `sales@own.example` (on an own domain of the organisation's). Invalid otherwise."""
    login = text.strip().lower()
    local, at, domain = login.partition("@")
    normalised = normalise_domain(domain) if at else None
    if not LOGIN_RE.match(local) or (at and normalised is None):
        raise Invalid(f'"{text}" is not a valid mailbox login (lower-case letters, digits, ".", "_", "-"), '
                      "nor login@own-domain", field="login")
    if normalised is None or normalised == shared_domain:
        return local  # (on the shared domain a mailbox is its login alone)
    return f"{local}@{normalised}"


def add_mailbox(workspace: Workspace, text: str, owner: str | None = None,
                users: Sequence[str] = ()) -> tuple[Mailbox, Task]:
    """The mailbox added, with its task (made now: its mail has a place from the first message)."""
    config = workspace.config()
    login = mailbox_login(text, config.daemon.domain)
    if config.mailbox(login) is not None:
        raise Conflict(f'mailbox "{login}" already exists', field="login")
    if users and owner:
        raise Invalid("users is for corporate mailboxes; a personal one (with an owner) is its owner's alone")
    check_limit(workspace, "mailboxes", len(config.mailboxes))
    doc = workspace.document()
    doc.append("mailboxes", {"login": login, "owner": owner or None, "users": list(users) or None})
    saved = workspace.save(doc)
    mailbox = saved.mailbox(login)
    assert mailbox is not None
    return mailbox, ensure_mailbox_task(saved, workspace.store(), mailbox)


def remove_mailbox(workspace: Workspace, login: str) -> None:
    """Its task and mail stay (a mailbox added again finds them)."""
    doc = workspace.document()
    doc.remove("mailboxes", doc.index_of("mailboxes", "login", login.strip().lower()))
    workspace.save(doc)
