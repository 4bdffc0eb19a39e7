"""Which folders a user sees, and their names. Pure: from the configuration and the tasks.

- `INBOX`: the user's personal domain mailbox (further personal mailboxes by their login);
- `Sent` (SPECIAL-USE \\Sent): what the user sent through SMTP submission;
- each corporate domain mailbox the user may read (its `users`, or every user), by its login;
- `Tasks/<Project>/<Task>`: every task the user may see: all of them for the organisation's
  owner; for everyone else all but the personal tasks of others and the tasks of mailboxes
  and gateways personal to others, or corporate with a `users` list that leaves them out.
  A "/" inside a title becomes "∕" (it would nest).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..config.model import Config
from ..store.ports import Task, User
from ..visibility import visible_tasks

TASKS = "Tasks"
SENT = "Sent"


@dataclass(frozen=True, slots=True)
class Folder:
    name: str  # as the client sees it (Unicode; encoded as modified UTF-7 on the wire)
    key: str  # "mailbox:<login>", "task:<id>" or "sent:<login>"
    writable: bool = True
    special_use: str = ""  # RFC 6154: "\\Sent" marks the folder clients file sent mail in


def _part(text: str) -> str:
    return text.replace("/", "∕").strip() or "-"


def folders_for(user: User, config: Config, tasks: Sequence[Task], *, mailboxes: bool = True) -> list[Folder]:
    """`tasks`: the user's organisation's; `mailboxes`: whether the configuration's domain
    mailboxes are the user's organisation's (those of the organisation the file declares)."""
    folders: list[Folder] = []
    own_mailboxes = config.mailboxes if mailboxes else ()
    personal = [m for m in own_mailboxes if m.owner == user.login]
    for i, mailbox in enumerate(personal):
        folders.append(Folder("INBOX" if i == 0 else mailbox.login, f"mailbox:{mailbox.login}"))
    if not personal:
        folders.append(Folder("INBOX", f"none:{user.login}", writable=False))
    folders.append(Folder(SENT, f"sent:{user.login}", special_use="\\Sent"))
    folders += [Folder(m.login, f"mailbox:{m.login}") for m in own_mailboxes
                if m.owner is None and (user.is_owner or not m.users or user.login in m.users)]
    visible = visible_tasks(user, config, tasks)
    names = Counter((_part(t.project), _part(t.title)) for t in visible)
    for task in visible:
        project, title = _part(task.project), _part(task.title)
        if names[(project, title)] > 1:
            title = f"{title} #{task.id}"
        folders.append(Folder(f"{TASKS}/{project}/{title}", f"task:{task.id}"))
    return folders
