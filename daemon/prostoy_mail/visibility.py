"""What a user may see of their organisation: one rule for IMAP folders and the API.

The owner sees everything. An employee sees their personal mailboxes and gateways, the
corporate ones open to them (no `users` list, or they are on it), and every task except other
people's personal tasks and the tasks of mailboxes and gateways closed to them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .config.model import Config, Gateway, Mailbox
from .store.ports import Task, User


def may_see_mailbox(user: User, mailbox: Mailbox) -> bool:
    if mailbox.owner is not None:
        return mailbox.owner == user.login
    return user.is_owner or not mailbox.users or user.login in mailbox.users


def may_see_gateway(user: User, gateway: Gateway) -> bool:
    if gateway.personal_for is not None:
        return user.is_owner or gateway.personal_for == user.login
    return user.is_owner or not gateway.users or user.login in gateway.users


def visible_tasks(user: User, config: Config, tasks: Sequence[Task]) -> list[Task]:
    """Of `tasks` (the user's organisation's; `config` its settings), those the user may see."""
    if user.is_owner:
        return list(tasks)
    others_personal = {t.source_key for t in tasks
                       if t.kind == "personal" and t.source_key and t.source_key != f"personal:{user.login}"}
    private = {f"mailbox:{m.login}" for m in config.mailboxes if m.owner not in (None, user.login)
               or (m.owner is None and m.users and user.login not in m.users)}
    private |= {f"gateway:{g.email}" for g in config.gateways if g.personal_for not in (None, user.login)
                or (g.personal_for is None and g.users and user.login not in g.users)}
    return [t for t in tasks if t.source_key not in private and t.source_key not in others_personal]
