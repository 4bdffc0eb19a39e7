"""`mailbox ...`: mailboxes on the CRM's own domain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config.load import LOGIN_RE
from ..errors import ProstoyMailError
from ..identifiers import normalise_domain
from ..provisioning import (
    ensure_mail_tasks,
    ensure_mailbox_task,
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
    login = ctx.args.login.lower()
    local, at, domain = login.partition("@")
    if at and normalise_domain(domain) == ctx.config().daemon.domain:
        login = local  # (on the shared domain a mailbox is its login alone)
    elif at and normalise_domain(domain) is not None:
        login = f"{local}@{normalise_domain(domain)}"  # on an own domain of the organisation's
    if not LOGIN_RE.match(local) or (at and normalise_domain(domain) is None):
        raise ProstoyMailError(f'"{ctx.args.login}" is not a valid mailbox login (lower-case letters, digits, ".", '
                               '"_", "-"), nor login@own-domain')
    if ctx.config().mailbox(login) is not None:
        raise ProstoyMailError(f'mailbox "{login}" already exists')
    ctx.check_limit("mailboxes", len(ctx.config().mailboxes))
    doc = ctx.document()
    users = [u.strip() for u in (ctx.args.users or "").split(",") if u.strip()] or None
    if users and ctx.args.owner:
        raise ProstoyMailError("--users is for corporate mailboxes; a personal one (--owner) is its owner's alone")
    doc.append("mailboxes", {"login": login, "owner": ctx.args.owner, "users": users})
    config = ctx.save(doc)
    mailbox = config.mailbox(login)
    assert mailbox is not None
    task = ensure_mailbox_task(config, ctx.store(), mailbox)
    ctx.say(f"mailbox {mailbox.address(config.daemon.domain)} added; its task is {task.id} ({task.ref})")
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
    login = ctx.args.login.lower()
    doc = ctx.document()
    doc.remove("mailboxes", doc.index_of("mailboxes", "login", login))
    ctx.save(doc)
    ctx.say(f"mailbox {login} removed (its task and mail stay in the store)")
    return 0


