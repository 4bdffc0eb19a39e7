"""A prostoy-mail daemon in the test process, on the test's event loop, on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.store.ports import Comment
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import config_text

BASE_CONFIG = config_text()  # SMTP on a free loopback port; a test adds what it needs


@dataclass
class MailServer:
    daemon: Daemon
    config_path: Path
    store_path: Path

    @property
    def port(self) -> int:
        return self.daemon.bound_port("smtp")

    def store(self) -> SqliteStore:
        """A second connection to the store, for looking (WAL lets it read while the daemon writes)."""
        return SqliteStore(self.store_path)

    def comments(self, task: str) -> list[Comment]:
        store = self.store()
        try:
            return store.list_comments(store.resolve_task(task).id)
        finally:
            store.close()

    def count(self, table: str) -> int:
        store = self.store()
        try:
            return int(store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            store.close()

    async def send(self, mail_from: str, rcpts: list[str], data: bytes) -> dict[str, tuple[int, bytes]]:
        """smtplib in a thread (the server runs on this loop)."""
        def go() -> dict[str, tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                return client.sendmail(mail_from, rcpts, data)
        return await asyncio.to_thread(go)

    async def connect(self) -> RawSmtp:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        session = RawSmtp(reader, writer)
        session.greeting = await session.reply()
        return session


@dataclass
class RawSmtp:
    """An SMTP client that sends exactly the bytes a test says, for the protocol's edge cases."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    greeting: str = ""

    async def reply(self, timeout: float = 10.0) -> str:
        """One whole reply (all lines of a multi-line one), or "" when the server closed."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                break
            lines.append(line.decode().rstrip("\r\n"))
            if line[3:4] != b"-":
                break
        return "\n".join(lines)

    async def cmd(self, line: str | bytes) -> str:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


Setup = Callable[[SqliteStore], None]


@pytest.fixture
async def mail_server(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Start a daemon: `await mail_server(extra_config_text, setup=fn(store))`."""
    started: list[Daemon] = []

    async def start(extra: str = "", setup: Setup | None = None) -> MailServer:
        config_path = tmp_path / "prostoy-mail.toml"
        config_path.write_text(BASE_CONFIG + extra)
        store_path = tmp_path / "store.db"
        store = SqliteStore(store_path)
        if setup is not None:
            setup(store)
        store.close()
        daemon = Daemon(load_config(config_path))
        await daemon.start()
        started.append(daemon)
        return MailServer(daemon, config_path, store_path)

    yield start
    for daemon in started:
        await daemon.stop()

