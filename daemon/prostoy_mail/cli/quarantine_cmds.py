"""`quarantine list|retry|drop`: fetched messages that could not be stored."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ProstoyMailError
from ..intake import REPLY_TOKEN_SECRET, Inbound, accept_now
from ..mail.tokens import TaskTokens
from ..provisioning import build_routing_table, gateway_source_key
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
    config, store = ctx.config(), ctx.store()
    item, raw = store.quarantined_raw(ctx.args.id)
    if config.gateway(item.gateway) is None:
        raise ProstoyMailError(f'gateway "{item.gateway}" is no longer configured')
    table = build_routing_table(config, store, org_id=ctx.organisation().id)  # (the organisation's alone)
    tokens = TaskTokens(store.secret(REPLY_TOKEN_SECRET))
    inbound = Inbound(raw=raw, source=item.gateway, scopes=(gateway_source_key(item.gateway),), peer="quarantine")
    with store.transaction():
        accepted = accept_now(store, tokens, table, inbound)
        assert accepted.message_db_id is not None
        store.release_quarantined(item.id, accepted.message_db_id)
    ctx.say(f"quarantined message {item.id} stored as message {accepted.message_db_id}; "
            f"tasks {', '.join(str(t.task_id) for t in accepted.decision.targets) or 'none'}")
    return 0


def quarantine_drop(ctx: Context) -> int:
    ctx.store().drop_quarantined(ctx.args.id)
    ctx.say(f"quarantined message {ctx.args.id} dropped")
    return 0
