"""aiosmtpd's SMTP protocol with the bounds a public listener needs.

aiosmtpd has no limits on connections, errors or session time, and answers some errors
without enhanced status codes; this subclass adds those, and takes out per-connection and
per-line work aiosmtpd does (reflection in `__init__`, a timer per line, a write per reply
line, line-by-line DATA). It reaches into aiosmtpd internals (`push`, `_writer`,
`_reset_timeout`, `_timeout_handle`, `_timeout_cb`, `_smtp_methods`), so aiosmtpd is pinned
exactly in pyproject.toml and tests/unit/test_library_internals.py fails when any of them
changes; tests/integration/test_smtp_data_reader.py compares replies and stored bytes with
stock aiosmtpd over TCP.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, SMTP, _AuthMechAttr, login_always_fail

from ..config.model import SmtpLimits
from ..mail.line_ends import has_bare_line_ends
from ..store.raw_files import RawFiles, SpooledRaw
from .envelope import MailEnvelope
from .replies import ENHANCED
from .spool import SPOOL_AT, DataSpool

if TYPE_CHECKING:  # (an SMTP worker process does without prometheus-client)
    pass

log = logging.getLogger(__name__)

ERRORS_BEFORE_DELAY = 2  # rejected commands answered at once; each further one waits longer (error_delay)
MAX_ERROR_DELAY = 10.0  # seconds
LOGGED_COMMAND = 200  # characters of a client's command quoted in the log at most


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # a byte that was not UTF-8, kept by surrogateescape


def _cut(text: str) -> str:
    return text if len(text) <= LOGGED_COMMAND else text[:LOGGED_COMMAND] + f"... ({len(text)} characters)"


_END_OF_DATA = b"\r\n.\r\n"
# `<local@domain>` with nothing unusual in it, then the parameters (" SIZE=2000 BODY=8BITMIME").
_PLAIN_ADDRESS = re.compile(r"^\s*<([A-Za-z0-9._+\-=]{1,64}@[A-Za-z0-9.\-]{1,253})>((?:\s.*)?)$")
_CHUNK = 256 * 1024


def _has_long_line(raw: bytes, line_limit: int) -> bool:
    """Whether a line (up to and with its CRLF; the last one may lack it) is longer than
    `line_limit`. Such a line holds one of the positions `line_limit - 1` apart, so only the
    lines around those are measured: a 100 KB message costs a dozen searches, not a pass of
    Python over its lines."""
    size = len(raw)
    if size + 2 <= line_limit:
        return False
    for position in range(0, size, line_limit - 1):
        start = raw.rfind(b"\r\n", 0, position + 1)  # the CRLF before the line holding `position`
        start = 0 if start < 0 else start + 2
        end = raw.find(b"\r\n", start)
        if (size if end < 0 else end) - start + 2 > line_limit:
            return True
    return False


def _first_problem(raw: bytes, limit: int, line_limit: int, *, complete: bool) -> str:
    """Which limit aiosmtpd would report for these data lines: the first one broken, in order."""
    lines = raw.split(b"\r\n")
    last = lines.pop()  # after the final CRLF: empty when complete, else a partial line
    count = 0
    for line in lines:
        if len(line) + 2 > line_limit:
            return "500 Line too long (see RFC5321 4.5.3.1.6)"
        count += len(line) + 2
        if limit and count > limit:
            return "552 Error: Too much mail data"
    if not complete and len(last) + 2 > line_limit:
        return "500 Line too long (see RFC5321 4.5.3.1.6)"
    return "552 Error: Too much mail data"


@dataclass(frozen=True, slots=True)
class _Tables:
    commands: tuple[str, ...]  # smtp_* methods of the protocol class
    command_set: frozenset[str]  # the same, to look up
    hooks: tuple[str, ...]  # handle_* methods of the handler class
    auth: tuple[tuple[str, str, bool], ...]  # (mechanism, method name, built into the protocol)
    ehlo_hook_version: str | None


_TABLES: dict[tuple[type, type], _Tables] = {}  # a cache of pure functions of two classes


def _tables(protocol: type, handler: type) -> _Tables:
    """What aiosmtpd's SMTP.__init__ finds by reflection, found once per pair of classes."""
    cached = _TABLES.get((protocol, handler))
    if cached is None:
        cached = _TABLES[(protocol, handler)] = _reflect(protocol, handler)
    return cached


def _reflect(protocol: type, handler: type) -> _Tables:
    auth: dict[str, tuple[str, str, bool]] = {}
    for owner, builtin in ((protocol, True), (handler, False)):
        for name, function in inspect.getmembers(owner):
            if name.startswith("auth_"):
                mechanism = getattr(function, "__auth_mechanism_name__", name.replace("auth_", "").replace("__", "-"))
                auth[mechanism] = (mechanism, name, builtin)
    hooks = tuple(name for name in dir(handler) if name.startswith("handle_"))
    ehlo = getattr(handler, "handle_EHLO", None)
    # aiosmtpd tells the old 4-argument EHLO hook from the new 5-argument one (plus self here)
    version = None if ehlo is None else "old" if len(inspect.signature(ehlo).parameters) == 5 else "new"
    commands = tuple(n for n in dir(protocol) if n.startswith("smtp_"))
    return _Tables(commands, frozenset(commands), hooks, tuple(auth.values()), version)


class _Commands(Mapping[str, Any]):
    """A session's smtp_* methods by command name, bound when looked up: what aiosmtpd's
    `_smtp_methods` dict holds, without binding twenty methods for every connection."""

    __slots__ = ("session", "tables")

    def __init__(self, session: SMTP, tables: _Tables) -> None:
        self.session = session
        self.tables = tables

    def __getitem__(self, command: str) -> Any:
        name = "smtp_" + command
        if name not in self.tables.command_set:
            raise KeyError(command)
        return getattr(self.session, name)

    def __iter__(self) -> Iterator[str]:
        return (name[len("smtp_"):] for name in self.tables.commands)

    def __len__(self) -> int:
        return len(self.tables.commands)


class BoundedSMTP(SMTP):
    """One SMTP session, with an error budget, a limit on its whole duration, and a fast DATA.

    aiosmtpd reads DATA one line at a time with per-line Python work (about 6 µs a line,
    which caps a core at 11-14 MB/s). `smtp_DATA` here reads large chunks and does the
    end-of-data search and the dot-unstuffing with bytes operations; it gives the same
    replies and the same bytes as aiosmtpd's (tests/integration/test_smtp_data_reader.py
    compares the two over real TCP). Only `<CRLF>.<CRLF>` ends the data.
"""

    def __init__(self, handler: Any, limits: SmtpLimits, on_close: Callable[[], None], *, hostname: str,
                 count_rejected: Callable[[str], None] | None = None,
                 ident: str | None = None, enable_SMTPUTF8: bool = True, tls_context: ssl.SSLContext | None = None,
                 require_starttls: bool = False, auth_required: bool = False, auth_require_tls: bool = True,
                 authenticator: Any = None, loop: asyncio.AbstractEventLoop | None = None,
                 implicit_tls: bool = False, spool: RawFiles | None = None) -> None:
        # aiosmtpd's SMTP.__init__ rebuilds its command, hook and AUTH tables by reflection
        # (inspect.getmembers, dir) for every connection: ~210 µs, a fifth of a core at 1,000
        # connections/s. This sets the same attributes, with the reflection done once per class.
        loop = loop or asyncio.get_running_loop()
        self.__ident__ = ident or "prostoy-mail ESMTP"
        self.loop = loop
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=loop)
        self.event_handler = handler
        self.data_size_limit = limits.max_message_size
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = False
        self.command_size_limits.clear()
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = tls_context and require_starttls  # (None without TLS, as aiosmtpd)
        self._timeout_duration = limits.idle_timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        # On an implicit-TLS port (465) the connection is encrypted from the start; aiosmtpd only
        # knows STARTTLS, so it would refuse AUTH there for lack of TLS.
        self._auth_require_tls = auth_require_tls and not implicit_tls
        self._proxy_timeout = None
        self._authenticator = authenticator
        self._auth_callback = None if authenticator is not None else login_always_fail
        self._auth_required = auth_required
        tables = _tables(type(self), type(handler))
        self._auth_methods = {
            mechanism: _AuthMechAttr(getattr(self if builtin else handler, name), builtin)
            for mechanism, name, builtin in tables.auth
        }
        self._handle_hooks = {name[len("handle_"):]: getattr(handler, name) for name in tables.hooks}
        self._ehlo_hook_ver = tables.ehlo_hook_version
        self._smtp_methods = _Commands(self, tables)  # type: ignore[assignment]  # (a Mapping is all it needs)
        self._enforce_call_limit = False

        self.limits = limits
        self.count_rejected = count_rejected  # a refusal, by reason (a metric)
        self.spool = spool  # where DATA past SPOOL_AT goes as it arrives; None: all in memory
        self.errors = 0
        self._on_close = on_close
        self._session_timer: asyncio.TimerHandle | None = None
        self._reply_lines: list[str] = []
        self._idle_deadline = self._timer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self._session_timer is None
        super().connection_made(transport)
        if first:  # not again after STARTTLS
            self._session_timer = self.loop.call_later(self.limits.session_timeout, self._session_over)

    async def _handle_client(self) -> None:
        """With [smtp] greeting_delay, a client that talks before the greeting is refused, as
        Postfix's postscreen does (real mail servers wait for the greeting; spam engines often not)."""
        delay = self.limits.greeting_delay
        if delay:
            await asyncio.sleep(delay)
            if self._reader._buffer:  # type: ignore[attr-defined]
                log.info("%s: talked before the greeting; refused", self._peer())
                self._count("pregreet")
                transport: Any = self.transport
                if transport is not None:
                    transport.write(b"554 5.5.1 Protocol error: talking before the greeting\r\n")
                    transport.close()
                return
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None  # type: ignore[assignment]
        super().connection_lost(error)

    def _peer(self) -> object:
        return None if self.session is None else self.session.peer

    def _session_over(self) -> None:
        log.info("%s: session time limit (%ss) reached", self._peer(), self.limits.session_timeout)
        self._count("session_timeout")
        transport: Any = self.transport  # (uvloop's transports are not asyncio.WriteTransport subclasses)
        if transport is not None:
            transport.write(b"421 4.4.2 Session time limit exceeded, closing connection\r\n")
            transport.close()

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        handler = self.event_handler
        counted = hasattr(handler, "in_data")  # a clean stop waits for sessions in DATA
        if counted:
            handler.in_data += 1
        try:
            try:
                content, clean, problem = await self._read_data()
            except asyncio.CancelledError:
                log.info("%s: connection lost during DATA", self._peer())
                self._writer.close()
                raise
            if problem is not None:
                await self.push(problem)
                self._set_post_data_state()  # type: ignore[no-untyped-call]
                return
            envelope = self.envelope
            assert isinstance(envelope, MailEnvelope)  # (made by _create_envelope)
            envelope.clean_line_ends = clean  # (then the handler need not look for bare CR or LF again)
            if isinstance(content, SpooledRaw):
                envelope.spooled = content
                content = b""
            self.envelope.content = content
            self.envelope.original_content = content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push("250 OK" if status is MISSING else status)
        finally:
            if counted:
                handler.in_data -= 1

    async def _read_data(self) -> tuple[bytes | SpooledRaw, bool, str | None]:
        """The data up to `<CRLF>.<CRLF>`, dot-unstuffed (past SPOOL_AT bytes with a spool: the
        file it was written to instead), whether its line ends are all CRLF, and the reply for
        what was wrong, if anything."""
        reader = self._reader
        limit = self.data_size_limit or 0
        # Enough of an oversized message to tell which limit it broke first, as aiosmtpd does.
        keep = limit + self.line_length_limit + 8 if limit else 0
        # A leading CRLF lets the end marker and the first line's dot be found like any other.
        data = bytearray(b"\r\n")
        tail = b""  # the last bytes seen, once `data` no longer grows: the end marker may start there
        overflow = False
        while True:
            chunk = await reader.read(_CHUNK)
            if not chunk:  # the client closed mid-DATA; aiosmtpd cancels us on EOF anyway
                raise asyncio.CancelledError
            self._reset_timeout()  # a slow but steady sender is not idle
            if not overflow:
                search_from = max(0, len(data) - 4)
                data += chunk
                end = data.find(_END_OF_DATA, search_from)
                if end >= 0:
                    rest = bytes(data[end + len(_END_OF_DATA):])
                    del data[end + 2:]
                    break
                if self.spool is not None and len(data) > SPOOL_AT:
                    return await self._spool_rest(data)
                if keep and len(data) > keep:
                    overflow, tail = True, bytes(data[-4:])
                continue
            window = tail + chunk
            end = window.find(_END_OF_DATA)
            if end >= 0:
                rest = window[end + len(_END_OF_DATA):]
                break
            tail = window[-4:]
        if rest:  # pipelined commands after the data (e.g. QUIT): back to the reader
            reader._buffer[0:0] = rest  # type: ignore[attr-defined]
        stuffed = b"\r\n." in data
        with memoryview(data) as view:
            raw = bytes(view[2:])  # one copy; then the buffer goes (big messages: memory counts)
        del data
        if overflow or (limit and len(raw) > limit) or _has_long_line(raw, self.line_length_limit):
            return b"", True, _first_problem(raw, limit, self.line_length_limit, complete=not overflow)
        clean = not has_bare_line_ends(raw)
        if not stuffed:  # nothing dot-stuffed (the usual case): no copy to unstuff
            return raw, clean, None
        return (b"\r\n" + raw).replace(b"\r\n.", b"\r\n")[2:], clean, None

    async def _spool_rest(self, data: bytearray) -> tuple[bytes | SpooledRaw, bool, str | None]:
        """The rest of a big message's data, streamed into its file (see spool.py)."""
        assert self.spool is not None
        spool = DataSpool(self.spool, self.data_size_limit or 0, self.line_length_limit)
        try:
            spool.feed(bytes(data[2:]))  # (after the CRLF put before the first line)
            del data[:]
            while not spool.ended:
                chunk = await self._reader.read(_CHUNK)
                if not chunk:
                    raise asyncio.CancelledError
                self._reset_timeout()
                spool.feed(chunk)
            if spool.rest:
                self._reader._buffer[0:0] = spool.rest  # type: ignore[attr-defined]
            if spool.problem is not None:
                return b"", True, spool.problem
            spooled = await spool.finish()
            if spooled is None:  # the file could not be finished (a full disk: 452)
                assert spool.problem is not None
                return b"", True, spool.problem
            return spooled, spool.clean, None
        except BaseException:
            spool.discard()
            raise

    def _create_envelope(self) -> MailEnvelope:
        return MailEnvelope()  # (aiosmtpd's Envelope with our fields, typed)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """MAIL/RCPT address: plain `<local@domain>` parsed directly, anything else as aiosmtpd does.

        aiosmtpd runs email's full header parser (and defines a class) for every address;
        the plain form is nearly all real traffic. Quotes, routes, comments and other
        unusual forms still take aiosmtpd's way, so their handling does not change.
        """
        match = _PLAIN_ADDRESS.match(arg)
        if match is not None:
            return match[1], match[2].lstrip()
        if _UNDECODABLE.search(arg):  # bytes that are not UTF-8: no address (501), never echoed
            return None, None
        try:
            return super()._getaddr(arg)
        except Exception:  # email's parser fails on some broken forms (`<a@[stuff>`: AttributeError)
            return None, None

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        """ESMTP parameters; None (a 501 syntax error) also when one is given twice (`SIZE=1 SIZE=2`):
        which of the two would count is anybody's guess."""
        names = [param.partition("=")[0] for param in params]
        if len(set(names)) != len(names):
            return None
        result: dict[str, str | bool] | None = super()._getparams(params)
        return result

    async def handle_exception(self, error: Exception) -> str:
        """A command that raised: logged once (traceback, command cut short), answered without
        Python's text (aiosmtpd answers `500 Error: (TypeName) message`)."""
        log.error("%s: error while serving a command: %s", self._peer(), _cut(repr(error)), exc_info=error)
        return "451 4.3.0 Error: internal error processing the command"

    async def smtp_STARTTLS(self, arg: str) -> None:
        transport: Any = self.transport
        if self._tls_protocol is not None or (transport is not None and transport.get_extra_info("sslcontext")):
            await self.push("554 5.5.1 Error: TLS already active")  # (aiosmtpd: 220, then a traceback)
            return
        await super().smtp_STARTTLS(arg)

    def _count(self, reason: str) -> None:
        if self.count_rejected is not None:
            self.count_rejected(reason)

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, str) and status[3:4] == "-":
            self._reply_lines.append(status)  # a line of a multi-line reply (EHLO): sent with its last line
            return
        if isinstance(status, str):
            status = ENHANCED.get(status, status)
            if status.startswith('500 Error: command "'):  # (aiosmtpd quotes the client's word back)
                status = "500 5.5.1 Error: command not recognized"
            if status[:1] == "5":
                self.errors += 1
                if self.errors > ERRORS_BEFORE_DELAY and self.limits.error_delay:
                    # a client sending rubbish (or guessing) is slowed more with each error
                    await asyncio.sleep(min(MAX_ERROR_DELAY,
                                            self.limits.error_delay * (self.errors - ERRORS_BEFORE_DELAY)))
                if status.startswith("552 5.3.4"):
                    self._count("too_big")
                elif status.startswith("500 5.5.2 Line too long"):
                    self._count("line_too_long")
        await self._send(status)
        if self.errors >= self.limits.max_errors and self.transport is not None:
            log.info("%s: %d errors in one session, closing it", self._peer(), self.errors)
            self._count("too_many_errors")
            await self._send("421 4.7.0 Too many errors, closing connection")
            self.transport.close()

    async def _send(self, status: str | bytes) -> None:
        """A reply, with the lines of a multi-line one before it, in one write (aiosmtpd writes
        and drains each line: a system call each, five more for every EHLO)."""
        if isinstance(status, bytes):
            data = status + b"\r\n"
        else:
            lines = self._reply_lines
            text = "\r\n".join((*lines, status)) + "\r\n" if lines else status + "\r\n"
            lines.clear()
            # (a reply may quote what the client sent: bytes that were not UTF-8 become "?")
            data = text.encode("utf-8" if self.enable_SMTPUTF8 else "ascii", "replace")
        self._writer.write(data)
        await self._writer.drain()

    def _reset_timeout(self, duration: float | None = None) -> None:
        """The idle limit, moved on with every line: one timer that looks at a deadline when it
        fires, instead of aiosmtpd's new timer (and a cancelled one) for every line."""
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._idle_deadline = deadline
        if self._timeout_handle is None or deadline < self._timer_at:
            if self._timeout_handle is not None:
                self._timeout_handle.cancel()
            self._timer_at = deadline
            self._timeout_handle = self.loop.call_at(deadline, self._idle_check)

    def _idle_check(self) -> None:
        if self.loop.time() >= self._idle_deadline:
            transport: Any = self.transport
            if transport is not None and not transport.is_closing():
                transport.write(b"421 4.4.2 Idle too long, closing connection\r\n")  # (aiosmtpd: just closes)
            self._count("idle_timeout")
            self._timeout_cb()  # type: ignore[no-untyped-call]
        elif self.transport is not None:
            self._timer_at = self._idle_deadline
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_check)


