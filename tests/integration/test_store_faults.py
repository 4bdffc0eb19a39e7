"""The store's disk fills up, then frees again: SMTP says 452 and stores nothing it did not
acknowledge, fetching pauses without quarantining anything, and both resume by themselves.

The store lies on a small tmpfs mounted for the test (root is needed to mount one)."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import QUICK_FETCH, config_text
from tests.dovecot import Dovecot
from tests.waiting import until

LOGIN = "box@gw.test"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    # Unbuffered: a buffered file keeps what the last write could not place and raises ENOSPC
    # again when it is closed, outside the suppress (this failed now and then, by alignment).
    # Down to the last byte: what 64 KiB writes leave free (up to 64 KiB, by how big the store
    # happens to be) let a small transaction through now and then, and the test with it.
    with open(filler, "wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
    return filler


def big(i: int) -> bytes:
    return f"From: a@far.example\r\nSubject: big {i}\r\n\r\n".encode() + (b"y" * 998 + b"\r\n") * 300


def send(port: int, raw: bytes) -> int:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail("a@far.example", ["box@faults.test"], raw)
        return 250
    except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:  # (at MAIL FROM once under MIN_FREE)
        assert exc.smtp_error.startswith(b"4.3.1 Insufficient system storage"), exc.smtp_error
        return exc.smtp_code


async def test_a_full_disk_gets_452_pauses_fetching_and_both_resume(small_disk: Path, tmp_path: Path) -> None:
    dovecot = Dovecot({LOGIN: "pw"}).start()
    try:
        await _scenario(small_disk, tmp_path, dovecot)
    finally:
        dovecot.stop()


async def _scenario(disk: Path, tmp_path: Path, dovecot: Dovecot) -> None:
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(
        domain="faults.test", store="disk/store.db",
        fetch={**QUICK_FETCH, "backoff_max": 0.5, "max_attempts": 2},
        servers=[{"name": "dovecot.test", "imap": f"127.0.0.1:{dovecot.ports['imap']}", "fetch_security": "none",
                  "ssl": False}],
        mailboxes=["box"],
        gateways=[{"email": LOGIN, "server": "dovecot.test", "login": LOGIN, "password": "pw",
                   "keep_on_server": False}]))
    daemon = Daemon(load_config(config))
    await daemon.start()
    port = daemon.bound_port("smtp")

    def count(sql: str) -> int:
        store = SqliteStore(disk / "store.db")
        try:
            return int(store.db.execute(sql).fetchone()[0])
        finally:
            store.close()

    try:
        def first_check_done() -> bool:  # (the watcher is idle: it has read the mailbox once, its position set)
            store = SqliteStore(disk / "store.db")
            try:
                state = store.gateway_state(LOGIN)
            finally:
                store.close()
            return state is not None and state.state == "idle"

        await until(first_check_done)
        assert await asyncio.to_thread(send, port, big(0)) == 250
        filler = await asyncio.to_thread(fill, disk)
        codes = [await asyncio.to_thread(send, port, big(i)) for i in range(1, 6)]
        assert 452 in codes, codes
        acknowledged = 1 + codes.count(250)
        assert count("SELECT count(*) FROM messages WHERE source = 'smtp'") == acknowledged  # nothing unacknowledged

        errors = daemon.metrics.fetch_errors.labels("main", "store")
        before = errors._value.get()
        await asyncio.to_thread(dovecot.append, LOGIN, b"From: c@far.example\r\nSubject: fetched\r\n\r\nhi\r\n")
        fetched = f"SELECT count(*) FROM messages WHERE source = '{LOGIN}'"
        # A full disk: the watcher's writes fail (the metric and the log tell) and it backs off,
        # the message staying on the server; or, where SQLite's write-ahead log still has room
        # for so small a message, it is stored (and only then deleted on the server). Either
        # way nothing is quarantined and nothing is lost.
        await until(lambda: errors._value.get() >= before + 4 or count(fetched) == 1)
        assert count("SELECT count(*) FROM quarantine") == 0
        assert len(await asyncio.to_thread(dovecot.messages, LOGIN)) == 1 - count(fetched)

        filler.unlink()  # the fault clears: both go on by themselves
        assert await asyncio.to_thread(send, port, big(9)) == 250
        await until(lambda: count(fetched) == 1)
        await until(lambda: not dovecot.messages(LOGIN))
        assert count("SELECT count(*) FROM quarantine") == 0
    finally:
        await daemon.stop()


async def test_a_big_message_on_a_full_disk_gets_452_after_its_data(small_disk: Path, tmp_path: Path) -> None:
    """A spooled (over 1 MiB) message whose file cannot be written: 452 4.3.1 once its data has
    ended (was `500 Error: (OSError) [Errno 28]`, a bounce, and the rest of the body read as
    commands); a MAIL FROM declaring a SIZE the disk cannot take: 452 at once."""
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(domain="faults.test", store="disk/store.db", smtp={"workers": 0}, mailboxes=["box"]))
    daemon = Daemon(load_config(config))
    await daemon.start()
    try:
        port = daemon.bound_port("smtp")
        filler = await asyncio.to_thread(fill, small_disk)
        filler.write_bytes(filler.read_bytes()[: -(2 * 1024 * 1024 + 512 * 1024)])  # ~2.5 MiB free
        body = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 3000  # 3 MB: spooled, more than is free

        def session() -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
            # (SIZE=5000000 is more than the disk has)
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo("me")
                declared = client.mail("a@far.example", ["SIZE=5000000"])
                client.rset()
                client.mail("a@far.example")
                client.rcpt("box@faults.test")
                data = client.data(body)
                after = client.noop()  # the body was not taken for commands
                client.rset()
                return declared, (0, b""), data, after

        declared, _, data, after = await asyncio.to_thread(session)
        assert declared[0] == 452 and declared[1].startswith(b"4.3.1"), declared
        assert data[0] == 452 and data[1].startswith(b"4.3.1"), data
        assert after[0] == 250
        store = SqliteStore(small_disk / "store.db")
        try:
            assert int(store.db.execute("SELECT count(*) FROM messages").fetchone()[0]) == 0
        finally:
            store.close()
    finally:
        await daemon.stop()
