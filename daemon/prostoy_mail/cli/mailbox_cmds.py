"""`mailbox ...`: mailboxes on the CRM's own domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..operations.mailboxes import add_mailbox, remove_mailbox
from ..provisioning import (
    ensure_mail_tasks,
)
from ..views import mailbox_json
from .common import Context

if TYPE_CHECKING:
    from .common import Sub


def register(sub: Sub) -> None:
    mailboxes = sub.add_parser("mailbox", help="mailboxes on the CRM's own domain").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = mailboxes.add_parser("add", help="add a domain mailbox (and its task)")
    p.add_argument("login", help="sales -> sales@<domain>")
    p.add_argument("--owner", metavar="LOGIN", help="a personal mailbox of that user (default: corporate)")
    p.add_argument("--users", metavar="LOGIN,LOGIN", help="corporate: only these users may read it and send as it")
    p.set_defaults(handler=mailbox_add)
    p = mailboxes.add_parser("list", help="list domain mailboxes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=mailbox_list)
    p = mailboxes.add_parser("remove", help="remove a domain mailbox (its task and mail stay)")
    p.add_argument("login")
    p.set_defaults(handler=mailbox_remove)


def mailbox_add(ctx: Context) -> int:
    users = [u.strip() for u in (ctx.args.users or "").split(",") if u.strip()]
    mailbox, task = add_mailbox(ctx, ctx.args.login, ctx.args.owner, users)
    ctx.say(f"mailbox {mailbox.address(ctx.config().daemon.domain)} added; its task is {task.id} ({task.ref})")
    return 0


def mailbox_list(ctx: Context) -> int:
    config = ctx.config()
    store = ctx.store()
    ensure_mail_tasks(config, store)
    rows = []
    for m in config.mailboxes:
        task = store.task_for_source(f"mailbox:{m.login}")
        rows.append(mailbox_json(m, config, task.id if task else None))
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["ADDRESS", "KIND", "OWNER", "TASK"],
                       [(r["address"], r["kind"], r["owner"], r["task"]) for r in rows])
    return 0


def mailbox_remove(ctx: Context) -> int:
    remove_mailbox(ctx, ctx.args.login)
    ctx.say(f"mailbox {ctx.args.login.lower()} removed (its task and mail stay in the store)")
    return 0
