"""`task send` and `queue list|retry|drop`: mail sent from a task, and the outbound spool.

The command line writes to the store; the running daemon looks at the spool every
`[outbound] poll_interval` seconds and sends what is due.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ProstoyMailError
from ..intake import REPLY_TOKEN_SECRET
from ..mail.compose import new_message
from ..mail.tokens import TaskTokens
from ..outbound.submit import enqueue_now
from ..provisioning import build_routing_table
from ..sending_policy import SendingPolicy, Submission
from ..views import entry_json
from .common import Context

if TYPE_CHECKING:
    from .common import Sub


def register_task_send(task: Sub) -> None:
    p = task.add_parser("send", help="send a message from a task (replies come back to it)")
    p.add_argument("task", help='the task: an id or "Project/Title"')
    p.add_argument("--from", dest="sender", required=True, metavar="ADDRESS",
                   help="a domain mailbox or gateway address to send as")
    p.add_argument("--to", action="append", required=True, metavar="ADDRESS", help="a recipient (repeatable)")
    p.add_argument("--cc", action="append", default=[], metavar="ADDRESS")
    p.add_argument("--bcc", action="append", default=[], metavar="ADDRESS", help="a hidden recipient")
    p.add_argument("--subject", required=True)
    p.add_argument("--body-file", required=True, metavar="FILE", help="the text (UTF-8); - reads standard input")
    p.add_argument("--in-reply-to", metavar="MESSAGE_ID", help="the Message-ID this answers (threading)")
    p.set_defaults(handler=task_send)


def register(sub: Sub) -> None:
    queue = sub.add_parser("queue", help="the outbound spool").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = queue.add_parser("list", help="messages being sent (with --all: also sent, failed and dropped ones)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=queue_list)
    p = queue.add_parser("retry", help="try a queued message (or all) now")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("id", type=int, nargs="?")
    target.add_argument("--all", action="store_true")
    p.set_defaults(handler=queue_retry)
    p = queue.add_parser("drop", help="stop sending a queued message (no bounce)")
    p.add_argument("id", type=int)
    p.set_defaults(handler=queue_drop)


def task_send(ctx: Context) -> int:
    config, store, args = ctx.config(), ctx.store(), ctx.args  # (the organisation's settings)
    file_config, organisation = ctx.file_config(), ctx.organisation()
    task = store.resolve_task(args.task)
    policy = SendingPolicy.of(config, organisation.id, relay=file_config.relay is not None)
    sender = policy.sender(args.sender)
    if sender is None:
        known = ", ".join(sorted(policy.senders)) or "none configured"
        raise ProstoyMailError(f"--from {args.sender}: not a domain mailbox or gateway here (known: {known})")
    _check_header_values(args)
    body = _read_body(args.body_file)
    message_id = args.in_reply_to.strip("<>") if args.in_reply_to else None
    raw = new_message(sender=sender.address, sender_name="", to=args.to, cc=args.cc, subject=args.subject,
                      body=body, in_reply_to=message_id, references=[message_id] if message_id else ())
    table = build_routing_table(config, store, org_id=ctx.organisation().id)  # (the organisation's alone)
    tokens = TaskTokens(store.secret(REPLY_TOKEN_SECRET))
    recipients = tuple(dict.fromkeys([*args.to, *args.cc, *args.bcc]))
    with store.transaction():
        queued = enqueue_now(store, tokens, table, file_config, policy,
                             Submission(raw, sender.address, recipients, user="", peer="command line", task_id=task.id))
    ctx.say(f"queued as {queued.entry_id}: <{queued.message_id}> from task {task.id} ({task.ref}) "
            f"to {len(recipients)} recipients; the daemon sends it within {file_config.outbound.poll_interval:g} s")
    return 0


_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_header_values(args: argparse.Namespace) -> None:
    """One line naming the option for a value that cannot go into a header (a line break
    would start a new header: `--subject $'hi\\r\\nBcc: x@y'`), or that is not an address."""
    for option in ("subject", "in_reply_to"):
        value = getattr(args, option)
        if value and _CONTROL.search(value):
            raise ProstoyMailError(f"--{option.replace('_', '-')}: a header value cannot hold a line break or "
                                   "another control character")
    for option in ("to", "cc", "bcc"):
        for address in getattr(args, option) or ():
            if not _ADDRESS.fullmatch(address):
                raise ProstoyMailError(f"--{option} {address!r}: not an e-mail address (local@domain)")


def _read_body(file: str) -> str:
    try:
        return sys.stdin.read() if file == "-" else Path(file).read_text("utf-8")
    except OSError as exc:
        raise ProstoyMailError(f"{file}: cannot read the body: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ProstoyMailError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def queue_list(ctx: Context) -> int:
    entries = ctx.store().list_outbound(include_finished=ctx.args.all)
    if ctx.args.json:
        ctx.emit_json([entry_json(e) for e in entries])
        return 0
    ctx.emit_table(
        ["ID", "STATE", "CREATED", "FROM", "VIA", "RECIPIENTS", "TRIES", "NEXT TRY", "LAST ERROR"],
        [(e.id, e.state, e.created_at, e.sender, e.route,
          [f"{r.address} ({r.state})" for r in e.recipients], e.attempts,
          _when(e.next_attempt) if e.state == "queued" else None, e.last_error) for e in entries])
    return 0


def queue_retry(ctx: Context) -> int:
    count = ctx.store().retry_outbound(None if ctx.args.all else ctx.args.id)
    ctx.say(f"{count} message(s) will be tried at the daemon's next look at the spool")
    return 0


def queue_drop(ctx: Context) -> int:
    entry = ctx.store().drop_outbound(ctx.args.id)
    ctx.say(f"message {entry.id} dropped; {sum(r.state == 'dropped' for r in entry.recipients)} recipients "
            "will not get it")
    return 0
