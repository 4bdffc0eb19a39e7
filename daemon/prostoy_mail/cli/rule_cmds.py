"""`rule ...`: routing rules, and `rule explain`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ProstoyMailError
from ..operations.explain import explain_message
from ..operations.rules import RuleChange, add_rule, edit_rule, move_rule, remove_rule
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
    data = explain_message(ctx.config(), ctx.store(), ctx.organisation().id, raw, a.mailbox, a.gateway)
    scopes = data["through"]
    if a.json:
        ctx.emit_json(data)
        return 0
    ctx.say(f"Message:  {data['subject']!r} from {data['from'] or '-'} ({data['message_id'] or 'no Message-ID'})")
    ctx.say(f"Through:  {', '.join(scopes) or 'no mailbox of this domain (only global rules apply)'}")
    reply_task = data["reply_to_task"]
    if reply_task is not None and data["joined_by"] == "conversation":
        ctx.say(f"Reply:    continues the conversation of task {reply_task} (it refers to a message there"
                " and its sender takes part): no rules are consulted")
    elif reply_task is not None:
        ctx.say(f"Reply:    to mail sent from task {reply_task}: no rules are consulted")
    for check in data["rules"]:
        ctx.say(f"  {'MATCH' if check['matched'] else 'no   '} [{check['scope']}] {check['rule']}: "
                f"{'; '.join(check['why'])}")
    if data["ignored_by"]:
        ctx.say(f"Ignored by rule {data['ignored_by']}: the message would go to no task")
    for target in data["lands_in"]:
        assign = f", assigned to {target['assign_to']}" if target["assign_to"] else ""
        ctx.say(f"Lands in: task {target['task']} ({target['ref']}) by {', '.join(target['routed_by'])}{assign}")
    for new in data["opens"]:
        assign = f", assigned to {new['assign_to']}" if new["assign_to"] else ""
        ctx.say(f"Opens:    would open a new task in {new['project']} titled «{new['title']}» by rule {new['rule']}"
                f"{assign} (unless that rule opened one for this message before)")
    if not data["lands_in"] and not data["opens"] and not data["ignored_by"]:
        ctx.say("Lands in: no task")
    if data["delete_after"]:
        ctx.say("Then:     deleted on the external server (delete_after)")
    return 0


