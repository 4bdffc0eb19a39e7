"""Rules as data: conditions that look at a message's facts, and what a match does.

Matching ignores case by Unicode case folding (`СЧЁТ` matches `счёт`); an item matches
when it occurs in the field (`@client.ru` in `buh@client.ru`). All filled conditions of a
rule must hold; a condition holds when any of its items matches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Field = Literal["subject", "senders", "recipients"]
GLOBAL = "global"


@dataclass(frozen=True, slots=True)
class Facts:
    """What rules look at, case-folded once per message."""

    subject: str
    sender: str
    recipients: tuple[str, ...]  # To, Cc and the envelope recipients
    automatic: str = ""  # "bounce" or "auto-reply": such mail never opens a task (a loop could)

    @classmethod
    def of(cls, subject: str, sender: str, recipients: Iterable[str], automatic: str = "") -> Facts:
        return cls(subject.casefold(), sender.casefold(), tuple(dict.fromkeys(r.casefold() for r in recipients)),
                   automatic)


@dataclass(frozen=True, slots=True)
class Condition:
    field: Field
    items: tuple[str, ...]  # case-folded

    @classmethod
    def of(cls, field: Field, items: Iterable[str]) -> Condition:
        return cls(field, tuple(i.strip().casefold() for i in items if i.strip()))

    def first_match(self, facts: Facts) -> str | None:
        """The item that matches, or None."""
        if self.field == "subject":
            return next((i for i in self.items if i in facts.subject), None)
        if self.field == "senders":
            return next((i for i in self.items if i in facts.sender), None)
        return next((i for i in self.items if any(i in r for r in facts.recipients)), None)


@dataclass(frozen=True, slots=True)
class RoutingRule:
    name: str
    scope: str  # GLOBAL, "mailbox:<login>" or "gateway:<email>"
    conditions: tuple[Condition, ...]  # only the filled ones
    action: Literal["comment", "new_task", "ignore"]
    task_id: int | None = None  # comment: the task
    assign_to: str | None = None
    delete_after: bool = False
    stop: bool = False
    project_id: int | None = None  # new_task: where the task is opened

    def check(self, facts: Facts) -> tuple[bool, tuple[str, ...]]:
        """Whether the rule matches, and why (or why not), in words an admin reads."""
        reasons: list[str] = []
        for condition in self.conditions:
            item = condition.first_match(facts)
            if item is None:
                reasons.append(f"{condition.field}: none of {', '.join(condition.items)}")
                return False, tuple(reasons)
            reasons.append(f'{condition.field}: "{item}"')
        if not self.conditions:
            reasons.append("no conditions: matches every message")
        return True, tuple(reasons)
