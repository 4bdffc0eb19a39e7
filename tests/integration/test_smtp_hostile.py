"""The inbound SMTP listener against a hostile or broken client: STARTTLS on port 25 and its
protections, and replies that never carry Python's text."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.tls_files import write_server_pair

MAILBOXES = """
[[mailboxes]]
login = "sales"
"""


def _tls(tmp_path: Path) -> tuple[str, ssl.SSLContext]:
    ca = trustme.CA()
    write_server_pair(ca, tmp_path, "localhost", "127.0.0.1")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return '\n[tls]\ncert = "cert.pem"\nkey = "key.pem"\n', context


@pytest.mark.parametrize("workers", [0, 2])
async def test_port_25_offers_starttls_and_takes_mail_over_it(mail_server: Any, tmp_path: Path, workers: int) -> None:
    tls, context = _tls(tmp_path)
    server = await mail_server(MAILBOXES + f"[smtp]\nworkers = {workers}\n" + tls)

    def go() -> tuple[bool, dict[str, Any], str]:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            client.ehlo("client.example.org")
            offered = client.has_extn("starttls")
            client.starttls(context=context)
            client.ehlo("client.example.org")
            refused = client.sendmail("a@example.org", ["sales@example.test"],
                                      b"From: a@example.org\r\nSubject: over tls\r\n\r\nsecret\r\n")
            cipher = client.sock.version() if isinstance(client.sock, ssl.SSLSocket) else ""
            return offered, refused, str(cipher)

    offered, refused, version = await asyncio.to_thread(go)
    assert offered and refused == {} and version.startswith("TLSv1")
    assert [c.subject for c in server.comments("Mail/sales@example.test")] == ["over tls"]

    plain = await server.connect()  # never required: mail in clear is still taken
    assert "250" in await plain.cmd("EHLO x") and (await plain.cmd("MAIL FROM:<a@b.ru>")).startswith("250")
    await plain.close()


async def test_starttls_on_port_25_drops_pipelined_commands_and_refuses_a_second_one(
        mail_server: Any, tmp_path: Path) -> None:
    tls, context = _tls(tmp_path)
    server = await mail_server(MAILBOXES + "[smtp]\nworkers = 0\n" + tls)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await reader.readline()
    writer.write(b"EHLO me\r\n")
    await writer.drain()
    while not (await reader.readline()).startswith(b"250 "):
        pass
    # the injection: commands sent in plain text in the same packet as STARTTLS
    writer.write(b"STARTTLS\r\nMAIL FROM:<a@b.ru>\r\nRCPT TO:<sales@example.test>\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220")
    await writer.start_tls(context, server_hostname="localhost")
    writer.write(b"NOOP\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readline(), 10)
    assert first.startswith(b"250"), first  # the answer to NOOP: nothing injected was run
    writer.write(b"RCPT TO:<sales@example.test>\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"503")  # no MAIL was taken
    writer.write(b"STARTTLS\r\n")
    await writer.drain()
    second = await asyncio.wait_for(reader.readline(), 10)
    assert second.startswith(b"554 5.5.1"), second  # not 220 (and then a traceback)
    writer.write(b"NOOP\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"250")  # the session goes on
    writer.close()


async def test_without_tls_no_starttls_is_offered(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    session = await server.connect()
    assert "STARTTLS" not in await session.cmd("EHLO x")
    assert (await session.cmd("STARTTLS")).startswith("454 4.7.0")
    await session.close()


@pytest.mark.parametrize("workers", [0, 2])
async def test_replies_never_carry_python_text(mail_server: Any, workers: int) -> None:
    server = await mail_server(MAILBOXES + f"[smtp]\nworkers = {workers}\nerror_delay = 0\n")
    session = await server.connect()
    await session.cmd("EHLO x")
    replies = [
        await session.cmd(b"MAIL FROM:<a@[stuff>"),  # email's parser: AttributeError
        await session.cmd(b"MAIL FROM:<a@b.ru> SIZE=1 SIZE=2"),  # which SIZE?
        await session.cmd(b"MAIL FROM:<a@b.ru>"),
        await session.cmd(b"RCPT TO:<\xc0\xc1@example.test>"),  # not UTF-8: UnicodeEncodeError when echoed
        await session.cmd(b"RCPT TO:<x@example.test> NOTIFY=\xff"),
        await session.cmd(b"FOO" + b"x" * 400),
    ]
    assert replies[0].startswith("553 5.1.3") and replies[1].startswith("501")
    assert replies[2].startswith("250") and replies[3].startswith("553 5.1.3")
    assert replies[5] == "500 5.5.1 Error: command not recognized"
    for reply in replies:
        assert "Error: (" not in reply and "Traceback" not in reply and "\ufffd" not in reply, reply
        assert len(reply) < 200
    assert (await session.cmd("NOOP")).startswith("250")  # the session is fine
    await session.close()


async def test_errors_are_answered_ever_slower_then_421(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nworkers = 0\nerror_delay = 0.3\nmax_errors = 20\n")
    session = await server.connect()
    took = []
    for word in ("A1", "A2", "A3", "A4"):
        started = time.monotonic()
        assert (await session.cmd(word)).startswith("500 5.5.1")
        took.append(time.monotonic() - started)
    # the third error waits error_delay, the fourth twice that (less a millisecond: the event
    # loop's timers fire by its own clock's resolution, measured here as 0.29998 once)
    assert took[2] >= 0.299 and took[3] >= 0.599, took
    assert (await session.cmd("A5")).startswith("421 4.7.0")  # (five unknown commands: the end)
    assert await session.reply() == ""
    await session.close()


async def test_an_idle_client_is_told_before_the_close(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nworkers = 0\nidle_timeout = 0.3\n")
    session = await server.connect()
    await session.cmd("EHLO c")
    assert (await session.reply(timeout=10)).startswith("421 4.4.2")
    assert await session.reply() == ""
    await session.close()


def test_library_log_lines_quote_a_client_at_most_200_characters() -> None:
    from prostoy_mail.logs import _cut_arguments

    record = logging.LogRecord("mail.log", logging.WARNING, __file__, 1, "%r unrecognised: %s",
                               (("127.0.0.1", 5), "X" * 65536), None)
    assert _cut_arguments(record)
    assert 200 < len(record.getMessage()) < 300 and "(65567 characters)" in record.getMessage()
    traceback = logging.LogRecord("twisted", logging.CRITICAL, __file__, 1, "Traceback:\n  File x\n" + "Y" * 9000,
                                  None, None)
    assert _cut_arguments(traceback)
    assert traceback.getMessage().startswith("Traceback:\n  File x\nYYY") and len(traceback.getMessage()) < 300
