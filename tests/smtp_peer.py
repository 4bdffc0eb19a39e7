"""A real SMTP server standing in for an external one (smtp.yandex.ru, a relay): aiosmtpd on the test's loop.

It speaks STARTTLS or implicit TLS with a trustme certificate, can require AUTH with given
credentials, and answers each recipient as the test says (accept, defer with 4xx, reject
with 5xx), so the outbound spool's retries and bounces can be driven over real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: str | None


@dataclass
class SmtpPeer:
    ca: trustme.CA
    security: str = "starttls"  # "starttls", "ssl" or "none"
    credentials: dict[str, str] = field(default_factory=dict)  # login -> password; empty: no AUTH
    answers: dict[str, str] = field(default_factory=dict)  # recipient -> RCPT reply ("451 4.2.0 ...")
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    logins: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    misbehave: str = ""  # "stall": DATA never gets an answer; "drop": the connection closes in DATA

    async def start(self) -> SmtpPeer:
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        handler = _Handler(self)
        peer = self

        def factory() -> SMTP:
            peer.connections += 1
            with warnings.catch_warnings():  # a plain-text peer with AUTH is what some tests need
                warnings.simplefilter("ignore", UserWarning)
                return self._smtp(handler, context)

        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(factory, "127.0.0.1", 0,
                                               ssl=context if self.security == "ssl" else None)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def _smtp(self, handler: _Handler, context: ssl.SSLContext) -> SMTP:
        return SMTP(handler, hostname="peer.test", ident="test peer",
                    tls_context=context if self.security == "starttls" else None,
                    require_starttls=self.security == "starttls",
                    auth_required=bool(self.credentials), auth_require_tls=self.security != "none",
                    authenticator=self._authenticate if self.credentials else None)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        if self.credentials.get(login) == password:
            self.logins.append(login)
            return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count:
            self.arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"the peer got {len(self.received)} messages, not {count}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), remaining)
        return self.received


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        answer = self.peer.answers.get(address.lower(), "250 2.1.5 Ok")
        if answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return answer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.peer.misbehave == "stall":
            await asyncio.sleep(3600)
        if self.peer.misbehave == "drop":
            server.transport.close()
            return "421 4.3.0 gone"
        login = session.auth_data if isinstance(session.auth_data, str) else None
        self.peer.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                           envelope.original_content, login))
        self.peer.arrived.set()
        return "250 2.0.0 Ok: queued at the peer"
