"""`quarantine list|retry|drop`: fetched messages that could not be stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..operations.quarantine import retry_quarantined
from .common import Context

if TYPE_CHECKING:
    from .common import Sub


def register(sub: Sub) -> None:
    quarantine = sub.add_parser("quarantine", help="fetched messages that could not be stored").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = quarantine.add_parser("list", help="list quarantined messages")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=quarantine_list)
    p = quarantine.add_parser("retry", help="store and route a quarantined message now")
    p.add_argument("id", type=int)
    p.set_defaults(handler=quarantine_retry)
    p = quarantine.add_parser("drop", help="forget a quarantined message (it stays on its server)")
    p.add_argument("id", type=int)
    p.set_defaults(handler=quarantine_drop)


def quarantine_list(ctx: Context) -> int:
    items = ctx.store().list_quarantine()
    rows = [{"id": q.id, "gateway": q.gateway, "folder": q.folder, "uid": q.uid, "size": q.size, "error": q.error,
             "attempts": q.attempts, "created_at": q.created_at} for q in items]
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["ID", "GATEWAY", "UID", "SIZE", "ATTEMPTS", "ERROR"],
                       [(r["id"], r["gateway"], r["uid"], r["size"], r["attempts"], r["error"]) for r in rows])
    return 0


def quarantine_retry(ctx: Context) -> int:
    message, tasks = retry_quarantined(ctx.store(), ctx.config(), ctx.organisation().id, ctx.args.id)
    ctx.say(f"quarantined message {ctx.args.id} stored as message {message}; "
            f"tasks {', '.join(str(t) for t in tasks) or 'none'}")
    return 0


def quarantine_drop(ctx: Context) -> int:
    ctx.store().drop_quarantined(ctx.args.id)
    ctx.say(f"quarantined message {ctx.args.id} dropped")
    return 0
