"""Conversations: the tasks `new_task` rules open, and the mail that continues them.

- A message continues a conversation when its In-Reply-To/References name a message stored
  in that task *and* its sender takes part (the first message's sender, or an address mail
  from the task was sent to). A stranger who quotes a Message-ID (it is on every Cc'd copy)
  is routed as a new message. Subjects are never used to thread.
- A rule opens at most one task for a message: the same message delivered again (through a
  second gateway, a retry after a crash) joins the task it opened.
- A sender has at most [routing] new_tasks_per_sender_per_hour tasks opened for it; the
  router sends further mail to the fallback (router.py).

Runs inside the intake's store job, in the transaction that stores the message: a task is
never left without its first comment, nor opened twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from .mail.parse import ParsedMessage
from .routing.router import Decision, RoutingTable, Target
from .routing.task_title import task_title
from .store.roles import IntakeStore

MAX_THREAD_IDS = 50  # Message-IDs of In-Reply-To and References looked up, nearest first (a peer sets how many)


def thread_ids(parsed: ParsedMessage) -> list[str]:
    """The Message-IDs a message refers to, nearest first, bounded."""
    return list(dict.fromkeys([*parsed.in_reply_to, *reversed(parsed.references)]))[:MAX_THREAD_IDS]


def find_conversation(store: IntakeStore, parsed: ParsedMessage) -> int | None:
    """The conversation this message continues, if its sender takes part in it."""
    if not parsed.from_addr or not (parsed.in_reply_to or parsed.references):
        return None
    return store.conversation_in_thread(thread_ids(parsed), parsed.from_addr)


def may_open_tasks(store: IntakeStore, table: RoutingTable, parsed: ParsedMessage) -> bool:
    """Whether the sender is within its hourly number of new tasks (looked up only when some
    rule opens tasks)."""
    if not table.opens_tasks:
        return True
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    return store.conversations_opened_for(parsed.from_addr, hour_ago) < table.new_tasks_per_sender_per_hour


def opening_key(parsed: ParsedMessage, raw: bytes, sha256: str | None) -> str:
    """What identifies the message that opens a task, whichever way it came: its Message-ID,
    else its bytes' hash."""
    if parsed.message_id:
        return parsed.message_id
    return "sha256:" + (sha256 or hashlib.sha256(raw).hexdigest())


def open_tasks(store: IntakeStore, decision: Decision, parsed: ParsedMessage, key: str) -> tuple[Target, ...]:
    """The decision's targets and one task for each `new_task` it asks for: opened now, or the
    one that rule opened for this very message before."""
    targets: list[Target] = list(decision.targets)
    for new in decision.new_tasks:
        task_id = store.conversation_opened_by(new.rule, key)
        if task_id is None:
            task_id = store.open_conversation(new.rule, key, parsed.from_addr, new.project_id,
                                              task_title(parsed.subject), new.assign_to)
        targets.append(Target(task_id, (new.rule,)))
    return tuple(targets)


def take_part(store: IntakeStore, task_id: int | None, recipients: Sequence[str]) -> None:
    """Mail from the task went to these addresses: they take part in its conversation."""
    if task_id is not None:
        store.add_participants(task_id, recipients)
