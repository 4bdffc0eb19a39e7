"""Inbound SMTP sessions in worker processes: limits across them, a worker that dies, reload."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from prostoy_mail.smtp import workers as workers_module
from tests.waiting import until

WORKERS = """
[smtp]
workers = {workers}
max_connections_per_ip = 3
duplicate_window = 0  # (the same MESSAGE is sent again and again here)

[[mailboxes]]
login = "sales"
"""

MESSAGE = b"From: a@b.ru\r\nSubject: via a worker\r\n\r\nbody\r\n"


def pids(server: Any) -> set[int]:
    return {w.process.pid for w in server.daemon.smtp_workers.workers}


def counted(server: Any) -> int:
    """Connections in the table the workers share, and as they have reported them."""
    workers = server.daemon.smtp_workers
    in_table = sum(workers.counts.connections(w.slot) for w in workers.workers)
    reported = sum(w.sessions for w in workers.workers)
    return in_table if in_table == reported else -1


async def test_sessions_are_served_by_the_worker_processes(mail_server: Any) -> None:
    server = await mail_server(WORKERS.format(workers=2))
    workers = pids(server)
    assert len(workers) == 2 and os.getpid() not in workers
    sessions = [await server.connect() for _ in range(2)]
    assert all(s.greeting.startswith("220 ") for s in sessions)
    await until(lambda: counted(server) == 2)  # the workers accepted them, and counted them
    for session in sessions:
        assert (await session.cmd("EHLO client")).startswith("250-mx.example.test")
        assert (await session.cmd("MAIL FROM:<a@b.ru>")).startswith("250")
        assert (await session.cmd("RCPT TO:<sales@example.test>")).startswith("250")
        assert (await session.cmd("DATA")).startswith("354")
        assert (await session.cmd(MESSAGE + b".")).startswith("250 2.0.0 Ok: stored as")
        await session.close()
    assert [c.subject for c in server.comments("Mail/sales@example.test")] == ["via a worker"] * 2


async def test_connection_limits_count_every_worker_together(mail_server: Any) -> None:
    server = await mail_server(WORKERS.format(workers=2))  # at most 3 connections per address
    first, second = server.daemon.smtp_workers.workers
    os.kill(first.process.pid, signal.SIGSTOP)  # only the second worker accepts now
    try:
        sessions = [await server.connect() for _ in range(2)]
        await until(lambda: second.sessions == 2)
    finally:
        os.kill(first.process.pid, signal.SIGCONT)
    os.kill(second.process.pid, signal.SIGSTOP)  # and now only the first
    try:
        sessions.append(await server.connect())
        refused = await server.connect()  # 2 in the other worker + 1 in this one
        await until(lambda: first.sessions == 1)
    finally:
        os.kill(second.process.pid, signal.SIGCONT)
    assert all(s.greeting.startswith("220 ") for s in sessions)
    assert refused.greeting.startswith("421 4.7.0")
    await sessions.pop(0).close()
    await until(lambda: counted(server) == 2)
    again = await server.connect()
    assert again.greeting.startswith("220 ")
    for session in [*sessions, again]:
        await session.close()


async def test_a_worker_that_dies_is_replaced_and_its_sessions_released(mail_server: Any) -> None:
    server = await mail_server(WORKERS.format(workers=2))
    session = await server.connect()
    await until(lambda: counted(server) == 1)
    [serving] = [w for w in server.daemon.smtp_workers.workers if w.sessions]
    os.kill(serving.process.pid, signal.SIGKILL)
    assert await session.reply() == ""  # its session is cut: the client was told nothing, sends again
    await until(lambda: len(server.daemon.smtp_workers.workers) == 2
                     and serving.process.pid not in pids(server), timeout=15)
    assert counted(server) == 0  # its connection was taken out of the shared table
    for _ in range(4):  # both workers (the new one too) take sessions and store mail
        assert await server.send("a@b.ru", ["sales@example.test"], MESSAGE) == {}
    assert len(server.comments("Mail/sales@example.test")) == 4


async def test_reload_reaches_the_workers(mail_server: Any) -> None:
    server = await mail_server(WORKERS.format(workers=2))
    session = await server.connect()
    await session.cmd("EHLO client")
    await session.cmd("MAIL FROM:<a@b.ru>")
    assert (await session.cmd("RCPT TO:<info@example.test>")).startswith("550 5.1.1")
    with server.config_path.open("a") as config:
        config.write('\n[[mailboxes]]\nlogin = "info"\n')
    await server.daemon.reload()
    assert await server.daemon.smtp_workers.applied_everywhere()  # each worker has said so
    assert [w.generation for w in server.daemon.smtp_workers.workers] == [2, 2] == [server.daemon.generation] * 2
    assert (await session.cmd("RCPT TO:<info@example.test>")).startswith("250")
    await session.close()


async def test_no_workers_serves_sessions_in_the_daemon_process(mail_server: Any) -> None:
    server = await mail_server(WORKERS.format(workers=0))
    assert server.daemon.smtp_workers is None
    assert await server.send("a@b.ru", ["sales@example.test"], MESSAGE) == {}
    assert len(server.comments("Mail/sales@example.test")) == 1


async def test_a_worker_that_hangs_is_killed_and_replaced(mail_server: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(workers_module, "PING_EVERY", 0.1)
    monkeypatch.setattr(workers_module, "SILENT_LIMIT", 1.0)
    server = await mail_server(WORKERS.format(workers=2))
    healthy, stuck = server.daemon.smtp_workers.workers
    # pinged and answering for longer than SILENT_LIMIT (a ping every 0.1 s): nobody is killed
    await until(lambda: min(healthy.pongs, stuck.pongs) >= 15)
    assert pids(server) == {healthy.process.pid, stuck.process.pid}
    os.kill(stuck.process.pid, signal.SIGSTOP)  # its loop stops: it answers no ping
    await until(lambda: stuck.process.pid not in pids(server) and len(pids(server)) == 2, timeout=15)
    assert healthy.process.pid in pids(server)
    assert stuck.process.returncode == -signal.SIGKILL
    for _ in range(4):
        assert await server.send("a@b.ru", ["sales@example.test"], MESSAGE) == {}


@pytest.mark.parametrize("workers", [0, 2])
async def test_sessions_opened_before_a_reload_count_against_the_new_limits(mail_server: Any, workers: int) -> None:
    server = await mail_server(WORKERS.format(workers=workers))
    before = await server.connect()
    server.config_path.write_text(server.config_path.read_text().replace(
        "max_connections_per_ip = 3", "max_connections_per_ip = 1", 1))  # (the listener is reopened)
    await server.daemon.reload()
    if workers:
        assert await server.daemon.smtp_workers.applied_everywhere()
    refused = await server.connect()
    assert refused.greeting.startswith("421 4.7.0")
    await before.close()
    await until(lambda: (counted(server) if workers else server.daemon.smtp_counts.active) == 0)
    after = await server.connect()
    assert after.greeting.startswith("220 ")
    await after.close()


async def test_a_long_text_from_a_worker_is_shown_whole(mail_server: Any) -> None:
    """A worker sends the daemon only the start of a text longer than the store keeps inline;
    the comment still shows all of it (from the raw message)."""
    server = await mail_server(WORKERS.format(workers=2))
    body = "".join(f"Строка {i}: съешь же ещё этих мягких булок\r\n" for i in range(500))
    message = b"From: a@b.ru\r\nSubject: long\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body.encode()
    assert await server.send("a@b.ru", ["sales@example.test"], message) == {}
    [comment] = server.comments("Mail/sales@example.test")
    assert comment.text == body.replace("\r\n", "\n").strip()
