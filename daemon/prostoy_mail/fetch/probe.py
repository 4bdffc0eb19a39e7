"""The Test button: does a gateway's configuration work? Step by step, saying what failed and why.

Fetching (IMAP or POP3): DNS, TCP connect, TLS (implicit or STARTTLS, never a silent
fall-back to plain text), login, the INBOX. Sending (SMTP): DNS, connect, TLS, EHLO, AUTH.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass

from ..config.model import Endpoint, Gateway, Server
from ..public_address import PrivateAddress, check_public
from .imap import TIMEOUT, FetchError, ImapConnection
from .pop3 import Pop3Connection
from .secrets import gateway_password, smtp_credentials
from .watcher import tls_of


@dataclass(frozen=True, slots=True)
class Step:
    protocol: str
    step: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.protocol:<5} {self.step:<9} {'OK' if self.ok else 'FAILED':<6} {self.detail}"


def _reach(protocol: str, endpoint: Endpoint, public_only: bool) -> list[Step]:
    """DNS and TCP: the steps before any protocol; an empty list's last step failing stops the rest."""
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(endpoint.host, endpoint.port,
                                                                       type=socket.SOCK_STREAM)})
    except socket.gaierror as exc:
        return [Step(protocol, "dns", False, f"{endpoint.host}: {exc.strerror}")]
    if public_only:
        try:
            check_public(endpoint.host, endpoint.port)
        except (PrivateAddress, socket.gaierror) as exc:
            return [Step(protocol, "dns", False, str(exc))]  # (its addresses are not shown either)
    steps = [Step(protocol, "dns", True, f"{endpoint.host} -> {', '.join(str(a) for a in addresses)}")]
    try:
        socket.create_connection((endpoint.host, endpoint.port), timeout=10).close()
    except TimeoutError:
        return [*steps, Step(protocol, "connect", False, f"{endpoint}: timed out")]
    except OSError as exc:
        return [*steps, Step(protocol, "connect", False, f"{endpoint}: {exc.strerror or exc}")]
    return [*steps, Step(protocol, "connect", True, str(endpoint))]


def probe_fetching(gateway: Gateway, server: Server) -> list[Step]:
    protocol = gateway.protocol
    endpoint = server.imap if protocol == "imap" else server.pop3
    if endpoint is None:
        return [Step(protocol, "settings", False, f'server "{server.name}" has no {protocol} endpoint')]
    steps = _reach(protocol, endpoint, server.public_only)
    if not steps[-1].ok:
        return steps
    tls = tls_of(server)
    try:
        password = gateway_password(gateway)
        if protocol == "imap":
            imap = ImapConnection.open(endpoint, tls, gateway.login, password)
            try:
                selected = imap.select("INBOX")
            finally:
                imap.close()
            done = f"INBOX: {selected.exists} messages, IDLE {'yes' if imap.can_idle else 'no (polling)'}"
        else:
            pop = Pop3Connection.open(endpoint, tls, gateway.login, password)
            try:
                done = f"{len(pop.uidl())} messages"
                pop.quit()
            finally:
                pop.close()
    except FetchError as exc:
        failed = {"tls": "tls", "starttls": "tls", "login": "login", "password": "login"}.get(exc.step, exc.step)
        if failed == "login":
            steps.append(Step(protocol, "tls", True, _tls_name(tls.mode)))
        steps.append(Step(protocol, failed, False, str(exc).split(": ", 1)[-1]))
        return steps
    steps.append(Step(protocol, "tls", True, _tls_name(tls.mode)))
    steps.append(Step(protocol, "login", True, f"{gateway.login}; {done}"))
    return steps


def probe_sending(gateway: Gateway, server: Server) -> list[Step]:
    endpoint = server.smtp
    if endpoint is None:
        return [Step("smtp", "settings", False, f'server "{server.name}" has no smtp endpoint')]
    steps = _reach("smtp", endpoint, server.public_only)
    if not steps[-1].ok:
        return steps
    context = tls_of(server).context(endpoint.host)
    try:
        login, password = smtp_credentials(gateway)
    except FetchError as exc:
        return [*steps, Step("smtp", "login", False, str(exc))]
    client: smtplib.SMTP | None = None
    try:
        try:
            if server.security == "ssl":
                client = smtplib.SMTP_SSL(endpoint.host, endpoint.port, context=context, timeout=TIMEOUT)
            else:
                client = smtplib.SMTP(endpoint.host, endpoint.port, timeout=TIMEOUT)
            client.ehlo()
            if server.security == "starttls":
                if not client.has_extn("starttls"):
                    return [*steps, Step("smtp", "tls", False, "the server does not offer STARTTLS "
                                                               "(refusing to go on in plain text)")]
                client.starttls(context=context)
                client.ehlo()
        except ssl.SSLCertVerificationError as exc:
            return [*steps, Step("smtp", "tls", False, f"certificate not trusted: {exc.verify_message}")]
        except (ssl.SSLError, smtplib.SMTPException, OSError) as exc:
            return [*steps, Step("smtp", "tls", False, str(exc))]
        steps.append(Step("smtp", "tls", True, _tls_name(server.security)))
        if not client.has_extn("auth"):
            steps.append(Step("smtp", "login", False, "the server offers no AUTH here"))
            return steps
        try:
            client.login(login, password)
        except smtplib.SMTPAuthenticationError as exc:
            reply = exc.smtp_error
            text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
            steps.append(Step("smtp", "login", False, f"{exc.smtp_code} {text}"))
            return steps
        except (smtplib.SMTPException, OSError) as exc:
            steps.append(Step("smtp", "login", False, str(exc)))
            return steps
        steps.append(Step("smtp", "login", True, login))
        return steps
    finally:
        if client is not None:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()


def _tls_name(mode: str) -> str:
    return {"ssl": "implicit TLS", "starttls": "STARTTLS", "none": "none (plain text, as configured)"}[mode]
