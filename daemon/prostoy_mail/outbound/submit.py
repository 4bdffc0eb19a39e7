"""Into the spool: a submitted message becomes an outgoing comment in its task and a queue entry.

One store job (on the writer thread), one transaction: the message as it will be sent, its
comment, its Message-ID in the reply index and the queue entry with its recipients. The
client hears 250 only after that commit.

The task: the one it is sent from (`task send`), else the task of the message it replies
to (one we sent, or one that came in), else the sender's own mailbox or gateway task (a
personal one's owner's personal task). Replies to it come back there: its Message-ID is on
record, a new one is signed with the task, and a domain mailbox's mail carries the signed
reply address `login+t<task>.<sig>@domain` as Reply-To and as envelope sender (so that
bounces from further on come back to the task too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, localtime

from ..config.model import Config
from ..conversation import take_part
from ..errors import OverLimit, ProstoyMailError
from ..intake import find_reply_task
from ..mail.compose import edit_header, has_field
from ..mail.parse import ParsedMessage, parse_message
from ..mail.tokens import TaskTokens
from ..routing.router import RoutingTable
from ..sending_policy import RELAY_ROUTE, SendingPolicy, Submission
from ..store.ports import CommentTarget, MessageRecord
from ..store.roles import OutboundSpool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Queued:
    entry_id: int
    message_db_id: int
    task_id: int
    message_id: str


def enqueue_now(store: OutboundSpool, tokens: TaskTokens, table: RoutingTable, config: Config, policy: SendingPolicy,
                submission: Submission) -> Queued:
    """Store and queue one submitted message, in the caller's transaction."""
    sender = policy.sender(submission.mail_from)
    if sender is None:
        raise ProstoyMailError(f"{submission.mail_from}: not an address of a mailbox or gateway here")
    parsed = parse_message(submission.raw)
    task_id, chosen_by = _task_for(store, tokens, table, submission, parsed, sender.scope)
    org_id = store.org_of_task(task_id)
    _within_hourly_limit(store, config, org_id)
    added: list[tuple[str, str]] = []
    message_id = parsed.message_id
    if message_id is None:
        message_id = tokens.message_id(task_id, config.daemon.hostname)
        added.append(("Message-ID", f"<{message_id}>"))
    if not has_field(submission.raw, "Date"):
        added.append(("Date", format_datetime(localtime())))
    envelope_from = sender.address
    if sender.mailbox_login is not None:
        envelope_from = tokens.reply_address(sender.mailbox_login, task_id, config.daemon.domain)
        if not has_field(submission.raw, "Reply-To"):
            added.append(("Reply-To", f"<{envelope_from}>"))
    raw = edit_header(submission.raw, remove=("bcc",), add=added)
    source = "smtp" if sender.route == RELAY_ROUTE else sender.route.split(":", 1)[1]
    record = MessageRecord(
        raw=raw, direction="out", source=source, message_id=message_id, subject=parsed.subject,
        from_addr=parsed.from_addr, from_name=parsed.from_name, to=parsed.to, cc=parsed.cc, date=parsed.date,
        text=parsed.text, attachments=parsed.attachments, mail_from=envelope_from,
        rcpt_tos=submission.recipients, peer=submission.peer or submission.user,
    )
    stored = store.store_message(record, [CommentTarget(task_id, (chosen_by,))])
    store.register_sent(message_id, task_id)
    take_part(store, task_id, submission.recipients)  # (a conversation's: their answers come back to it)
    entry_id = store.enqueue_outbound(
        message_db_id=stored.id, task_id=task_id, sender=sender.address, envelope_from=envelope_from,
        route=sender.route, scope=sender.scope, submitted_by=submission.user,
        recipients=[(r, policy.local_login(r) is not None) for r in dict.fromkeys(submission.recipients)],
        max_queue_time=config.outbound.max_queue_time, upload_sent=_wants_sent_copy(config, sender.route),
        org_id=org_id,
    )
    log.info("queued %s as %d from %s (user %s) to %d recipients via %s; task %d (%s)", message_id, entry_id,
             sender.address, submission.user or "-", len(submission.recipients), sender.route, task_id, chosen_by)
    return Queued(entry_id, stored.id, task_id, message_id)


def _within_hourly_limit(store: OutboundSpool, config: Config, org_id: int) -> None:
    """OverLimit when the organisation has submitted its hourly number of messages."""
    limit = config.limits.with_overrides(store.limit_overrides(org_id)).outbound_per_hour
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    if store.outbound_since(org_id, hour_ago) >= limit:
        raise OverLimit(f"the organisation has submitted {limit} messages within the last hour, its limit "
                        "(limits.outbound_per_hour); try again later")


def _task_for(store: OutboundSpool, tokens: TaskTokens, table: RoutingTable, submission: Submission,
              parsed: ParsedMessage, scope: str) -> tuple[int, str]:
    if submission.task_id is not None:
        store.get_task(submission.task_id)  # NotFound if it is gone
        return submission.task_id, "task"
    reply_task = find_reply_task(store, tokens, parsed, ())
    if reply_task is not None:
        return reply_task, "reply"
    came_in = store.tasks_of_message_ids([*parsed.in_reply_to, *reversed(parsed.references)])
    if came_in:
        return came_in[0], "reply"
    own = table.scopes.get(scope)
    if own is None:
        raise ProstoyMailError(f"{scope}: no task for this sender (is it in the configuration?)")
    return own.fallback_task_id, "fallback"


def _wants_sent_copy(config: Config, route: str) -> bool:
    if not route.startswith("gateway:"):
        return False
    gateway = config.gateway(route.split(":", 1)[1])
    if gateway is None or not gateway.upload_sent:
        return False
    server = config.server(gateway.server)
    return server is not None and server.imap is not None and not server.files_sent_mail
