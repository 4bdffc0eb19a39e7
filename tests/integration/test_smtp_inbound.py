"""Inbound SMTP over real sockets: every reply code, relay tricks, smuggling, limits, faults."""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any

import pytest

from prostoy_mail.store.sqlite import SqliteStore
from tests.waiting import until

MAILBOXES = """
[[mailboxes]]
login = "sales"

[[mailboxes]]
login = "info"
"""

SIMPLE = (b"From: Client <client@example.org>\r\nTo: sales@example.test\r\nSubject: Hello\r\n"
          b"Message-ID: <m1@example.org>\r\n\r\nHello there.\r\n")


async def test_a_message_is_stored_byte_exact_and_routed_before_250(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    refused = await server.send("client@example.org", ["sales@example.test"], SIMPLE)
    assert refused == {}
    [comment] = server.comments("Mail/sales@example.test")  # stored by the time 250 arrived
    assert (comment.subject, comment.from_addr, comment.from_name) == ("Hello", "client@example.org", "Client")
    assert comment.routed_by == ("fallback",) and comment.source == "smtp" and comment.text == "Hello there."
    store = server.store()
    assert store.raw_message(comment.message_db_id) == SIMPLE
    store.close()


async def test_greeting_and_ehlo_advertise_the_limits(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nmax_message_size = 10000\n")
    session = await server.connect()
    assert session.greeting.startswith("220 mx.example.test ")
    ehlo = await session.cmd("EHLO client.example.org")
    assert "250-SIZE 10000" in ehlo and "8BITMIME" in ehlo
    await session.close()


@pytest.mark.parametrize(
    ("recipient", "reply"),
    [
        ("nobody@example.test", "550 5.1.1"),
        ("someone@other.org", "554 5.7.1"),
        ("sales@example.test.evil.org", "554 5.7.1"),
        ("sales%other.org@example.test", "550 5.7.1"),
        ("@example.test:user@other.org", "554 5.7.1"),  # aiosmtpd drops the route: other.org remains
        ('"user@other.org"@example.test', "550 5.7.1"),
        ("other.org!user@example.test", "550 5.7.1"),
        ("sales@[127.0.0.1]", "554 5.7.1"),
    ],
)
async def test_only_domain_mailboxes_are_accepted_never_a_relay(mail_server: Any, recipient: str, reply: str) -> None:
    server = await mail_server(MAILBOXES)
    session = await server.connect()
    await session.cmd("EHLO client.example.org")
    assert (await session.cmd("MAIL FROM:<a@other.org>")).startswith("250")
    answer = await session.cmd(f"RCPT TO:<{recipient}>")
    assert answer.startswith(reply), answer
    assert (await session.cmd("RCPT TO:<SALES@Example.Test>")).startswith("250 2.1.5")  # case does not matter
    await session.close()


async def test_too_many_recipients_get_452(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nmax_recipients = 2\n")
    session = await server.connect()
    await session.cmd("EHLO c")
    await session.cmd("MAIL FROM:<a@other.org>")
    assert (await session.cmd("RCPT TO:<sales@example.test>")).startswith("250")
    assert (await session.cmd("RCPT TO:<info@example.test>")).startswith("250")
    assert (await session.cmd("RCPT TO:<sales+x@example.test>")).startswith("452 4.5.3")
    await session.close()


async def test_an_oversized_message_gets_552_5_3_4(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nmax_message_size = 2000\n")
    big = SIMPLE + (b"x" * 80 + b"\r\n") * 100
    with pytest.raises(smtplib.SMTPSenderRefused) as declared:  # smtplib declares SIZE= in MAIL FROM
        await server.send("a@other.org", ["sales@example.test"], big)
    assert declared.value.smtp_code == 552 and declared.value.smtp_error.startswith(b"5.3.4")
    session = await server.connect()  # not declared: found while receiving
    await session.cmd("EHLO c")
    await session.cmd("MAIL FROM:<a@other.org>")
    await session.cmd("RCPT TO:<sales@example.test>")
    await session.cmd("DATA")
    await session.send(big + b".\r\n")
    assert (await session.reply()).startswith("552 5.3.4")
    await session.close()
    assert server.count("messages") == 0


async def test_an_overlong_line_is_refused(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nmax_line_length = 2000\n")
    with pytest.raises(smtplib.SMTPDataError) as err:
        await server.send("a@other.org", ["sales@example.test"], SIMPLE + b"y" * 5000 + b"\r\n")
    assert err.value.smtp_code == 500 and err.value.smtp_error.startswith(b"5.5.2")
    assert server.count("messages") == 0


@pytest.mark.parametrize(
    "smuggled",
    [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\r"],
)
async def test_smuggling_sequences_are_refused_and_nothing_is_stored(mail_server: Any, smuggled: bytes) -> None:
    server = await mail_server(MAILBOXES)
    session = await server.connect()
    await session.cmd("EHLO c")
    await session.cmd("MAIL FROM:<a@other.org>")
    await session.cmd("RCPT TO:<sales@example.test>")
    assert (await session.cmd("DATA")).startswith("354")
    await session.send(b"Subject: first\r\n\r\nhello" + smuggled
                       + b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<info@example.test>\r\nDATA\r\n"
                       + b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
    answer = await session.reply()
    await session.close()
    if answer.startswith("550 5.5.2"):
        assert server.count("messages") == 0
        return
    # aiosmtpd reads lines up to CRLF and strips the dot of a line that starts with one
    # (dot-stuffing), so "\r\n.\nMAIL..." arrives as "\r\n\nMAIL...": no end-of-data is left.
    assert answer.startswith("250"), answer
    [comment] = server.comments("Mail/sales@example.test")
    store = server.store()
    raw = store.raw_message(comment.message_db_id)
    store.close()
    lines = raw.split(b"\r\n")
    assert b"." not in lines and b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert server.count("messages") == 1


async def test_bare_line_ends_are_normalised_to_crlf(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    session = await server.connect()
    await session.cmd("EHLO c")
    await session.cmd("MAIL FROM:<a@other.org>")
    await session.cmd("RCPT TO:<sales@example.test>")
    await session.cmd("DATA")
    await session.send(b"Subject: lf\nX-Mailer: old\n\nline one\nline two\r\n.\r\n")
    assert (await session.reply()).startswith("250 2.0.0")
    await session.close()
    [comment] = server.comments("Mail/sales@example.test")
    store = server.store()
    raw = store.raw_message(comment.message_db_id)
    store.close()
    assert raw == b"Subject: lf\r\nX-Mailer: old\r\n\r\nline one\r\nline two\r\n"
    assert comment.subject == "lf" and comment.text == "line one\nline two"


async def test_too_many_errors_close_the_session_with_421(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nmax_errors = 3\n")
    session = await server.connect()
    await session.cmd("EHLO c")
    await session.cmd("MAIL FROM:<a@other.org>")
    assert (await session.cmd("RCPT TO:<x1@example.test>")).startswith("550")
    assert (await session.cmd("RCPT TO:<x2@example.test>")).startswith("550")
    last = await session.cmd("RCPT TO:<x3@example.test>")
    assert last.startswith("550") and "421 4.7.0" in last + await session.reply()
    assert await session.reply() == ""  # closed
    await session.close()


async def test_connections_per_address_are_bounded(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nmax_connections_per_ip = 2\n")
    first, second = await server.connect(), await server.connect()
    assert first.greeting.startswith("220") and second.greeting.startswith("220")
    third = await server.connect()
    assert third.greeting.startswith("421 4.7.0")
    await first.close()
    sessions = server.daemon.metrics.sessions
    await until(lambda: sessions._value.get() == 1)  # the daemon (or its worker) has counted the close
    fourth = await server.connect()  # a slot is free again
    assert fourth.greeting.startswith("220")
    for s in (second, third, fourth):
        await s.close()


async def test_a_session_has_a_time_limit(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nsession_timeout = 0.5\n")
    session = await server.connect()
    await session.cmd("EHLO c")
    assert (await session.reply(timeout=5)).startswith("421 4.4.2")
    await session.close()


async def test_a_store_failure_mid_transaction_answers_451_and_stores_nothing(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    store = server.store()
    store.db.execute("CREATE TRIGGER fail BEFORE INSERT ON comments BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    store.close()
    with pytest.raises(smtplib.SMTPDataError) as err:
        await server.send("a@other.org", ["sales@example.test"], SIMPLE)
    assert err.value.smtp_code == 451 and err.value.smtp_error.startswith(b"4.3.0")
    assert server.count("messages") == 0 and server.count("comments") == 0  # nothing half-stored
    store = server.store()
    store.db.execute("DROP TRIGGER fail")
    store.close()
    assert await server.send("a@other.org", ["sales@example.test"], SIMPLE) == {}  # the retry succeeds
    assert server.count("messages") == 1 and server.count("comments") == 1


async def test_concurrent_messages_are_each_stored_once(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    messages = [SIMPLE.replace(b"m1@", f"n{i}@".encode()) for i in range(40)]
    writer = server.daemon.writer
    assert writer is not None
    batches_before = writer.batches
    results = await asyncio.gather(*(server.send("a@other.org", ["sales@example.test"], m) for m in messages))
    assert results == [{}] * 40
    ids = sorted(c.message_id or "" for c in server.comments("Mail/sales@example.test"))
    assert ids == sorted(f"n{i}@example.org" for i in range(40))
    assert writer.batches - batches_before < 40  # group commit: some messages shared a commit


async def test_one_message_to_two_mailboxes_is_stored_once(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES)
    assert await server.send("a@other.org", ["sales@example.test", "info@example.test"], SIMPLE) == {}
    [to_sales] = server.comments("Mail/sales@example.test")
    [to_info] = server.comments("Mail/info@example.test")
    assert to_sales.message_db_id == to_info.message_db_id
    assert server.count("messages") == 1


def _personal(store: SqliteStore) -> None:
    store.add_user("ivanov", "Иван", None, is_owner=False)


async def test_mail_of_a_personal_mailbox_goes_to_its_owner(mail_server: Any) -> None:
    server = await mail_server('[[mailboxes]]\nlogin = "ivan"\nowner = "ivanov"\n', setup=_personal)
    assert await server.send("a@other.org", ["ivan@example.test"], SIMPLE) == {}
    [comment] = server.comments("Personal/Иван")
    assert comment.routed_by == ("fallback",)
    assert server.comments("Mail/ivan@example.test") == []


async def test_talking_before_the_greeting_is_refused(mail_server: Any) -> None:
    server = await mail_server('[smtp]\ngreeting_delay = 0.3\n[[mailboxes]]\nlogin = "sales"\n')
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"EHLO hasty.example\r\nMAIL FROM:<spam@x.example>\r\n")  # no waiting for 220
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"554 5.5.1")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
    patient = await server.connect()  # waits for the greeting: served as usual
    assert patient.greeting.startswith("220")
    assert (await patient.cmd("EHLO patient.example")).startswith("250")
    await patient.close()


@pytest.mark.parametrize("size", [2_000, 2_000_000])  # kept in the store, and spooled to a file
async def test_the_same_bytes_again_within_the_window_are_stored_once(mail_server: Any, size: int) -> None:
    """A sender retrying after a lost 250 sends the very same bytes: 250 again, one comment,
    which says it came twice. Other mailboxes, and mail after the window, are stored as usual."""
    server = await mail_server(MAILBOXES)
    raw = SIMPLE + (b"x" * 998 + b"\r\n") * (size // 1000)
    for _ in range(2):
        assert await server.send("client@example.org", ["sales@example.test"], raw) == {}
    [comment] = server.comments("Mail/sales@example.test")
    assert comment.times_received == 2
    assert server.count("messages") == 1
    assert await server.send("client@example.org", ["info@example.test"], raw) == {}  # another mailbox
    assert len(server.comments("Mail/info@example.test")) == 1
    files = server.store_path.parent / "store.db.messages"  # the second copy's file is gone, the first's kept
    on_disk = [p for p in files.rglob("*") if p.is_file()] if files.exists() else []
    assert len(on_disk) == server.count("messages WHERE raw_file IS NOT NULL") == (2 if size > 1_000_000 else 0)


async def test_without_a_duplicate_window_the_same_bytes_are_stored_again(mail_server: Any) -> None:
    server = await mail_server(MAILBOXES + "[smtp]\nduplicate_window = 0\n")
    for _ in range(2):
        assert await server.send("client@example.org", ["sales@example.test"], SIMPLE) == {}
    assert [c.times_received for c in server.comments("Mail/sales@example.test")] == [1, 1]
