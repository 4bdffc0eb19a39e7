"""The store's writer: a caller hears of success only after the WAL holding its commit is synced."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from prostoy_mail.store.ports import StoreUnavailable
from prostoy_mail.store.sqlite import SqliteStore
from prostoy_mail.store.writer import StoreWriter


async def test_an_answer_comes_only_after_the_sync_process_has_synced(tmp_path: Path) -> None:
    writer = StoreWriter(SqliteStore(tmp_path / "store.db"))
    syncer = writer._syncer.process
    try:
        assert (await writer.run(lambda store: store.add_project("First"))).id == 1
        os.kill(syncer.pid, signal.SIGSTOP)  # it syncs nothing now
        try:
            answer = asyncio.ensure_future(writer.run(lambda store: store.add_project("Second")))
            reader = sqlite3.connect(tmp_path / "store.db")
            for _ in range(100):  # committed, visible to others...
                if reader.execute("SELECT count(*) FROM projects").fetchone()[0] == 2:
                    break
                await asyncio.sleep(0.01)
            reader.close()
            await asyncio.sleep(0.3)
            assert not answer.done()  # ...but not known to be on disk: not answered
        finally:
            os.kill(syncer.pid, signal.SIGCONT)
        assert (await asyncio.wait_for(answer, 10)).id == 2
    finally:
        writer.close()


async def test_a_failed_sync_fails_the_callers(tmp_path: Path) -> None:
    writer = StoreWriter(SqliteStore(tmp_path / "store.db"))
    try:
        await writer.run(lambda store: store.add_project("First"))
        os.unlink(tmp_path / "store.db-wal")  # the sync process cannot open the WAL to sync it
        with pytest.raises(StoreUnavailable) as raised:  # (the store's own error, the OSError its cause)
            await writer.run(lambda store: store.add_project("Second"))
        assert isinstance(raised.value.__cause__, OSError) and raised.value.__cause__.errno == errno.ENOENT
    finally:
        writer.close()


async def test_a_sync_process_that_dies_is_replaced_and_what_waited_is_answered(tmp_path: Path) -> None:
    writer = StoreWriter(SqliteStore(tmp_path / "store.db"))
    first = writer._syncer.process
    try:
        await writer.run(lambda store: store.add_project("First"))
        os.kill(first.pid, signal.SIGSTOP)
        waiting = asyncio.ensure_future(writer.run(lambda store: store.add_project("Second")))
        await asyncio.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)
        assert (await asyncio.wait_for(waiting, 10)).id == 2  # synced and answered by its successor
        assert writer._syncer.process.pid != first.pid
        assert (await writer.run(lambda store: store.add_project("Third"))).id == 3
    finally:
        writer.close()
    assert writer._syncer.process.returncode == 0  # closing the writer ends it


async def test_closing_answers_every_job_handed_in(tmp_path: Path) -> None:
    writer = StoreWriter(SqliteStore(tmp_path / "store.db"))
    jobs = [asyncio.ensure_future(writer.run(lambda store, i=i: store.add_project(f"P{i}").id)) for i in range(50)]
    await asyncio.sleep(0)  # (handed in)
    await asyncio.to_thread(writer.close)
    assert sorted(await asyncio.gather(*jobs)) == list(range(1, 51))


async def test_a_job_from_another_thread_is_answered_in_that_thread(tmp_path: Path) -> None:
    """A gateway's watcher waits for its job itself, without a hop through the event loop; a
    failing job fails there too, as the store's own error."""
    writer = StoreWriter(SqliteStore(tmp_path / "store.db"))
    try:
        project = await asyncio.to_thread(writer.run_blocking, lambda store: store.add_project("From a thread"))
        assert project.name == "From a thread"
        assert [p.name for p in await writer.run(lambda store: store.list_projects())] == ["From a thread"]

        def failing(store: SqliteStore) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        with pytest.raises(Exception, match="disk I/O error"):
            await asyncio.to_thread(writer.run_blocking, failing)
    finally:
        writer.close()
