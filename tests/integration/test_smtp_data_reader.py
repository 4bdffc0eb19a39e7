"""Our chunked DATA reader against aiosmtpd's own, over real TCP: same replies, same bytes.

The reader subclasses aiosmtpd internals (aiosmtpd is pinned to 1.4.x); this differential
test is what keeps the two in step: random bodies with dots, bare CR/LF, smuggling
sequences, long lines and sizes around the limit, sent in random fragments.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prostoy_mail.config.model import SmtpLimits
from prostoy_mail.smtp.server import BoundedSMTP

LIMIT = 3000  # data size limit for both servers
LINE_LIMIT = 1001


@dataclass
class Recorder:
    contents: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.contents.append(envelope.original_content)
        return "250 OK"


class Ours(BoundedSMTP):
    line_length_limit = LINE_LIMIT


def stock(recorder: Recorder) -> SMTP:
    return SMTP(recorder, hostname="t", data_size_limit=LIMIT)


def ours(recorder: Recorder) -> SMTP:
    limits = SmtpLimits(max_message_size=LIMIT, max_errors=10_000, error_delay=0, max_line_length=LINE_LIMIT)
    return Ours(recorder, limits, lambda: None, hostname="t", enable_SMTPUTF8=False)  # as `stock`


async def conversation(make: Any, fragments: list[bytes]) -> tuple[list[str], list[bytes]]:
    recorder = Recorder()
    server = await asyncio.get_running_loop().create_server(lambda: make(recorder), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n")
        for fragment in fragments:
            writer.write(fragment)
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"\r\n.\r\nQUIT\r\n")  # whatever came before, this ends the data and the session
        await writer.drain()
    except ConnectionError:  # the server hung up (e.g. too many bogus commands): compare what it said
        pass
    replies: list[str] = []
    try:
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), 10)
            except ConnectionError:
                break
            if not line:
                break
            if line[3:4] == b" ":
                replies.append(line[:3].decode())
    finally:
        writer.close()
        server.close()
    return replies, recorder.contents


LINES = st.sampled_from([b"", b".", b"..", b".x", b"hello", b"x" * 200, b"y" * 1100, b"\x00\xff", b"MAIL FROM:<z@z>"])
ENDS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])


@st.composite
def bodies(draw: st.DrawFn) -> list[bytes]:
    parts = draw(st.lists(st.tuples(LINES, ENDS), max_size=40))
    body = b"".join(line + end for line, end in parts) + draw(LINES)
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=6)))
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if body[a:b]]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_same_replies_and_bytes_as_stock_aiosmtpd(fragments: list[bytes]) -> None:
    async def both() -> None:
        codes, stored = await conversation(stock, fragments)
        # (the one intended difference: after too many unknown commands we say 421, aiosmtpd 502)
        expected = ([("421" if c == "502" else c) for c in codes], stored)
        actual = await conversation(ours, fragments)
        assert actual == expected

    asyncio.run(both())


def test_known_cases_match() -> None:
    cases = [
        [b""],
        [b"..leading dot\r\n.\r", b"\n"],  # the end marker split across fragments
        [b"a" * (LIMIT + 10)],  # over the size limit
        [b"z" * 2000],  # an overlong line
        [b"x\n.\nMAIL FROM:<evil@x>"],  # smuggling: not an end of data for either
    ]

    async def run() -> None:
        for fragments in cases:
            assert await conversation(ours, fragments) == await conversation(stock, fragments), fragments

    asyncio.run(run())


async def test_our_constructor_sets_what_aiosmtpd_s_sets() -> None:
    """BoundedSMTP.__init__ replaces aiosmtpd's (which reflects on every connection)."""
    recorder = Recorder()
    theirs = SMTP(recorder, hostname="t", data_size_limit=LIMIT)
    mine = ours(recorder)
    assert set(vars(theirs)) <= set(vars(mine))
    for table in ("_smtp_methods", "_auth_methods", "_handle_hooks"):
        assert sorted(getattr(mine, table)) == sorted(getattr(theirs, table)), table
    same = ("data_size_limit", "enable_SMTPUTF8", "_decode_data", "hostname", "require_starttls", "_auth_require_tls",
            "_auth_required", "_ehlo_hook_ver", "_enforce_call_limit", "_tls_handshake_okay")
    assert {a: getattr(mine, a) for a in same} == {a: getattr(theirs, a) for a in same}


ADDRESS_PARTS = st.sampled_from(["a", "B.c", "x+y", "=", "-", '"q q"', "@r:", "%", "!", "(c)", " ", "<", ">", "@",
                                 "ex.org", "[1.2.3.4]", "SIZE=100", "BODY=8BITMIME", "ÿ", "\udcc0"])


@settings(max_examples=500, deadline=None)
@given(st.lists(ADDRESS_PARTS, max_size=8).map("".join))
def test_address_parsing_matches_aiosmtpd(arg: str) -> None:
    def outcome(server: SMTP) -> object:
        try:
            return server._getaddr(arg)
        except Exception:  # aiosmtpd itself raises on some input (e.g. "<", "a@"): ours says "no address"
            return (None, None)

    async def compare() -> None:
        recorder = Recorder()
        if any("\udc80" <= c <= "\udcff" for c in arg):  # not UTF-8: never an address for us
            assert ours(recorder)._getaddr(arg) == (None, None)
        else:
            assert outcome(ours(recorder)) == outcome(stock(recorder))

    asyncio.run(compare())


def test_plain_addresses_take_the_fast_path() -> None:
    async def compare() -> None:
        recorder = Recorder()
        for arg in ["<a@b.c>", "<a@b.c> SIZE=100", " <A.B+c@Ex-ample.org>  BODY=8BITMIME", "<a@b.c> "]:
            assert ours(recorder)._getaddr(arg) == stock(recorder)._getaddr(arg), arg

    asyncio.run(compare())
