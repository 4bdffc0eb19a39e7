"""The one routing function: replies, global rules, the mailbox's own rules, fallback.

1. A reply to mail sent from a task goes to that task; nothing else is consulted. So does a
   message that continues a conversation (a task a `new_task` rule opened: the intake finds
   it, see conversation.py).
2. Global rules, in order.
3. The rules of each mailbox or gateway the message came through, in order, but only
   when no global rule matched.
4. Fallback, per mailbox, when no rule matched: its fallback task (a personal mailbox's
   owner's personal task, else the mailbox's own task).

`comment` adds a target (a task receives a message at most once), `new_task` asks for a task
to be opened for the message (at most one per rule; the intake opens it), `ignore` discards
the message altogether (no task, no fallback, no further rules), `stop` ends the checking of
that list of rules. Every rule checked is recorded, so an admin can see why.

A `new_task` rule opens nothing for automatic mail (auto-replies, bounces: two auto-responders
would open tasks for each other forever) nor for a sender who has had its hourly number of
tasks opened (`may_open_tasks`); the message then goes to the fallback of the mailboxes or
gateways it came through, the rule's name and the reason beside "fallback".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .index import RuleList
from .rules import GLOBAL, Facts


@dataclass(frozen=True, slots=True)
class Scope:
    """A domain mailbox or gateway that a message arrived through."""

    key: str  # "mailbox:<login>" or "gateway:<email>"
    rules: RuleList
    fallback_task_id: int
    org: int = 1  # the organisation it belongs to
    global_rules: RuleList | None = None  # its organisation's global rules (None: the table's)


@dataclass(frozen=True, slots=True)
class RoutingTable:
    global_rules: RuleList = field(default_factory=lambda: RuleList(()))
    scopes: Mapping[str, Scope] = field(default_factory=dict)
    new_tasks_per_sender_per_hour: int = 20  # [routing]: tasks new_task rules open for one sender
    opens_tasks: bool = False  # some rule is a new_task one (else no sender's count is looked up)
    slugs: Mapping[int, str] = field(default_factory=dict)  # organisation id -> slug (metrics' labels)
    own_org: int = 1  # the organisation of the table's own global rules (the file's)

    def organisations_of(self, scope_keys: Sequence[str]) -> list[str]:
        """The slugs of the organisations a message came to through these mailboxes/gateways
        (none: the file's organisation's)."""
        orgs = dict.fromkeys(self.scopes[key].org for key in scope_keys if key in self.scopes) or {self.own_org: None}
        return [self.slugs.get(org, str(org)) for org in orgs]


@dataclass(frozen=True, slots=True)
class Target:
    task_id: int
    routed_by: tuple[str, ...]  # rule names, "reply" or "fallback"
    assign_to: str | None = None


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task to open for the message (the intake opens it, titled by the subject)."""

    rule: str
    project_id: int
    assign_to: str | None = None


@dataclass(frozen=True, slots=True)
class RuleCheck:
    rule: str
    scope: str
    matched: bool
    why: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    targets: tuple[Target, ...]
    checks: tuple[RuleCheck, ...] = ()  # filled when a trace is asked for, e.g. by `rule explain`
    ignored_by: str | None = None
    delete_after: bool = False
    reply: bool = False
    new_tasks: tuple[NewTask, ...] = ()

    @property
    def rule_hits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*(name for t in self.targets for name in t.routed_by),
                                    *(n.rule for n in self.new_tasks)]))


class _Collector:
    def __init__(self, trace: bool, facts: Facts, may_open_tasks: bool) -> None:
        self.trace = trace
        self.no_new_task = ("auto-reply" if facts.automatic == "auto-reply" else "bounce" if facts.automatic
                            else None if may_open_tasks else "sender's hourly limit of new tasks")
        self.targets: dict[int, Target] = {}
        self.new_tasks: dict[str, NewTask] = {}
        self.declined: list[str] = []  # "<rule>: no new task (<why>)": the message goes to the fallback
        self.checks: list[RuleCheck] = []
        self.ignored_by: str | None = None
        self.delete_after = False

    def add(self, task_id: int, by: str, assign_to: str | None = None) -> None:
        old = self.targets.get(task_id)
        if old is None:
            self.targets[task_id] = Target(task_id, (by,), assign_to)
        elif by not in old.routed_by:
            self.targets[task_id] = Target(task_id, (*old.routed_by, by), old.assign_to or assign_to)

    def run(self, rules: RuleList, facts: Facts) -> bool:
        """Apply the matching rules of `rules` in order; whether any matched."""
        any_matched = False
        if self.trace:  # check every rule, to say why each did or did not match
            matching = []
            for rule in rules:
                matched, why = rule.check(facts)
                self.checks.append(RuleCheck(rule.name, rule.scope, matched, why))
                if matched:
                    matching.append(rule)
        else:
            matching = rules.matching(facts)
        for rule in matching:
            any_matched = True
            self.delete_after |= rule.delete_after
            if rule.action == "ignore":
                self.ignored_by = rule.name
                self.targets.clear()
                self.new_tasks.clear()
                return True
            if rule.action == "new_task":
                assert rule.project_id is not None
                if self.no_new_task is not None:
                    self.declined.append(f"{rule.name}: no new task ({self.no_new_task})")
                else:
                    self.new_tasks.setdefault(rule.name, NewTask(rule.name, rule.project_id, rule.assign_to))
            else:
                assert rule.task_id is not None
                self.add(rule.task_id, rule.name, rule.assign_to)
            if rule.stop:
                break
        return any_matched


def route(facts: Facts, table: RoutingTable, scope_keys: Sequence[str], reply_task_id: int | None = None,
          *, reply_by: str = "reply", may_open_tasks: bool = True, trace: bool = False) -> Decision:
    """Where a message goes. `scope_keys`: the mailboxes/gateways it came through;
    `reply_task_id`: the task it replies to, or whose conversation it continues (`reply_by`
    "conversation"); `may_open_tasks`: its sender is within the hourly limit of new tasks."""
    if reply_task_id is not None:
        return Decision(targets=(Target(reply_task_id, (reply_by,)),), reply=True)
    scopes = [table.scopes[key] for key in scope_keys if key in table.scopes]
    by_org: dict[int, list[Scope]] = {}
    for scope in scopes:
        by_org.setdefault(scope.org, []).append(scope)
    if not by_org:  # (through no mailbox or gateway of ours: the table's own global rules, as `rule explain`)
        return _route_one(facts, table.global_rules, [], trace, may_open_tasks)
    # Each organisation the message came to routes it by its own rules: its global rules, then
    # its mailboxes' and gateways' own; what one decides never touches another's tasks.
    decisions = [_route_one(facts, group[0].global_rules if group[0].global_rules is not None else table.global_rules,
                            group, trace, may_open_tasks) for group in by_org.values()]
    if len(decisions) == 1:
        return decisions[0]
    return Decision(tuple(t for d in decisions for t in d.targets), tuple(c for d in decisions for c in d.checks),
                    next((d.ignored_by for d in decisions if d.ignored_by), None),
                    any(d.delete_after for d in decisions), new_tasks=tuple(n for d in decisions for n in d.new_tasks))


def _route_one(facts: Facts, global_rules: RuleList, scopes: Sequence[Scope], trace: bool,
               may_open_tasks: bool) -> Decision:
    """One organisation's decision: its global rules, then (when none matched) those of the
    scopes the message came through, each scope's fallback when nothing matched."""
    out = _Collector(trace, facts, may_open_tasks)
    global_matched = out.run(global_rules, facts)
    for scope in scopes:
        if out.ignored_by is not None:
            break
        scope_matched = False if global_matched else out.run(scope.rules, facts)
        if not (global_matched or scope_matched):
            out.add(scope.fallback_task_id, "fallback")
    if out.ignored_by is not None:
        out.targets.clear()
    elif out.declined:
        for scope in scopes:
            for note in ("fallback", *out.declined):
                out.add(scope.fallback_task_id, note)
    return Decision(tuple(out.targets.values()), tuple(out.checks), out.ignored_by, out.delete_after,
                    new_tasks=tuple(out.new_tasks.values()))


__all__ = ["GLOBAL", "Decision", "NewTask", "RoutingTable", "RuleCheck", "Scope", "Target", "route"]
