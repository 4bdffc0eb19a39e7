"""Big messages over inbound SMTP are written to their file as they arrive (smtp/spool.py)."""

from __future__ import annotations

import base64
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from prostoy_mail.smtp.spool import SPOOL_AT
from tests.waiting import until

MAILBOXES = '[[mailboxes]]\nlogin = "sales"\n'


def big_text(lines: int) -> bytes:
    """A single-part message with dot-stuffed lines all the way through."""
    body = b"".join(b"%s line %d of the report\r\n" % (b"." if i % 7 == 0 else b"", i) for i in range(lines))
    return b"From: Client <client@example.org>\r\nTo: sales@example.test\r\nSubject: Big report\r\n\r\n" + body


def stuffed(raw: bytes) -> bytes:
    return (b"\r\n" + raw).replace(b"\r\n.", b"\r\n..")[2:]


async def in_data(server: Any) -> Any:
    """A session that has just been told 354."""
    session = await server.connect()
    for command in ("EHLO c", "MAIL FROM:<client@example.org>", "RCPT TO:<sales@example.test>"):
        assert (await session.cmd(command)).startswith("250")
    assert (await session.cmd("DATA")).startswith("354")
    return session


async def send_raw(server: Any, data: bytes) -> str:
    session = await in_data(server)
    await session.send(data)
    reply = await session.reply()
    assert (await session.cmd("NOOP")).startswith("250")  # the session goes on
    await session.close()
    return reply


def files(server: Any) -> list[str]:
    folder = Path(str(server.store_path) + ".messages")
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_a_big_message_is_spooled_and_stored_byte_exact(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    raw = big_text(SPOOL_AT // 10)  # ~2.8 MB, thousands of dot-stuffed lines across chunk boundaries
    assert len(raw) > 2 * SPOOL_AT
    assert (await send_raw(server, stuffed(raw) + b".\r\n")).startswith("250 2.0.0")
    [comment] = server.comments("Mail/sales@example.test")
    assert comment.subject == "Big report" and comment.text.startswith(". line 0 of the report\n line 1 of")
    store = server.store()
    row = store.db.execute("SELECT raw_file, length(raw), size, sha256 FROM messages").fetchone()
    assert row[0] is not None and row[1] == 0 and row[2] == len(raw)
    assert store.raw_message(comment.message_db_id) == raw
    assert files(server) == [row[0]]
    # the comment's text is what parsing the whole message gives
    from prostoy_mail.mail.parse import parse_message
    assert comment.text == parse_message(raw).text
    store.close()


async def test_a_big_multipart_message_lists_its_attachment(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    message = MIMEMultipart()
    message["Subject"] = "Scan"
    message.attach(MIMEText("see the scan", "plain", "utf-8"))
    payload = bytes(range(256)) * (3 * SPOOL_AT // 256)
    message.attach(MIMEApplication(payload, Name="scan.pdf"))
    raw = message.as_bytes().replace(b"\n", b"\r\n")
    assert (await send_raw(server, stuffed(raw) + b".\r\n")).startswith("250 2.0.0")
    [comment] = server.comments("Mail/sales@example.test")
    assert comment.text == "see the scan"
    assert [(a.filename, a.size) for a in comment.attachments] == [("scan.pdf", len(payload))]
    store = server.store()
    assert store.raw_message(comment.message_db_id) == raw
    store.close()
    assert base64.b64encode(payload[:30]).decode()[:20] in raw.decode()


async def test_bare_line_ends_in_a_big_message_are_normalised(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    raw = big_text(SPOOL_AT // 20)
    sent = raw[: len(raw) // 2] + b"a bare LF\nhere\r\n" + raw[len(raw) // 2:]
    assert (await send_raw(server, stuffed(sent) + b".\r\n")).startswith("250 2.0.0")
    [comment] = server.comments("Mail/sales@example.test")
    store = server.store()
    assert store.raw_message(comment.message_db_id) == sent.replace(b"a bare LF\n", b"a bare LF\r\n")
    store.close()
    assert len(files(server)) == 1  # the first spool file was replaced, not left behind


async def test_smuggling_in_a_big_message_is_refused_and_nothing_kept(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    raw = big_text(SPOOL_AT // 20)
    sent = raw + b"end\n.\nMAIL FROM:<ceo@example.test>\r\n"
    assert (await send_raw(server, stuffed(sent) + b".\r\n")).startswith("550 5.5.2")
    assert server.count("messages") == 0 and files(server) == []


async def test_limits_in_a_big_message_keep_nothing(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + f"[smtp]\nmax_message_size = {2 * SPOOL_AT}\nmax_line_length = 2000\n")
    too_big = big_text(SPOOL_AT // 8)
    assert len(too_big) > 2 * SPOOL_AT
    assert (await send_raw(server, stuffed(too_big) + b".\r\n")).startswith("552 5.3.4")
    long_line = big_text(SPOOL_AT // 40) + b"y" * 5000 + b"\r\n"
    assert (await send_raw(server, stuffed(long_line) + b".\r\n")).startswith("500 5.5.2")
    assert server.count("messages") == 0 and files(server) == []


async def test_a_client_gone_mid_data_leaves_no_file(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    session = await in_data(server)
    await session.send(stuffed(big_text(SPOOL_AT // 20)))
    await session.close()  # no end of data
    await until(lambda: files(server) == [])
    assert server.count("messages") == 0
