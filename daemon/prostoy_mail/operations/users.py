"""An organisation's users: add (a login unique across the installation), remove, set a
password (`user ...`, the API's users)."""

from __future__ import annotations

from ..config.load import LOGIN_RE
from ..config.model import Config
from ..errors import Conflict, Invalid
from ..store.ports import User
from .workspace import Workspace, check_limit


def add_user(workspace: Workspace, login: str, name: str, password_hash: str | None, is_owner: bool) -> User:
    if not LOGIN_RE.match(login):
        raise Invalid(f'"{login}" is not a valid login (lower-case letters, digits, ".", "_", "-")', field="login")
    store = workspace.store()
    check_limit(workspace, "users", store.counts(workspace.organisation().id)["users"])
    return store.add_user(login, name or login, password_hash, is_owner)


def users_named_in(settings: Config, login: str) -> list[str]:
    """Where the organisation's settings name the user (it cannot go while they do)."""
    uses = [f"mailbox {m.login}" for m in settings.mailboxes if m.owner == login or login in m.users]
    uses += [f"gateway {g.email}" for g in settings.gateways if g.personal_for == login or login in g.users]
    uses += [f"rule {r.name}" for r in settings.rules if r.assign_to == login]
    return uses


def remove_user(workspace: Workspace, login: str) -> None:
    uses = users_named_in(workspace.config(), login)
    if uses:
        raise Conflict(f'user "{login}" is still named in the configuration: {", ".join(uses)}')
    workspace.store().remove_user(login)
