"""Talking to the next server (a gateway's external SMTP server, or [relay]) with aiosmtplib.

One connection per next hop is kept open and reused for the following messages (a NOOP
checks a connection that sat idle). TLS is as configured: implicit, STARTTLS (required:
a server that does not offer it is a failure, never a fall-back to plain text) or none;
certificates are verified unless the configuration says not to.

Answers are classified as SMTP does: 2xx delivered, 5xx permanent (bounce), 4xx and every
network, TLS or login problem temporary (retry later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiosmtplib

from ..config.model import Security
from ..public_address import PrivateAddress, check_public_async

log = logging.getLogger(__name__)
NOOP_AFTER_IDLE = 5.0  # seconds: a connection idle this long is checked before it is used
CLOSE_AFTER_IDLE = 60.0  # seconds: an idle connection is closed


@dataclass(frozen=True, slots=True)
class NextHop:
    host: str
    port: int
    security: Security
    verify: bool = True
    ca_file: Path | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    public_only: bool = False  # an organisation in the store's server: public addresses only

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class HopFailure(Exception):
    """The next server could not take the message at all; `reply` is what the sender is told."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply

    @property
    def permanent(self) -> bool:
        return self.reply[:1] == "5"


@dataclass
class _Connection:
    smtp: aiosmtplib.SMTP
    last_used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RelayPool:
    def __init__(self, local_hostname: str, timeout: float = 60.0) -> None:
        self.local_hostname = local_hostname
        self.timeout = timeout
        self._connections: dict[NextHop, _Connection] = {}
        self._locks: dict[NextHop, asyncio.Lock] = {}

    async def send(self, hop: NextHop, mail_from: str, recipients: Sequence[str], raw: bytes) -> dict[str, str]:
        """The answer for each recipient ("250 ...", "450 ...", "550 ..."); HopFailure if none could be had."""
        lock = self._locks.setdefault(hop, asyncio.Lock())
        async with lock:
            smtp = await self._connection(hop)
            options = ["BODY=8BITMIME"] if not raw.isascii() and smtp.supports_extension("8bitmime") else []
            try:
                refused, answer = await smtp.sendmail(mail_from, list(recipients), raw, mail_options=options)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                return {r.recipient: f"{r.code} {r.message}" for r in exc.recipients}
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
                self._drop(hop)
                raise HopFailure(f"4.4.2 {hop}: connection lost while sending: {exc}") from None
            except aiosmtplib.SMTPResponseException as exc:  # MAIL or DATA refused: the same for everyone
                if exc.code == 421:
                    self._drop(hop)
                return {r: f"{exc.code} {exc.message}" for r in recipients}
            except aiosmtplib.SMTPException as exc:
                self._drop(hop)
                raise HopFailure(f"4.4.2 {hop}: {exc}") from None
            finally:
                connection = self._connections.get(hop)
                if connection is not None:
                    connection.last_used = time.monotonic()
            replies = {r: f"250 {answer}" for r in recipients}
            replies.update({r: f"{resp.code} {resp.message}" for r, resp in refused.items()})
            return replies

    async def _connection(self, hop: NextHop) -> aiosmtplib.SMTP:
        connection = self._connections.get(hop)
        if connection is not None:
            if not connection.smtp.is_connected:
                self._drop(hop)
            elif time.monotonic() - connection.last_used > NOOP_AFTER_IDLE:
                try:
                    await connection.smtp.noop()
                    return connection.smtp
                except (aiosmtplib.SMTPException, OSError):
                    self._drop(hop)
            else:
                return connection.smtp
        smtp = await self._connect(hop)
        self._connections[hop] = _Connection(smtp, time.monotonic())
        return smtp

    async def _connect(self, hop: NextHop) -> aiosmtplib.SMTP:
        if hop.public_only:
            try:
                await check_public_async(hop.host, hop.port)
            except (PrivateAddress, OSError) as exc:
                raise HopFailure(f"4.4.1 {hop}: {exc}") from None
        smtp = aiosmtplib.SMTP(
            hostname=hop.host, port=hop.port, local_hostname=self.local_hostname, timeout=self.timeout,
            use_tls=hop.security == "ssl", start_tls=hop.security == "starttls",
            tls_context=hop.tls_context() if hop.security != "none" else None,
            validate_certs=hop.verify,
        )
        try:
            await smtp.connect()
            if hop.login is not None:
                await smtp.login(hop.login, hop.password or "")
        except ssl.SSLCertVerificationError as exc:
            smtp.close()
            raise HopFailure(f"4.7.5 {hop}: certificate not trusted: {exc.verify_message}") from None
        except ssl.SSLError as exc:
            smtp.close()
            raise HopFailure(f"4.7.5 {hop}: TLS failed: {exc}") from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            smtp.close()
            raise HopFailure(f"4.7.8 {hop}: login as {hop.login} refused: {exc.code} {exc.message}") from None
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            raise HopFailure(f"4.4.2 {hop}: {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:  # refused, timed out, STARTTLS not offered ...
            smtp.close()
            text = str(exc) or type(exc).__name__
            if "STARTTLS" in text or "starttls" in text:
                text += " (refusing to go on in plain text)"
            raise HopFailure(f"4.4.1 {hop}: {text}") from None
        return smtp

    def _drop(self, hop: NextHop) -> None:
        connection = self._connections.pop(hop, None)
        if connection is not None:
            connection.smtp.close()

    async def close_idle(self) -> None:
        now = time.monotonic()
        for hop, connection in list(self._connections.items()):
            lock = self._locks.get(hop)
            if now - connection.last_used > CLOSE_AFTER_IDLE and not (lock and lock.locked()):
                self._connections.pop(hop, None)
                await _quit(connection.smtp)

    async def close(self) -> None:
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            await _quit(connection.smtp)


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
        await asyncio.wait_for(smtp.quit(), 5)
    smtp.close()

