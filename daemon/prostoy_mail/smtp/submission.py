"""SMTP submission for mail clients (587 with STARTTLS, 465 with implicit TLS): AUTH, then send.

AUTH PLAIN and LOGIN are offered only over TLS and checked against the store's users by
the LoginGuard (Argon2 off the event loop, failures slowed and then refused per client
address). A failed login always gets `535 5.7.8`, whether or not the user exists. The
envelope sender and every From address must be addresses the user may send as, else
`553 5.7.1`. The message is committed to the outbound spool before the `250`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from aiosmtpd.smtp import MISSING, AuthResult

from ..auth.login_guard import LoginGuard, Outcome
from ..config.model import SmtpLimits
from ..errors import OverLimit
from ..mail.line_ends import SmuggledMessage
from ..metrics import Metrics
from ..sending_policy import SendingPolicy, Submission, header_addresses
from .envelope import MailEnvelope, message_data
from .limiter import ConnectionLimiter
from .replies import SMUGGLING_REPLY, peer_of, store_failure_reply
from .server import BoundedSMTP

log = logging.getLogger(__name__)
Submit = Callable[[Submission], Awaitable[int]]  # returns the queue id for the 250 reply

FAILED = "535 5.7.8 Authentication credentials invalid"
BLOCKED = "454 4.7.0 Too many failed logins from your address; try again later"


class SubmissionHandler:
    def __init__(self, policy: Callable[[], SendingPolicy], limits: Callable[[], SmtpLimits], guard: LoginGuard,
                 submit: Submit, metrics: Metrics | None,
                 user_org: Callable[[str], Awaitable[int | None]]) -> None:
        self.policy_in_effect = policy  # (these two: the configuration in effect, as a reload swaps it)
        self.limits_in_effect = limits
        self.guard = guard
        # a login's organisation (looked up once, at AUTH): only its organisation's addresses are its to send as
        self.user_org = user_org
        self.submit = submit
        self.metrics = metrics
        self.in_data = 0

    @property
    def policy(self) -> SendingPolicy:
        return self.policy_in_effect()

    @property
    def limits(self) -> SmtpLimits:
        return self.limits_in_effect()

    # --- AUTH (these replace aiosmtpd's own PLAIN and LOGIN, which check synchronously) ------

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            blob = _b64(args[1])
            if blob is None:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._login(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await server.challenge_auth(server.AuthLoginUsernameChallenge)
        else:
            login = _b64(args[1])
            if login is None:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        if login is MISSING:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._login(server, login, password)

    async def _login(self, server: Any, login_bytes: bytes, password_bytes: bytes) -> AuthResult:
        ip = _ip(server.session)
        login = login_bytes.decode("utf-8", "replace").strip()
        password = password_bytes.decode("utf-8", "replace")
        outcome = await self.guard.check(ip, login, password)
        if self.metrics is not None:
            self.metrics.logins.labels("smtp", outcome.value).inc()
        if outcome is Outcome.OK:
            log.info("%s: logged in as %s", peer_of(server.session), login)
            return AuthResult(success=True, handled=False, auth_data=LoggedIn(login, await self.user_org(login)))
        if outcome is Outcome.BLOCKED:
            await server.push(BLOCKED)
            if server.transport is not None:
                server.transport.close()
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=FAILED)

    # --- the envelope and the message ---------------------------------------------------------

    async def handle_MAIL(self, server: Any, session: Any, envelope: MailEnvelope, address: str,
                          mail_options: list[str]) -> str:
        login, org = _logged_in(session)
        if address in ("<>", "") or self.policy.may_send_as(login, address, org) is None:
            log.info("%s: %s may not send as %r", peer_of(session), login, address)
            return f"553 5.7.1 <{address}>: you ({login}) may not send as this address"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: Any, session: Any, envelope: MailEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.limits.max_recipients:
            return f"452 4.5.3 Too many recipients (at most {self.limits.max_recipients} per message)"
        local, at, host = address.rpartition("@")
        if not at or not local or not host or any(c in address for c in " \t<>"):
            return f"501 5.1.3 <{address}>: bad recipient address syntax"
        if self.policy.is_ours(host) and self.policy.local_login(address) is None:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        sender = self.policy.sender(str(envelope.mail_from or ""))
        if self.policy.local_login(address) is None and sender is not None and sender.no_route is not None:
            # (accepted, it would wait five days in the spool and then bounce)
            return f"550 5.7.1 <{address}>: mail from <{sender.address}> cannot be sent outside: {sender.no_route}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: MailEnvelope) -> str:
        peer, (login, org) = peer_of(session), _logged_in(session)
        try:
            raw = message_data(envelope)
        except SmuggledMessage:
            return SMUGGLING_REPLY
        header = BytesHeaderParser(policy=compat32).parsebytes(raw)
        senders = header_addresses(header.get_all("From", []))
        if not senders:
            return "550 5.6.0 The message has no From: header"
        refused = [a for a in senders if self.policy.may_send_as(login, a, org) is None]
        if refused:
            log.info("%s: %s may not send as From: %s", peer, login, ", ".join(refused))
            return f"553 5.7.1 From: <{refused[0]}>: you ({login}) may not send as this address"
        submission = Submission(raw, envelope.mail_from or "", tuple(envelope.rcpt_tos), login, peer)
        try:
            queue_id = await self.submit(submission)
        except asyncio.CancelledError:
            raise
        except OverLimit as exc:
            log.info("%s (%s): %s", peer, login, exc)
            return f"450 4.7.1 {exc}"
        except Exception as exc:
            return store_failure_reply(exc, f"{peer} ({login})", "queueing")[0]
        return f"250 2.0.0 Ok: queued as {queue_id}"


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """What a successful AUTH leaves on the session (aiosmtpd's `auth_data`)."""

    login: str
    org: int | None  # the user's organisation (None: gone since)


def _logged_in(session: Any) -> tuple[str, int | None]:
    data = session.auth_data
    return (data.login, data.org) if isinstance(data, LoggedIn) else ("", None)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None


def _ip(session: Any) -> str:
    peer = getattr(session, "peer", None)
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def submission_protocol_factory(handler: SubmissionHandler, limits: SmtpLimits, hostname: str,
                                context: ssl.SSLContext, *, implicit_tls: bool) -> ConnectionLimiter:
    """A submission listener's protocol factory, its sessions bounded by `limits` (those it is
    opened with). With implicit TLS the server socket does the TLS; else STARTTLS is offered and
    required before MAIL (and AUTH)."""
    session_class = type("SubmissionSMTP", (BoundedSMTP,), {"line_length_limit": limits.max_line_length})

    def make(on_close: Callable[[], None]) -> asyncio.BaseProtocol:
        protocol: asyncio.BaseProtocol = session_class(
            handler, limits, on_close, hostname=hostname, enable_SMTPUTF8=True, ident="prostoy-mail ESMTP",
            count_rejected=handler.metrics.count_rejected if handler.metrics else None,
            tls_context=None if implicit_tls else context,
            require_starttls=not implicit_tls, auth_required=True, auth_require_tls=True,
            implicit_tls=implicit_tls,
        )
        return protocol

    return ConnectionLimiter(limits, make, handler.metrics, "submissions" if implicit_tls else "submission")
