"""A blocking POP3 connection: stdlib poplib, used from one thread.

poplib rather than Twisted's POP3 client, which prefers APOP without TLS even when STLS is
offered and does not verify certificates on STLS. STLS here is explicit and verified, and
a server that does not offer it is an error, never a fall-back to plain text.
"""

from __future__ import annotations

import contextlib
import poplib
import socket
import ssl

from ..config.model import Endpoint
from ..public_address import check_public
from .bounds import ResponseBudget
from .errors import FetchError
from .imap import TlsSettings, connect_errors

# poplib refuses lines over 2,048 bytes; real mail has longer ones (RFC 5322 allows 998, but
# HTML mail often ignores that). It is a module-wide limit in poplib, so it is raised here.
poplib._MAXLINE = 1 << 20  # type: ignore[attr-defined]


class _Bounded(poplib.POP3):
    """poplib with every response bounded (fetch/bounds.py): each command goes out through
    `_putcmd` and every line of the answer comes in through `_getline`. Nothing a server says
    of a message's size (LIST, `+OK n octets`) is trusted: what RETR reads is counted."""

    budget: ResponseBudget

    def _putcmd(self, line: str) -> None:
        self.budget.start()
        super()._putcmd(line)  # type: ignore[misc]

    def _getline(self) -> tuple[bytes, int]:
        line, octets = super()._getline()  # type: ignore[misc]
        self.budget.take(octets, self.sock)
        return line, octets


class _BoundedPop3(_Bounded):
    def __init__(self, host: str, port: int, timeout: float, budget: ResponseBudget) -> None:
        self.budget = budget  # (the greeting is read inside __init__)
        super().__init__(host, port, timeout=timeout)


class _BoundedPop3Ssl(_Bounded, poplib.POP3_SSL):
    def __init__(self, host: str, port: int, timeout: float, budget: ResponseBudget,
                 context: ssl.SSLContext) -> None:
        self.budget = budget
        poplib.POP3_SSL.__init__(self, host, port, context=context, timeout=timeout)


class Pop3Connection:
    def __init__(self, pop: poplib.POP3) -> None:
        self.pop = pop

    @classmethod
    def open(cls, endpoint: Endpoint, tls: TlsSettings, login: str, password: str) -> Pop3Connection:
        with connect_errors(endpoint, poplib.error_proto):
            if tls.public_only:
                check_public(endpoint.host, endpoint.port)
            if tls.mode == "ssl":
                pop: poplib.POP3 = _BoundedPop3Ssl(endpoint.host, endpoint.port, tls.timeout, tls.budget(),
                                                   tls.context(endpoint.host))
            else:
                pop = _BoundedPop3(endpoint.host, endpoint.port, tls.timeout, tls.budget())
        if tls.mode == "starttls":
            try:
                offered = "STLS" in pop.capa()
            except poplib.error_proto:
                offered = False
            if not offered:
                pop.close()
                raise FetchError("starttls", "the server does not offer STLS (refusing to go on in plain text)")
            try:
                pop.stls(tls.context(endpoint.host))
            except ssl.SSLCertVerificationError as exc:
                raise FetchError("tls", f"certificate not trusted: {exc.verify_message}") from None
            except (ssl.SSLError, poplib.error_proto, OSError) as exc:
                raise FetchError("starttls", str(exc)) from None
        try:
            pop.user(login)
            pop.pass_(password)
        except poplib.error_proto as exc:
            pop.close()
            raise FetchError("login", _text(exc)) from None
        return cls(pop)

    def uidl(self) -> dict[int, str]:
        """Message number -> UIDL, for this session."""
        _, lines, _ = self.pop.uidl()
        listing = {}
        for line in lines:
            number, _, uid = line.decode("ascii", "replace").partition(" ")
            if number.isdigit() and uid:
                listing[int(number)] = uid.strip()
        return listing

    def headers(self, number: int) -> bytes:
        _, lines, _ = self.pop.top(number, 0)
        return b"\r\n".join(lines) + b"\r\n"

    def retrieve(self, number: int) -> bytes:
        _, lines, _ = self.pop.retr(number)  # poplib strips CRLF and undoes dot-stuffing
        return b"\r\n".join(lines) + b"\r\n"

    def delete(self, number: int) -> None:
        self.pop.dele(number)

    def quit(self) -> None:
        """End the session: only now does the server carry out the deletions (RFC 1939 UPDATE)."""
        self.pop.quit()

    def abort(self) -> None:
        """From another thread: break a blocking read by shutting the socket down."""
        sock = getattr(self.pop, "sock", None)  # None once the session has ended
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError, poplib.error_proto):
            self.pop.close()


def _text(exc: BaseException) -> str:
    value = exc.args[0] if exc.args else str(exc)
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)).strip()
