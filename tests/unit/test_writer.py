"""The store's writer: a caller hears of success only after the WAL holding its commit is synced."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from prostoy_mail.store import writer as writer_module
from prostoy_mail.store.sqlite import SqliteStore
from prostoy_mail.store.writer import StoreWriter


async def test_an_answer_comes_only_after_the_wal_is_synced(tmp_path: Path, monkeypatch: Any) -> None:
    events: list[str] = []
    real_fdatasync = os.fdatasync

    def spy(fd: int) -> None:
        events.append(f"sync {os.readlink(f'/proc/self/fd/{fd}').rsplit('/', 1)[-1]}")
        real_fdatasync(fd)

    monkeypatch.setattr(writer_module.os, "fdatasync", spy)
    writer = StoreWriter(SqliteStore(tmp_path / "store.db"))
    try:
        def job(store: SqliteStore) -> int:
            events.append("job")
            return store.add_project("P").id

        project_id = await writer.run(job)
        events.append("answered")
        assert events == ["job", "sync store.db-wal", "answered"]
        assert project_id == 1
    finally:
        writer.close()


async def test_a_failed_sync_fails_the_callers(tmp_path: Path, monkeypatch: Any) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(writer_module.os, "fdatasync", broken)
    writer = StoreWriter(SqliteStore(tmp_path / "store.db"))
    try:
        with pytest.raises(OSError, match="Input/output error"):
            await writer.run(lambda store: store.add_project("P"))
    finally:
        monkeypatch.undo()
        writer.close()
