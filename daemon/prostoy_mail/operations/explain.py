"""Where a message would land, and why (`rule explain`, the API's rules/explain, the page's dry
run on a pasted message): the routing of the intake, storing nothing."""

from __future__ import annotations

from typing import Any

from ..config.model import Config
from ..errors import NotFound
from ..intake import REPLY_TOKEN_SECRET, explain
from ..mail.parse import parse_message
from ..mail.tokens import TaskTokens
from ..provisioning import build_routing_table, gateway_source_key, mailbox_source_key
from ..routing.task_title import task_title
from ..store.roles import ExplainStore


def explain_message(config: Config, store: ExplainStore, org_id: int, raw: bytes, mailbox: str | None = None,
                    gateway: str | None = None) -> dict[str, Any]:
    """As `rule explain --json` shows it. `mailbox`/`gateway`: as if it came through it; else
    through the domain mailboxes it is addressed to. (The store acting for `org_id`.)"""
    if mailbox and config.mailbox(mailbox.lower()) is None:
        raise NotFound(f'no mailbox "{mailbox}"')
    if gateway and config.gateway(gateway.lower()) is None:
        raise NotFound(f'no gateway "{gateway}"')
    table = build_routing_table(config, store, org_id=org_id)  # (the organisation's alone)
    tokens = TaskTokens(store.secret(REPLY_TOKEN_SECRET))
    if mailbox:
        scopes = [mailbox_source_key(mailbox.lower())]
    elif gateway:
        scopes = [gateway_source_key(gateway.lower())]
    else:  # the domain mailboxes the message is addressed to
        parsed = parse_message(raw)
        suffix = "@" + config.daemon.domain
        logins = [addr[: -len(suffix)].split("+")[0] for addr in (*parsed.to, *parsed.cc) if addr.endswith(suffix)]
        scopes = [mailbox_source_key(login) for login in dict.fromkeys(logins) if config.mailbox(login)]
    result = explain(store, tokens, table, raw, scopes)
    tasks = {t.task_id: store.get_task(t.task_id) for t in result.decision.targets}
    projects = {p.id: p.name for p in store.list_projects()}
    title = task_title(result.parsed.subject)
    opens = [{"rule": n.rule, "project": projects.get(n.project_id, str(n.project_id)), "title": title,
              "assign_to": n.assign_to} for n in result.decision.new_tasks]
    joined_by = result.decision.targets[0].routed_by[0] if result.decision.reply else None
    lands_in = [{"task": t.task_id, "ref": tasks[t.task_id].ref, "routed_by": list(t.routed_by),
                 "assign_to": t.assign_to} for t in result.decision.targets]
    data: dict[str, Any] = {
        "subject": result.parsed.subject, "from": result.parsed.from_addr, "message_id": result.parsed.message_id,
        "through": scopes, "reply_to_task": result.reply_task_id, "joined_by": joined_by,
        "rules": [{"rule": c.rule, "scope": c.scope, "matched": c.matched, "why": list(c.why)}
                  for c in result.decision.checks],
        "ignored_by": result.decision.ignored_by, "delete_after": result.decision.delete_after,
        "lands_in": lands_in, "opens": opens,
        "bounce": result.parsed.bounce, "auto_reply": result.parsed.auto_reply,
    }
    return data
