"""Inbound SMTP for the domain: mail for its mailboxes, never a relay, 250 only when stored.

The handler only strips the protocol: recipients are checked against the domain's
mailboxes, the data's line ends are made clean, and the message goes to the one intake.
It answers 250 after the intake's transaction has committed; anything that goes wrong
before that gets 451 4.3.0, so the sender keeps the message and retries.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config.model import Config, SmtpLimits, Tls
from ..delivery import Delivery
from ..mail.addresses import Refused, classify_recipient
from ..mail.line_ends import SmuggledMessage, normalise_line_ends
from ..store.raw_files import RawFiles, SpooledRaw
from ..tls_context import server_context
from .admission import ConnectionCounts
from .envelope import MailEnvelope, message_data
from .limiter import ConnectionLimiter
from .replies import DISK_FULL_REPLY, SMUGGLING_REPLY, peer_of, store_failure_reply
from .server import BoundedSMTP

if TYPE_CHECKING:  # (an SMTP worker process does without prometheus-client)
    from ..metrics import Metrics

log = logging.getLogger(__name__)




Deliver = Callable[[Delivery], Awaitable[str]]  # returns a queue id for the 250 reply


class DeliveryFailed(Exception):
    """The daemon could not store a message an SMTP worker handed it: the reply, and its metric
    reason, as `store_failure_reply` gave them where the failure happened."""

    def __init__(self, reply: str, reason: str) -> None:
        super().__init__(reply)
        self.reply = reply
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Policy:
    """What the listener accepts; replaced as a whole on reload."""

    domain: str
    mailboxes: frozenset[str]
    limits: SmtpLimits
    tls: Tls | None = None  # [tls]: STARTTLS is offered (never required: port 25 takes mail in clear too)
    own_domains: frozenset[str] = frozenset()  # organisations' own domains (their mailboxes: login@domain)

    @classmethod
    def of(cls, config: Config) -> Policy:
        tls = config.tls if config.tls.cert is not None and config.tls.key is not None else None
        return cls(config.daemon.domain, frozenset(m.login for m in config.mailboxes), config.smtp, tls)


_REFUSAL_REASONS = {"550 5.1.1": "unknown_recipient", "554 5.7.1": "relay_denied", "550 5.7.1": "relay_denied",
                    "501 5.1.3": "bad_address"}


MIN_FREE = 1024 * 1024  # bytes the store's disk must have free beyond a message's declared SIZE


def _room_for(folder: Path, size: int) -> bool:
    """Whether the disk of the store's message files (`folder`, beside the store: the same disk as
    its parent, which exists before the folder is made) can take `size` more bytes and MIN_FREE
    beside (the store's own writes); unknown (statvfs failing) counts as room."""
    try:
        stat = os.statvfs(folder.parent)
    except OSError:
        return True
    return stat.f_bavail * stat.f_frsize >= size + MIN_FREE


class InboundHandler:
    def __init__(self, policy: Callable[[], Policy], deliver: Deliver,
                 count_rejected: Callable[[str], None] | None = None, spool: RawFiles | None = None) -> None:
        self.policy_in_effect = policy  # (a reload swaps it; a command reads it once)
        self.deliver = deliver
        self.count_rejected = count_rejected  # a refusal, by reason (a metric)
        self.spool = spool  # the store's files: big messages are written there as they arrive
        self.in_data = 0  # sessions between DATA and its reply (a clean stop lets them finish)

    @property
    def policy(self) -> Policy:
        return self.policy_in_effect()

    async def handle_MAIL(self, server: Any, session: Any, envelope: MailEnvelope, address: str,
                          mail_options: list[str]) -> str:
        if self.spool is not None:
            declared = next((int(o[5:]) for o in mail_options if o.upper().startswith("SIZE=") and o[5:].isdigit()), 0)
            if not _room_for(self.spool.folder, declared):  # early: before the client sends it all
                log.warning("%s: the store's disk has no room for %d more bytes; answering 452", peer_of(session),
                            declared + MIN_FREE)
                self._count("disk_full")
                return DISK_FULL_REPLY
        envelope.mail_from = address  # the null sender arrives as "<>" (and must stay truthy for aiosmtpd)
        envelope.mail_options.extend(mail_options)
        envelope.recipients = []
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: Any, session: Any, envelope: MailEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        policy = self.policy
        recipients = envelope.recipients
        if len(recipients) >= policy.limits.max_recipients:
            self._count("too_many_recipients")
            return f"452 4.5.3 Too many recipients (at most {policy.limits.max_recipients} per message)"
        try:
            recipient = classify_recipient(address, policy.domain, policy.mailboxes, policy.own_domains)
        except Refused as refused:
            log.info("%s: refused recipient %r: %s", peer_of(session), address, refused.reply)
            self._count(_REFUSAL_REASONS.get(refused.reply[:9], "refused_recipient"))
            return refused.reply
        recipients.append(recipient)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: MailEnvelope) -> str:
        peer = peer_of(session)
        spooled = envelope.spooled
        try:
            if spooled is not None and not envelope.clean_line_ends:
                spooled = await asyncio.to_thread(_normalise_spooled, self.spool, spooled)
            raw = spooled.head if spooled is not None else message_data(envelope)
        except SmuggledMessage:
            log.warning("%s: refused a message with a bare-LF end-of-data sequence (SMTP smuggling)", peer)
            self._count("smuggling")
            return SMUGGLING_REPLY
        except OSError as exc:
            reply, reason = store_failure_reply(exc, peer, "storing")
            self._count(reason)
            return reply
        mail_from = "" if envelope.mail_from in ("<>", None) else envelope.mail_from
        delivery = Delivery(raw, mail_from, tuple(envelope.recipients), peer, spooled)
        try:
            queue_id = await self.deliver(delivery)
        except asyncio.CancelledError:
            raise
        except DeliveryFailed as failed:
            self._count(failed.reason)
            return failed.reply
        except Exception as exc:
            reply, reason = store_failure_reply(exc, peer, "storing")
            self._count(reason)
            return reply
        return f"250 2.0.0 Ok: stored as {queue_id}"


    def _count(self, reason: str) -> None:
        if self.count_rejected is not None:
            self.count_rejected(reason)


def _normalise_spooled(files: RawFiles | None, spooled: SpooledRaw) -> SpooledRaw:
    """A spooled message with bare CR or LF: read whole, made CRLF only (or refused, see
    line_ends.py) and written again. Only broken senders do this, so only they cost memory."""
    assert files is not None
    try:
        raw = normalise_line_ends(files.read(spooled.name))
    finally:
        files.remove(spooled.name)
    return files.write(raw, head_size=len(spooled.head))


def session_factory(handler: InboundHandler, hostname: str,
                    tls: Tls | None) -> Callable[[Callable[[], None]], BoundedSMTP]:
    """Makes an inbound SMTP session (in the daemon's process, or in an SMTP worker's) with the
    handler's limits at the time: `make(on_close)`. With `tls` ([tls]) the sessions offer STARTTLS
    (the certificate is loaded here, when a listener is opened: a reload loads a renewed one)."""
    classes: dict[int, type[BoundedSMTP]] = {}
    context = server_context(tls) if tls is not None else None

    def make(on_close: Callable[[], None]) -> BoundedSMTP:
        limits = handler.policy.limits
        session_class = classes.get(limits.max_line_length)
        if session_class is None:  # aiosmtpd reads its line length limit from the class
            session_class = classes[limits.max_line_length] = type(
                "InboundSMTP", (BoundedSMTP,), {"line_length_limit": limits.max_line_length})
        return session_class(handler, limits, on_close, hostname=hostname, enable_SMTPUTF8=True,
                             ident="prostoy-mail ESMTP", count_rejected=handler.count_rejected, spool=handler.spool,
                             tls_context=context, require_starttls=False)

    return make


def protocol_factory(handler: InboundHandler, policy: Policy, hostname: str, metrics: Metrics | None,
                     counts: ConnectionCounts | None = None) -> ConnectionLimiter:
    """The listener's protocol factory (sessions in the daemon's process), bounded by the limits
    of `policy`, the one the listener is opened for; `counts`: the open sessions (kept across a
    reload that reopens the listener, so those opened before still count)."""
    return ConnectionLimiter(policy.limits, session_factory(handler, hostname, policy.tls), metrics, "smtp", counts)
