"""`task send` and `queue list|retry|drop`: mail sent from a task, and the outbound spool.

The command line writes to the store; the running daemon looks at the spool every
`[outbound] poll_interval` seconds and sends what is due.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Invalid, ProstoyMailError
from ..operations.sending import Outgoing, send_from_task
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
    args = ctx.args
    task = ctx.store().resolve_task(args.task)
    outgoing = Outgoing(args.sender, args.to, args.cc or (), args.bcc or (), args.subject, "", args.in_reply_to)
    try:
        outgoing.check()  # (before the body is read from standard input)
    except Invalid as exc:  # (the command line's words: its options)
        raise ProstoyMailError(f"--{str(exc).replace('_', '-')}") from None
    outgoing = dataclasses.replace(outgoing, body=_read_body(args.body_file))
    file_config = ctx.file_config()
    queued = send_from_task(ctx.store(), ctx.config(), file_config, ctx.organisation().id, task.id, outgoing)
    recipients = len(dict.fromkeys([*args.to, *(args.cc or ()), *(args.bcc or ())]))
    ctx.say(f"queued as {queued.entry_id}: <{queued.message_id}> from task {task.id} ({task.ref}) "
            f"to {recipients} recipients; the daemon sends it within {file_config.outbound.poll_interval:g} s")
    return 0


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
