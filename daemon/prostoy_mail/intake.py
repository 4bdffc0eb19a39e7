"""THE inbound funnel: every inbound message, from SMTP or a gateway, enters here.

`accept()` runs one job on the store's writer thread: parse the raw bytes, find the task a
reply belongs to, route, then store the raw message once and its comments in the same
transaction. The caller hears back only after the commit: an SMTP listener answers 250
then, a fetcher changes flags on the server then.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .conversation import find_conversation, may_open_tasks, open_tasks, opening_key
from .mail.mime_scan import scan_multipart
from .mail.parse import TEXT_INLINE, ParsedMessage, parse_message, parse_prefix
from .mail.tokens import TaskTokens
from .routing.router import Decision, RoutingTable, route
from .routing.rules import Facts
from .store.ports import CommentTarget, FetchedKey, MessageRecord, ServerAction
from .store.raw_files import RawFiles, SpooledRaw
from .store.roles import IntakeStore, StoreJobs

log = logging.getLogger(__name__)
REPLY_TOKEN_SECRET = "reply-token-key"


@dataclass(frozen=True, slots=True)
class Inbound:
    """One inbound message and where it came from."""

    raw: bytes
    source: str  # "smtp", or the gateway's e-mail
    scopes: tuple[str, ...]  # the mailboxes/gateways it came through: "mailbox:sales", "gateway:x@y.ru"
    rcpt_tos: tuple[str, ...] = ()  # envelope recipients
    mail_from: str | None = None  # envelope sender ("" for bounces); None when not known
    peer: str = ""  # the SMTP client, or the external server
    address_tokens: tuple[tuple[str, str], ...] = ()  # (login, token) of login+token@domain recipients
    fetch: Fetch | None = None  # for a message fetched from a gateway
    # Parsed already, off the store's writer thread (a fetcher parses while the writer commits);
    # must be parse_message(raw, mail_from), with text_limit=TEXT_INLINE or more (the store keeps
    # a longer text as the raw message only).
    parsed: ParsedMessage | None = field(default=None, repr=False, compare=False)
    # A big message, already written durably to its file of the store's RawFiles (as it arrived
    # over SMTP: then `raw` is only its start; or by a fetcher, with `raw` whole).
    spooled: SpooledRaw | None = None


@dataclass(frozen=True, slots=True)
class Fetch:
    """Where a fetched message came from, and what the gateway's options say to do on the server."""

    key: FetchedKey
    keep_on_server: bool
    mark_read: bool
    position: int | None = None  # the IMAP UID, to advance the gateway's position in the same transaction
    dedupe_by_hash: bool = False  # after a UIDVALIDITY change: a message already stored is not stored again


@dataclass(frozen=True, slots=True)
class Accepted:
    message_db_id: int | None
    comment_ids: tuple[int, ...]
    decision: Decision
    parsed: ParsedMessage | None = field(default=None, repr=False)
    server_action: ServerAction = ""  # to do on the server now that the message is committed
    duplicate: bool = False  # already fetched before: nothing stored, nothing to do


@dataclass(frozen=True, slots=True)
class Explanation:
    parsed: ParsedMessage
    reply_task_id: int | None
    decision: Decision


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """What the configuration in effect says the intake routes by."""

    table: RoutingTable  # the rules with their tasks resolved to ids
    duplicate_window: float = 0.0  # [smtp] duplicate_window, seconds (0: off)


class Intake:
    def __init__(self, writer: StoreJobs[IntakeStore], rules: Callable[[], IntakeRules], tokens: TaskTokens) -> None:
        self.writer = writer
        self.rules = rules  # those in effect (a reload swaps them; a message being routed keeps its own)
        self.tokens = tokens

    async def accept(self, inbound: Inbound) -> Accepted:
        rules = self.rules()
        return await self.writer.run(
            lambda store: accept_now(store, self.tokens, rules.table, inbound, rules.duplicate_window))

    async def accept_many(self, inbounds: Sequence[Inbound]) -> list[Accepted | Exception]:
        """Several messages as one store job: each in its own savepoint (one failing does not
        spoil the others), one commit for all. Each result is the Accepted or the exception.
        The way in for fetched messages: one fetched before is not stored again (a restart after
        the commit), and the gateway's position moves past the ones stored."""
        table = self.rules().table

        def job(store: IntakeStore) -> list[Accepted | Exception]:
            # Fetched messages: which were stored before is asked once for the batch, and the
            # gateway's position moves once, to the last message stored (two statements fewer a
            # message: each statement also hands the interpreter lock to the other threads).
            known = store.fetched_among([i.fetch.key for i in inbounds if i.fetch is not None])
            positions: dict[tuple[str, str], int] = {}
            results: list[Accepted | Exception] = []
            for inbound in inbounds:
                fetch = inbound.fetch
                if fetch is not None and fetch.key in known:
                    results.append(Accepted(None, (), Decision(()), duplicate=True))
                    continue
                try:
                    with store.transaction():
                        results.append(accept_now(store, self.tokens, table, inbound))
                except Exception as exc:
                    results.append(store.own_error(exc))  # (the store's own exceptions, as for a job)
                    continue
                if fetch is not None and fetch.position is not None:
                    where = (fetch.key.gateway, fetch.key.folder)
                    positions[where] = max(positions.get(where, 0), fetch.position)
            for (gateway, folder), position in positions.items():
                store.advance_position(gateway, folder, position)
            return results

        return await self.writer.run(job)


def accept_now(store: IntakeStore, tokens: TaskTokens, table: RoutingTable, inbound: Inbound,
               duplicate_window: float = 0.0) -> Accepted:
    """Store and route one message in the caller's transaction (the daemon's writer, or the CLI),
    which rolls back everything of it if this raises. A fetched message comes through
    Intake.accept_many, which has checked it is new and moves the gateway's position.
    With `duplicate_window`, SMTP mail whose very bytes came for the same mailbox that many
    seconds ago or less (a sender's retry after a lost 250) is counted, not stored again."""
    assert store.in_transaction()
    sha256: str | None = None
    if duplicate_window and inbound.source == "smtp" and inbound.fetch is None:
        sha256 = inbound.spooled.sha256 if inbound.spooled else hashlib.sha256(inbound.raw).hexdigest()
        again = _recent_duplicate(store, inbound, sha256, duplicate_window)
        if again is not None:
            return again
    fetch = inbound.fetch
    if fetch is not None and fetch.dedupe_by_hash:
        existing = store.message_with_hash(inbound.source, hashlib.sha256(inbound.raw).hexdigest())
        if existing is not None:
            kept_action = _server_action(fetch, delete_after=False)
            store.record_fetched(fetch.key, existing, kept_action)
            return Accepted(existing, (), Decision(()), server_action=kept_action, duplicate=True)
    parsed = inbound.parsed or _parse(store, inbound)
    decision = _decide(store, tokens, table, parsed, inbound.rcpt_tos, inbound.scopes, inbound.address_tokens)
    record = record_of(parsed, inbound)
    if sha256 is not None and record.sha256 is None:  # (computed above: not again)
        record = replace(record, sha256=sha256)
    message_db_id = store.insert_message(record)
    if decision.new_tasks:  # (opened in this transaction: never a task without its first comment)
        key = opening_key(parsed, inbound.raw, record.sha256)
        decision = replace(decision, targets=open_tasks(store, decision, parsed, key))
    comment_ids = store.insert_comments(
        message_db_id, [CommentTarget(t.task_id, t.routed_by, t.assign_to) for t in decision.targets])
    for scope in inbound.scopes:  # mail for a domain mailbox is also in that mailbox (its IMAP folder)
        if scope.startswith("mailbox:"):
            store.add_to_mailbox(scope.split(":", 1)[1], message_db_id)
    action: ServerAction = ""
    if fetch is not None:
        action = _server_action(fetch, decision.delete_after)
        store.record_fetched(fetch.key, message_db_id, action)
    if log.isEnabledFor(logging.INFO):  # (the arguments cost more than the call when it is off)
        log.info("accepted %s from %s via %s: tasks %s (%s)%s", parsed.message_id or "(no Message-ID)",
                 inbound.peer or "-", inbound.source, [t.task_id for t in decision.targets] or "none",
                 ", ".join(decision.rule_hits) or f"ignored by {decision.ignored_by}",
                 " [bounce]" if parsed.bounce else " [auto-reply]" if parsed.auto_reply else "")
    return Accepted(message_db_id, comment_ids, decision, parsed, action)


def _decide(store: IntakeStore, tokens: TaskTokens, table: RoutingTable, parsed: ParsedMessage,
            rcpt_tos: Sequence[str], scopes: Sequence[str], address_tokens: Sequence[tuple[str, str]],
            *, trace: bool = False) -> Decision:
    """Replies first (to mail sent from a task, then conversations), else the rules. A reply goes
    to its task only when that task is of an organisation the message came to: a token or a
    Message-ID of another organisation's task gets no way in (it is routed as new mail)."""
    orgs = {table.scopes[key].org for key in scopes if key in table.scopes}

    def ours(task_id: int | None) -> int | None:
        return task_id if task_id is None or not orgs or store.org_of_task(task_id) in orgs else None

    reply_task, reply_by = ours(find_reply_task(store, tokens, parsed, address_tokens)), "reply"
    if reply_task is None:
        reply_task, reply_by = ours(find_conversation(store, parsed)), "conversation"
    return route(facts_of(parsed, rcpt_tos), table, scopes, reply_task, reply_by=reply_by,
                 may_open_tasks=reply_task is not None or may_open_tasks(store, table, parsed), trace=trace)


def _recent_duplicate(store: IntakeStore, inbound: Inbound, sha256: str, window: float) -> Accepted | None:
    found = store.last_smtp_message_with(sha256)
    if found is None:  # (nearly always: the rest is for the rare retry)
        return None
    existing, received_at = found
    mailboxes = [scope.split(":", 1)[1] for scope in inbound.scopes if scope.startswith("mailbox:")]
    since = datetime.fromtimestamp(time.time() - window, UTC).isoformat(timespec="seconds")
    if received_at < since or not mailboxes or not store.in_mailbox(existing, mailboxes):
        return None
    store.received_again(existing)
    if inbound.spooled is not None:  # the copy just written is not needed: the first one is kept
        store.files.remove(inbound.spooled.name)
    log.info("message %d came again from %s via smtp within the duplicate window: counted, not stored twice",
             existing, inbound.peer or "-")
    return Accepted(existing, (), Decision(()), duplicate=True)


def _parse(store: IntakeStore, inbound: Inbound) -> ParsedMessage:
    if inbound.spooled is None:
        return parse_message(inbound.raw, inbound.mail_from, text_limit=TEXT_INLINE)
    return parse_spooled(store.files, inbound.spooled, inbound.mail_from)


def parse_spooled(files: RawFiles, spooled: SpooledRaw, mail_from: str | None) -> ParsedMessage:
    """A big message spooled to its file: its start is enough for a single-part text message,
    a multipart one is scanned from the file; anything else (rare) is parsed whole."""
    parsed = parse_prefix(spooled.head, mail_from)
    if parsed is None:
        with files.open(spooled.name) as lines:  # multipart: read a line at a time (mime_scan.py)
            parsed = scan_multipart(lines, mail_from)
    return parsed or parse_message(files.read(spooled.name), mail_from)


def _server_action(fetch: Fetch, delete_after: bool) -> ServerAction:
    """Delete unless kept (or a rule says delete_after); else mark read if asked; else nothing."""
    if delete_after or not fetch.keep_on_server:
        return "delete"
    return "seen" if fetch.mark_read else ""


def explain(store: IntakeStore, tokens: TaskTokens, table: RoutingTable, raw: bytes,
            scopes: Sequence[str]) -> Explanation:
    """What would happen to `raw`, with every rule checked; nothing is stored."""
    parsed = parse_message(raw)
    decision = _decide(store, tokens, table, parsed, (), scopes, (), trace=True)
    reply_task = decision.targets[0].task_id if decision.reply else None
    return Explanation(parsed, reply_task, decision)


def facts_of(parsed: ParsedMessage, rcpt_tos: Sequence[str]) -> Facts:
    automatic = "bounce" if parsed.bounce else "auto-reply" if parsed.auto_reply else ""
    return Facts.of(parsed.subject, parsed.from_addr, (*parsed.to, *parsed.cc, *rcpt_tos), automatic)


def find_reply_task(store: IntakeStore, tokens: TaskTokens, parsed: ParsedMessage,
                    address_tokens: Sequence[tuple[str, str]]) -> int | None:
    """The task this message replies to: a signed reply address, else In-Reply-To/References."""
    candidates: list[int] = []
    for login, token in address_tokens:
        task = tokens.task_of_address_token(login, token)
        if task is not None:
            candidates.append(task)
    referenced = [*parsed.in_reply_to, *reversed(parsed.references)]
    for message_id in referenced:
        task = tokens.task_of_message_id(message_id)
        if task is not None:
            candidates.append(task)
    sent = store.task_of_sent(referenced)
    if sent is not None:
        candidates.append(sent)
    return next((t for t in candidates if store.task_exists(t)), None)


def record_of(parsed: ParsedMessage, inbound: Inbound) -> MessageRecord:
    spooled = inbound.spooled
    return MessageRecord(
        raw=inbound.raw, direction="in", source=inbound.source, message_id=parsed.message_id,
        subject=parsed.subject, from_addr=parsed.from_addr, from_name=parsed.from_name, to=parsed.to,
        cc=parsed.cc, date=parsed.date, text=parsed.text,
        attachments=parsed.attachments,
        bounce=parsed.bounce, auto_reply=parsed.auto_reply, mail_from=inbound.mail_from or "",
        rcpt_tos=inbound.rcpt_tos, peer=inbound.peer,
        raw_file=spooled.name if spooled else None,
        sha256=spooled.sha256 if spooled else None, size=spooled.size if spooled else None,
    )
