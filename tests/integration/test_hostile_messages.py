"""Hostile messages (tests/hostile_corpus.py) through SMTP and through a gateway: each is stored
byte-exact or refused with a clear code, subjects read as a good client shows them, and the
daemon stays alive with bounded memory."""

from __future__ import annotations

import asyncio
import resource
import smtplib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dovecot import Dovecot
from tests.hostile_corpus import corpus
from tests.waiting import until

CASES = corpus()
GATEWAY = "box@gw.test"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot({GATEWAY: "pw"}).start()
    yield server
    server.stop()


def _send(port: int, raw: bytes) -> str:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            client.sendmail("sender@far.example", ["box@example.test"], raw)
        return "250"
    except smtplib.SMTPResponseException as exc:
        return f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"


def _stored(server: Any, source: str) -> list[tuple[bytes, str]]:
    store = server.store()
    try:
        rows = store.db.execute("SELECT id, subject FROM messages WHERE source = ? ORDER BY id", (source,)).fetchall()
        return [(store.raw_message(message_db_id), subject) for message_db_id, subject in rows]
    finally:
        store.close()


async def test_hostile_messages_through_smtp(mail_server: Any) -> None:
    server = await mail_server('[[mailboxes]]\nlogin = "box"\n')
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    replies = {case.name: await asyncio.to_thread(_send, server.port, case.raw) for case in CASES}
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    refused = {name: reply for name, reply in replies.items() if reply != "250"}
    assert all(reply[:1] == "5" and reply[4:5].isdigit() for reply in refused.values()), refused  # clear codes
    assert not refused, refused  # (none of these is beyond the limits: all are taken)
    stored = _stored(server, "smtp")
    assert [raw for raw, _ in stored] == [case.raw for case in CASES]  # byte-exact, each once
    for case, (_, subject) in zip(CASES, stored, strict=True):
        if case.subject is not None:
            assert subject == case.subject, (case.name, subject)
    assert rss_growth_mib < 400, rss_growth_mib  # a 27 MB message among them; the test process included
    assert await asyncio.to_thread(_send, server.port, b"Subject: still alive\r\n\r\nx\r\n") == "250"


async def test_hostile_messages_through_a_gateway(mail_server: Any, dovecot: Dovecot) -> None:
    accepted = []
    for case in CASES:
        try:
            await asyncio.to_thread(dovecot.append, GATEWAY, case.raw)
            accepted.append(case)
        except AssertionError:  # Dovecot itself refused it (e.g. NUL bytes without the BINARY extension)
            pass
    assert len(accepted) >= len(CASES) - 1, [c.name for c in accepted]
    gateway = dovecot.gateway_toml(GATEWAY, options="import_since = 2000-01-01")
    server = await mail_server("[fetch]\nidle_renew = 1\n" + gateway)
    stored = await until(lambda: len(s := _stored(server, GATEWAY)) == len(accepted) and s, timeout=120)
    served = [raw for _, _, raw in await asyncio.to_thread(dovecot.messages, GATEWAY)]
    assert sorted(raw for raw, _ in stored) == sorted(served)  # byte-exact as the server handed them out
    by_raw = {raw: subject for raw, subject in stored}
    for case in accepted:
        if b"\x00" in case.raw:  # Dovecot itself hands NUL bytes out as 0x80
            continue
        assert case.raw in by_raw, case.name
        if case.subject is not None:
            assert by_raw[case.raw] == case.subject, case.name
    state = server.store().gateway_state(GATEWAY)
    assert state is not None and state.failures == 0 and server.count("quarantine") == 0
