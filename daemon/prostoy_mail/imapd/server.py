"""The IMAP4rev1 server for mail clients: twisted.mail.imap4 with our fixes and bounds.

Fixed here, each tested in tests/integration/test_imap_server.py:
- STARTTLS command injection: input pipelined after STARTTLS in the same packet is thrown
  away when TLS starts (RFC 3207/2595), not executed as if it came encrypted;
- TCP_NODELAY: without it every FETCH with a body and every IDLE push waits ~40 ms;
- pipelining after LOGIN (upstream #9282): commands sent right behind an asynchronous LOGIN
  wait for it instead of failing;
- APPEND without a flag list (Twisted raised on `None` flags: a BAD "server error"), and a
  refused APPEND answers NO (Twisted: BAD);
- a continuation request is `+ text` as RFC 3501 has it (Twisted sends a bare `+` for IDLE);
- SELECT also sends UIDNEXT, PERMANENTFLAGS and UNSEEN (RFC 3501 6.3.1);
- SEARCH runs in our own code (Twisted's fails on Python 3), partial FETCH `BODY[]<o.n>`
  sends only the range asked for, and 8-bit header values go out RFC 2047-encoded;
- bounds: a line or a literal over its limit ends that one connection; a client sending more
  than MAX_COMMANDS_PER_SECOND is not read from until the next second.

The Twisted internals overridden or called here are listed, with a hash of their source,
in tests/unit/test_library_internals.py, which fails when an upgrade changes one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from twisted.cred import checkers, credentials, portal
from twisted.cred import error as cred_error
from twisted.internet import defer, protocol
from twisted.mail import imap4
from zope.interface import implementer

from ..auth.login_guard import LoginGuard, Outcome
from ..config.model import Config
from ..metrics import Metrics
from .account import Account
from .view import FolderContext

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024  # bytes of one command line
MAX_LITERAL = 64 * 1024  # bytes of a string literal (APPEND's message: up to [smtp] max_message_size)
MAX_QUOTED = 200  # bytes of a client's command quoted back in a BAD reply
MAX_COMMANDS_PER_SECOND = 1000  # then reading from that client pauses until the next second


@implementer(checkers.ICredentialsChecker)
class GuardChecker:
    """Passwords through the LoginGuard (Argon2 off the loop, throttled per client address)."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, guard: LoginGuard, address: str, on_blocked: Callable[[], None],
                 metrics: Metrics | None) -> None:
        self.guard = guard
        self.address = address
        self.on_blocked = on_blocked
        self.metrics = metrics

    def requestAvatarId(self, creds: Any) -> defer.Deferred[bytes]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._check(creds)))

    async def _check(self, creds: Any) -> bytes:
        login = creds.username.decode("utf-8", "replace") if isinstance(creds.username, bytes) else creds.username
        password = creds.password.decode("utf-8", "replace") if isinstance(creds.password, bytes) else creds.password
        outcome = await self.guard.check(self.address, login, password)
        if self.metrics is not None:
            self.metrics.logins.labels("imap", outcome.value).inc()
        if outcome is Outcome.OK:
            return login.encode()
        if outcome is Outcome.BLOCKED:
            asyncio.get_running_loop().call_soon(self.on_blocked)
            raise cred_error.UnauthorizedLogin("Too many failed logins from your address; try again later")
        raise cred_error.UnauthorizedLogin("Authentication failed")


@implementer(portal.IRealm)
class Realm:
    def __init__(self, service: ImapService) -> None:
        self.service = service

    def requestAvatar(self, avatar_id: bytes, mind: Any, *interfaces: Any) -> tuple[Any, Account, Callable[[], None]]:
        user = self.service.context.reader.get_user(avatar_id.decode())
        org_config = self.service.org_config
        return imap4.IAccount, Account(user, self.service.context, lambda: org_config(user.org_id)), lambda: None


class ImapSession(imap4.IMAP4Server):
    IDENT = b"prostoy-mail IMAP4rev1 ready"
    MAX_LENGTH = MAX_LINE

    def __init__(self, service: ImapService, tls: Any, implicit_tls: bool) -> None:
        # AUTHENTICATE PLAIN/LOGIN: Twisted offers them only after STARTTLS; on IMAPS from the start
        challengers = {b"LOGIN": imap4.LOGINCredentials, b"PLAIN": imap4.PLAINCredentials} if implicit_tls else {}
        super().__init__(chal=challengers, contextFactory=None if implicit_tls else tls)
        self.service = service
        self.address = ""
        self._second = 0
        self._commands = 0

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.address = self.transport.getPeer().host
        refused = self.service.open(self.address)
        if refused is not None:
            self.transport.write(b"* BYE " + refused.encode() + b"\r\n")
            self.transport.loseConnection()
            self.address = ""
            return
        self.service.sessions.add(self)
        self.portal = portal.Portal(Realm(self.service), [
            GuardChecker(self.service.guard, self.address, self._blocked, self.service.metrics)])
        super().connectionMade()

    def connectionLost(self, reason: Any) -> None:
        self.service.sessions.discard(self)
        if self.address:
            self.service.closed(self.address)
        if self.mbox is not None:
            self.mbox.removeListener(self)
            self.mbox = None
        super().connectionLost(reason)

    def _blocked(self) -> None:
        self.sendLine(b"* BYE Too many failed logins from your address")
        self.transport.loseConnection()

    # --- bounds -------------------------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        now = time.monotonic()
        if int(now) != self._second:
            self._second, self._commands = int(now), 0
        self._commands += 1
        super().lineReceived(line)
        if self._commands >= MAX_COMMANDS_PER_SECOND and not self.paused and self.transport is not None:
            # Over the rate: stop reading this client until the next second (the rest of its
            # pipelined commands wait in our buffer and the kernel's). Others are not slowed.
            from twisted.internet import reactor
            self.pauseProducing()
            reactor.callLater(self._second + 1 - now, self._resume)

    def _resume(self) -> None:
        if self.transport is not None and self.transport.connected:
            self.resumeProducing()

    def lineLengthExceeded(self, line: bytes) -> None:
        log.info("imap %s: a line over %d bytes; disconnected", self.address, MAX_LINE)
        self.sendLine(b"* BYE Line too long")
        self.transport.loseConnection()

    def _stringLiteral(self, size: int) -> Any:
        if size < 0:  # `{-5}`: Twisted would ask for the literal's bytes ("+") and wait
            raise imap4.IllegalClientResponse("Bad literal size")
        if size > MAX_LITERAL:
            self._too_big(size)
            return defer.Deferred()  # never fires: the connection is closing
        return super()._stringLiteral(size)

    def _fileLiteral(self, size: int) -> Any:
        """APPEND's message: as big as a message may be, once logged in (Twisted spools big ones
        to a temporary file); before login no literal is more than MAX_LITERAL."""
        limit = self.service.config.smtp.max_message_size if self.state != "unauth" else MAX_LITERAL
        if size < 0:
            raise imap4.IllegalClientResponse("Bad literal size")
        if size > limit:
            self._too_big(size)
            return defer.Deferred()
        return super()._fileLiteral(size)

    def sendBadResponse(self, tag: bytes | None = None, message: bytes = b"") -> None:
        # Twisted's BAD texts quote the client's command back (`Too many arguments for command:
        # b'...'`, all 64 KB of it): a reply quotes at most MAX_QUOTED bytes. And its "Server
        # error: <Python's exception text>" (already logged by Twisted) says only that.
        if message.startswith(b"Server error"):
            message = b"Server error: the command could not be processed"
        elif len(message) > MAX_QUOTED:
            message = message[:MAX_QUOTED] + b"..."
        super().sendBadResponse(tag, message)

    def sendUntaggedResponse(self, message: bytes, isAsync: Any = None) -> None:
        if message.startswith(b"BAD Server error"):  # (Twisted's lineReceived: Python's text after it)
            message = b"BAD Server error: the command could not be processed"
        super().sendUntaggedResponse(message, isAsync)

    def _IMAP4Server__ebStatus(self, failure: Any, tag: bytes, box: str) -> None:
        # Twisted's own concatenates str and bytes here (TypeError): no answer, a hung client
        reason = failure.getErrorMessage() if failure.check(imap4.IllegalClientResponse) else "server error"
        self.sendBadResponse(tag, f"STATUS failed: {reason}".encode("utf-8", "replace"))

    def _too_big(self, size: int) -> None:
        log.info("imap %s: a literal of %d bytes; disconnected", self.address, size)
        self.sendLine(b"* BYE Literal too big")
        self.transport.loseConnection()

    # --- fixes --------------------------------------------------------------------------------

    def sendContinuationRequest(self, msg: bytes | None = b"Ready for additional command text") -> None:
        # RFC 3501 continue-req is "+" SP text; Twisted sends a bare "+" for IDLE (msg None). An
        # empty AUTHENTICATE challenge stays empty ("+ ").
        self.sendLine(b"+ " + (b"idling" if msg is None else msg))

    def do_STARTTLS(self, tag: bytes) -> None:
        started = self.startedTLS
        super().do_STARTTLS(tag)
        if self.startedTLS and not started:
            self.clearLineBuffer()  # what came pipelined after STARTTLS was sent in plain text: dropped

    unauth_STARTTLS = (do_STARTTLS,)

    def authenticateLogin(self, user: bytes, passwd: bytes) -> defer.Deferred[Any]:
        # Twisted runs commands pipelined behind an unfinished LOGIN at once, in the wrong state
        # (upstream #9282); its own `blocked` queue holds them until LOGIN is done.
        if self.blocked is None:
            self.blocked = []
        d = defer.maybeDeferred(super().authenticateLogin, user, passwd)

        def unblock(result: Any) -> Any:
            from twisted.internet import reactor
            reactor.callLater(0, self._unblock)
            return result

        d.addBoth(unblock)
        return d

    def _cbAppendGotMailbox(self, mbox: Any, tag: bytes, flags: Any, date: Any, message: Any) -> None:
        if mbox is None:  # Twisted answers this with a str, which fails as a server error (BAD)
            self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
            return
        # Twisted iterates the flags list, which is None for `APPEND box {n}` without flags
        super()._cbAppendGotMailbox(mbox, tag, flags or [], date, message)

    def _cbCopySelectedMailbox(self, mbox: Any, tag: bytes, messages: Any, mailbox: Any, uid: Any) -> None:
        if not mbox:  # Twisted answers this with a str, which fails as a server error (BAD)
            self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
            return
        super()._cbCopySelectedMailbox(mbox, tag, messages, mailbox, uid)

    def _IMAP4Server__ebAppend(self, failure: Any, tag: bytes) -> None:
        # a refused APPEND is NO with the reason (RFC 3501), not BAD as Twisted answers
        if failure.check(imap4.MailboxException):
            self.sendNegativeResponse(tag, str(failure.value).encode("utf-8", "replace"))
        else:
            self.sendBadResponse(tag, b"APPEND failed: server error")
            log.error("imap %s: APPEND failed: %s", self.address, failure.getErrorMessage())

    def _cbSelectWork(self, mbox: Any, cmdName: bytes, tag: bytes) -> None:
        if mbox is None:
            self.sendNegativeResponse(tag, b"No such mailbox")
            return
        flags = " ".join(mbox.getFlags()).encode()
        self.sendUntaggedResponse(b"%d EXISTS" % mbox.getMessageCount())
        self.sendUntaggedResponse(b"%d RECENT" % mbox.getRecentCount())
        self.sendUntaggedResponse(b"FLAGS (" + flags + b")")
        permanent = (flags + b" \\*") if mbox.isWriteable() else b""
        self.sendPositiveResponse(None, b"[PERMANENTFLAGS (" + permanent + b")] Flags permitted")
        first_unseen = mbox.first_unseen()
        if first_unseen is not None:
            self.sendPositiveResponse(None, b"[UNSEEN %d] First unseen" % first_unseen)
        self.sendPositiveResponse(None, b"[UIDVALIDITY %d] UIDs valid" % mbox.getUIDValidity())
        self.sendPositiveResponse(None, b"[UIDNEXT %d] Predicted next UID" % mbox.getUIDNext())
        mode = b"READ-WRITE" if mbox.isWriteable() else b"READ-ONLY"
        mbox.addListener(self)
        self.sendPositiveResponse(tag, b"[" + mode + b"] " + cmdName + b" completed")
        self.state = "select"
        self.mbox = mbox

    auth_SELECT = (imap4.IMAP4Server._selectWork, imap4.IMAP4Server.arg_astring, 1, b"SELECT")
    select_SELECT = auth_SELECT
    auth_EXAMINE = (imap4.IMAP4Server._selectWork, imap4.IMAP4Server.arg_astring, 0, b"EXAMINE")
    select_EXAMINE = auth_EXAMINE

    def spew_body(self, part: Any, id: int, msg: Any, _w: Any = None, _f: Any = None) -> Any:
        """`BODY[...]<origin.length>`: only that range, labelled `<origin>` (RFC 3501 7.4.2);
        Twisted sends the whole section and labels it `<origin.length>`."""
        if part.partialBegin is None:
            return super().spew_body(part, id, msg, _w, _f)
        write = _w or self.transport.write
        data = _section(part, msg)
        begin, length = part.partialBegin, part.partialLength
        part.partialBegin = None  # the section's name without the range
        try:
            name = part.getBytes()
        finally:
            part.partialBegin = begin
        write(name + b"<%d> " % begin + imap4._literal(data[begin:begin + length]))
        return None


def _section(part: Any, msg: Any) -> bytes:
    """The bytes of a FETCH BODY section, before any partial range is applied."""
    for number in part.part or ():
        if msg.isMultipart():
            msg = msg.getSubPart(number)
        elif number > 0:
            raise TypeError("Requested subpart of non-multipart message")
    if part.header:
        return bytes(imap4._formatHeaders(msg.getHeaders(part.header.negate, *part.header.fields)))
    if part.mime:
        return bytes(imap4._formatHeaders(msg.getHeaders(True)))
    if part.text or part.part:
        return bytes(msg.getBodyFile().read())
    source = imap4.IMessageFile(msg, None)
    return bytes(source.open().read() if source is not None else msg.getBodyFile().read())


class ImapService:
    """The listeners' shared state: configuration, logins, folders, connections per address."""

    def __init__(self, config: Callable[[], Config], guard: LoginGuard, context: FolderContext,
                 metrics: Metrics | None = None, org_config: Callable[[int], Config] | None = None) -> None:
        self.config_in_effect = config  # (as a reload swaps it)
        # An organisation's settings (its mailboxes: the folders of its users), by its id.
        self.org_config = org_config or (lambda org_id: self.config_in_effect())
        self.guard = guard
        self.context = context
        self.metrics = metrics
        self.per_ip: dict[str, int] = {}
        self.sessions: set[ImapSession] = set()

    @property
    def config(self) -> Config:
        return self.config_in_effect()

    def close_all(self) -> None:
        """On stop: every client is told and disconnected."""
        for session in list(self.sessions):
            if session.transport is not None:
                session.sendLine(b"* BYE prostoy-mail is shutting down")
                session.transport.loseConnection()

    def open(self, address: str) -> str | None:
        """Count a new session from `address`; or why not ([imap] max_connections and
        max_connections_per_ip, read at each connection: a reload changes them for new ones)."""
        limits = self.config.imap
        if len(self.sessions) >= limits.max_connections:
            return "Too many connections (the server's limit); try again later"
        if self.per_ip.get(address, 0) >= limits.max_connections_per_ip:
            return "Too many connections from your address"
        self.per_ip[address] = self.per_ip.get(address, 0) + 1
        return None

    def closed(self, address: str) -> None:
        left = self.per_ip.get(address, 1) - 1
        if left:
            self.per_ip[address] = left
        else:
            self.per_ip.pop(address, None)

    def factory(self, tls: Any, implicit_tls: bool) -> protocol.Factory:
        service = self

        class Factory(protocol.Factory):
            def buildProtocol(self, addr: Any) -> ImapSession:
                session = ImapSession(service, tls, implicit_tls)
                session.factory = self
                return session

        return Factory()
