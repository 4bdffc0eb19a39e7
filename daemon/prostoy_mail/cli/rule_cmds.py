"""`rule ...`: routing rules, and `rule explain`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, ProstoyMailError
from ..intake import REPLY_TOKEN_SECRET, explain
from ..mail.parse import parse_message
from ..mail.tokens import TaskTokens
from ..operations.rules import RuleChange, add_rule, edit_rule, move_rule, remove_rule
from ..provisioning import (
    build_routing_table,
    gateway_source_key,
    mailbox_source_key,
)
from ..routing.task_title import task_title
from ..views import rule_json
from .common import Context

if TYPE_CHECKING:
    from .common import Sub
BOOL = argparse.BooleanOptionalAction


def register(sub: Sub) -> None:
    rules = sub.add_parser("rule", help="routing rules, checked in their order").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    for action, handler in (("add", rule_add), ("edit", rule_edit)):
        p = rules.add_parser(action, help=f"{action} a rule")
        p.add_argument("name")
        scope = p.add_mutually_exclusive_group()
        scope.add_argument("--gateway", metavar="EMAIL", help="a rule of this gateway")
        scope.add_argument("--mailbox", metavar="LOGIN", help="a rule of this domain mailbox")
        if action == "edit":
            scope.add_argument("--global", dest="make_global", action="store_true", help="make it a global rule")
            p.add_argument("--rename", metavar="NEW_NAME")
        p.add_argument("--subject", metavar="S", help='comma-separated words, e.g. "счёт, invoice"')
        p.add_argument("--senders", metavar="S", help='comma-separated, e.g. "@client.ru, buh@"')
        p.add_argument("--recipients", metavar="S")
        what = p.add_mutually_exclusive_group(required=action == "add")
        what.add_argument("--task", metavar="TASK", help='comment on this task: "Project/Title" or a task id')
        what.add_argument("--new-task", metavar="PROJECT",
                          help="open a task in this project for each message (its conversation stays there)")
        what.add_argument("--ignore", action="store_true", help="the message goes to no task")
        p.add_argument("--assign-to", metavar="LOGIN", help="assign the task (a new one: when opened) to this user")
        p.add_argument("--delete-after", action=BOOL, default=None)
        p.add_argument("--stop", action=BOOL, default=None)
        p.add_argument("--editable-by-owner", action=BOOL, default=None)
        if action == "add":
            p.add_argument("--position", type=int, metavar="N", help="place in the order (default: last)")
        p.set_defaults(handler=handler)
    p = rules.add_parser("list", help="list rules in their order")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=rule_list)
    p = rules.add_parser("remove", help="remove a rule")
    p.add_argument("name")
    p.set_defaults(handler=rule_remove)
    p = rules.add_parser("explain", help="which rules a message matches and where it would land (stores nothing)")
    p.add_argument("file", type=Path, metavar="FILE.eml")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--mailbox", metavar="LOGIN", help="as if it came to this domain mailbox")
    scope.add_argument("--gateway", metavar="EMAIL", help="as if it was fetched from this gateway")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=rule_explain)
    p = rules.add_parser("move", help="move a rule to a place in the order (1 = first)")
    p.add_argument("name")
    p.add_argument("position", type=int)
    p.set_defaults(handler=rule_move)


def _change(a: argparse.Namespace) -> RuleChange:
    return RuleChange(gateway=a.gateway, mailbox=a.mailbox, make_global=getattr(a, "make_global", False),
                      subject=a.subject, senders=a.senders, recipients=a.recipients, task=a.task,
                      new_task=a.new_task, ignore=a.ignore, assign_to=a.assign_to, delete_after=a.delete_after,
                      stop=a.stop, editable_by_owner=a.editable_by_owner, rename=getattr(a, "rename", None))


def rule_add(ctx: Context) -> int:
    position = add_rule(ctx, ctx.args.name, _change(ctx.args), ctx.args.position)
    ctx.say(f"rule {ctx.args.name} added at position {position}")
    return 0


def rule_edit(ctx: Context) -> int:
    edit_rule(ctx, ctx.args.name, _change(ctx.args))
    ctx.say(f"rule {ctx.args.name} changed")
    return 0


def rule_list(ctx: Context) -> int:
    rows = [rule_json(i, r) for i, r in enumerate(ctx.config().rules, 1)]
    if ctx.args.json:
        ctx.emit_json(rows)
    else:
        ctx.emit_table(["#", "NAME", "SCOPE", "SUBJECT", "SENDERS", "RECIPIENTS", "ACTION", "STOP"],
                       [(r["position"], r["name"], r["gateway"] or r["mailbox"] or "global", r["subject"],
                         r["senders"], r["recipients"],
                         _action_text(r), r["stop"]) for r in rows])
    return 0


def _action_text(rule: dict[str, Any]) -> str:
    if rule["action"] == "comment":
        return str(rule["task"])
    if rule["action"] == "new_task":
        return f"new task in {rule['project']}"
    return "ignore"


def rule_remove(ctx: Context) -> int:
    remove_rule(ctx, ctx.args.name)
    ctx.say(f"rule {ctx.args.name} removed")
    return 0


def rule_move(ctx: Context) -> int:
    move_rule(ctx, ctx.args.name, ctx.args.position)
    ctx.say(f"rule {ctx.args.name} is now number {ctx.args.position}")
    return 0


def rule_explain(ctx: Context) -> int:
    a = ctx.args
    try:
        raw = a.file.read_bytes()
    except OSError as exc:
        raise ProstoyMailError(f"{a.file}: cannot read: {exc.strerror}") from None
    config, store = ctx.config(), ctx.store()
    if a.mailbox and config.mailbox(a.mailbox.lower()) is None:
        raise NotFound(f'no mailbox "{a.mailbox}"')
    if a.gateway and config.gateway(a.gateway.lower()) is None:
        raise NotFound(f'no gateway "{a.gateway}"')
    table = build_routing_table(config, store, org_id=ctx.organisation().id)  # (the organisation's alone)
    tokens = TaskTokens(store.secret(REPLY_TOKEN_SECRET))
    if a.mailbox:
        scopes = [mailbox_source_key(a.mailbox.lower())]
    elif a.gateway:
        scopes = [gateway_source_key(a.gateway.lower())]
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
    if a.json:
        ctx.emit_json(data)
        return 0
    ctx.say(f"Message:  {data['subject']!r} from {data['from'] or '-'} ({data['message_id'] or 'no Message-ID'})")
    ctx.say(f"Through:  {', '.join(scopes) or 'no mailbox of this domain (only global rules apply)'}")
    if result.reply_task_id is not None and joined_by == "conversation":
        ctx.say(f"Reply:    continues the conversation of task {result.reply_task_id} (it refers to a message there"
                " and its sender takes part): no rules are consulted")
    elif result.reply_task_id is not None:
        ctx.say(f"Reply:    to mail sent from task {result.reply_task_id}: no rules are consulted")
    for check in result.decision.checks:
        ctx.say(f"  {'MATCH' if check.matched else 'no   '} [{check.scope}] {check.rule}: {'; '.join(check.why)}")
    if result.decision.ignored_by:
        ctx.say(f"Ignored by rule {result.decision.ignored_by}: the message would go to no task")
    for target in result.decision.targets:
        assign = f", assigned to {target.assign_to}" if target.assign_to else ""
        ref = tasks[target.task_id].ref
        ctx.say(f"Lands in: task {target.task_id} ({ref}) by {', '.join(target.routed_by)}{assign}")
    for new in opens:
        assign = f", assigned to {new['assign_to']}" if new["assign_to"] else ""
        ctx.say(f"Opens:    would open a new task in {new['project']} titled «{new['title']}» by rule {new['rule']}"
                f"{assign} (unless that rule opened one for this message before)")
    if not lands_in and not opens and not result.decision.ignored_by:
        ctx.say("Lands in: no task")
    if result.decision.delete_after:
        ctx.say("Then:     deleted on the external server (delete_after)")
    return 0


