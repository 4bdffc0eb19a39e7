"""The quick form of the crash suite (the long one: bench/crash_suite.py): the daemon as a
process, SIGKILLed at random moments under load and restarted; then counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash import fetch_crash, outbound_crash, smtp_crash, webhook_crash


def test_smtp_under_kills_loses_nothing_and_stores_nothing_twice(tmp_path: Path) -> None:
    report = smtp_crash(tmp_path, kills=5)
    print(report.line())
    assert report.kills == 5 and report.acknowledged > 50, report.line()
    assert (report.lost, report.duplicated, report.half_stored) == (0, 0, 0), report.line()
    assert report.stored == report.acknowledged and report.extra["tracebacks"] == 0, report.line()
    # the rule that opens a task for every message: exactly one each, never one without its comment
    assert report.extra["tasks opened twice"] == report.extra["tasks without their first comment"] == 0, \
        report.line()
    assert report.extra["acknowledged without their task"] == 0, report.line()


def test_smtp_worker_processes_killed_lose_nothing(tmp_path: Path) -> None:
    """An SMTP worker killed at any point: its sessions are cut without a 250 (their clients send
    again), the daemon starts another, and every message that got its 250 is stored once."""
    report = smtp_crash(tmp_path, kills=5, kill="workers")
    print(report.line())
    assert report.kills == 5 and report.acknowledged > 50, report.line()
    assert (report.lost, report.duplicated, report.half_stored) == (0, 0, 0), report.line()
    assert report.stored == report.acknowledged, report.line()


def test_fetching_with_delete_after_commit_under_kills(tmp_path: Path) -> None:
    report = fetch_crash(tmp_path, kills=3, messages=120)
    print(report.line())
    assert report.kills == 3 and report.acknowledged == 120, report.line()
    assert (report.lost, report.duplicated, report.half_stored) == (0, 0, 0), report.line()
    assert report.extra["left on the server"] == 0 and report.extra["tracebacks"] == 0, report.line()


@pytest.mark.slow
def test_the_spool_delivers_everything_despite_kills(tmp_path: Path) -> None:
    report = outbound_crash(tmp_path, kills=3)
    print(report.line())
    assert report.kills == 3 and report.acknowledged > 10, report.line()
    assert report.lost == 0 and report.extra["tracebacks"] == 0, report.line()
    # A duplicate is possible only for a message whose peer's 250 was not yet recorded when
    # the kill came: at most the one being sent and the one being recorded, per kill.
    assert report.duplicated <= 2 * report.kills, report.line()


def test_big_smtp_messages_spooled_to_files_under_kills(tmp_path: Path) -> None:
    """3 MiB messages go to their files while DATA arrives: a kill at any point leaves each
    acknowledged one stored once with its file complete (read back and hashed)."""
    report = smtp_crash(tmp_path, kills=3, senders=2, size=3 << 20)
    print(report.line())
    assert report.kills == 3 and report.acknowledged >= 5, report.line()
    assert (report.lost, report.duplicated, report.half_stored) == (0, 0, 0), report.line()
    assert report.stored == report.acknowledged and report.extra["tracebacks"] == 0, report.line()


def test_webhooks_under_kills_get_every_event_at_least_once_and_none_invented(tmp_path: Path) -> None:
    report = webhook_crash(tmp_path, kills=4)
    print(report.line())
    assert report.kills == 4 and report.acknowledged > 20, report.line()
    assert report.lost == 0 and report.stored == report.acknowledged, report.line()
    assert report.extra["events invented"] == 0, report.line()
    assert report.extra["acknowledged messages without their event"] == 0, report.line()
    assert report.extra["tracebacks"] == 0, report.line()

