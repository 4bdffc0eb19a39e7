"""Fetching from an external IMAP mailbox: a real Dovecot standing in for yandex.ru."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import resource
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from prostoy_mail.config.model import Endpoint
from prostoy_mail.fetch.errors import FetchError
from prostoy_mail.fetch.imap import ImapConnection, TlsSettings
from prostoy_mail.store.ports import FetchedKey
from prostoy_mail.store.sqlite import SqliteStore
from tests.conftest import console_script
from tests.dovecot import Dovecot
from tests.waiting import until

USERS = {f"box{i}@example.org": f"secret{i}" for i in range(40)}
_next_user = itertools.count()


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot(USERS).start()
    yield server
    server.stop()


@pytest.fixture
def mailbox() -> str:
    """A mailbox on Dovecot that no other test uses."""
    return f"box{next(_next_user)}@example.org"


def gateway_config(dovecot: Dovecot, email: str, *, security: str = "starttls", port: str = "imap",
                   options: str = "", password: str | None = None, ca: bool = True) -> str:
    return f"""
[fetch]
idle_renew = 1
poll_interval = 1
backoff_initial = 0.2
backoff_max = 1

[[servers]]
name = "dovecot.test"
imap = "127.0.0.1:{dovecot.ports[port]}"
pop3 = "127.0.0.1:{dovecot.ports['pop3']}"
fetch_security = "{security}"
ssl = {"true" if security == "ssl" else "false"}
{f'ca_file = "{dovecot.ca_file}"' if ca else ""}

[[gateways]]
email = "{email}"
server = "dovecot.test"
login = "{email}"
password = "{password or USERS[email]}"
{options}
"""


def message(subject: str, body: str = "body") -> bytes:
    return f"From: client@client.ru\r\nTo: support@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


async def more_checks(server: Any, email: str, count: int = 2) -> None:
    """Until the gateway's watcher has checked its mailbox `count` more times (polls, or IDLE
    renewals): what was not fetched by then is not fetched."""
    checks = server.daemon.fetchers.checks
    start = checks(email)
    await until(lambda: checks(email) >= start + count)


def subjects(server: Any, email: str) -> list[str]:
    return [c.subject for c in server.comments(f"Mail/{email}")]


async def append(dovecot: Dovecot, email: str, raw: bytes, flags: str = "") -> None:
    await asyncio.to_thread(dovecot.append, email, raw, "INBOX", flags)


async def on_server(dovecot: Dovecot, email: str) -> list[tuple[int, str, bytes]]:
    return await asyncio.to_thread(dovecot.messages, email)


async def test_new_mail_arrives_through_idle_old_mail_stays_out(mail_server: Any, dovecot: Dovecot,
                                                                mailbox: str) -> None:
    await append(dovecot, mailbox, message("old, before the gateway was added"))
    server = await mail_server(gateway_config(dovecot, mailbox))
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    started = time.monotonic()
    await append(dovecot, mailbox, message("Счёт № 7", "Оплатите, пожалуйста"))
    await until(lambda: subjects(server, mailbox))
    latency = time.monotonic() - started
    [comment] = server.comments(f"Mail/{mailbox}")
    assert (comment.subject, comment.source, comment.routed_by) == ("Счёт № 7", mailbox, ("fallback",))
    assert comment.text == "Оплатите, пожалуйста"
    assert latency < 5.0, latency  # IDLE, not polling
    await more_checks(server, mailbox, 3)  # each after an IDLE renewal (idle_renew = 1): on one connection
    daemon_logins = [line for line in dovecot.log().splitlines()
                     if f"Login: user=<{mailbox}>" in line and ", TLS," in line]  # the test's own are plain
    assert len(daemon_logins) == 1, dovecot.log()[-2000:]
    # keep_on_server (the default): both still there, nothing marked read
    kept = await on_server(dovecot, mailbox)
    assert len(kept) == 2 and all("\\Seen" not in flags for _, flags, _ in kept)


async def test_import_since_takes_older_mail_too(mail_server: Any, dovecot: Dovecot, mailbox: str) -> None:
    await append(dovecot, mailbox, message("older one"))
    await append(dovecot, mailbox, message("older two"))
    server = await mail_server(gateway_config(dovecot, mailbox, options='import_since = "2000-01-01"'))
    await until(lambda: len(subjects(server, mailbox)) == 2)
    assert sorted(subjects(server, mailbox)) == ["older one", "older two"]


async def test_mark_read_and_delete_happen_after_the_commit(mail_server: Any, dovecot: Dovecot) -> None:
    read_box, delete_box = f"box{next(_next_user)}@example.org", f"box{next(_next_user)}@example.org"
    text = gateway_config(dovecot, read_box, options="mark_read = true") + gateway_config(
        dovecot, delete_box, options="keep_on_server = false").split("[[gateways]]")[1].join(["[[gateways]]", ""])
    server = await mail_server(text)
    await until(lambda: all((s := server.store().gateway_state(b)) and s.last_success for b in (read_box, delete_box)))
    await append(dovecot, read_box, message("to be read"))
    await append(dovecot, delete_box, message("to be deleted"))
    await until(lambda: subjects(server, read_box) and subjects(server, delete_box))
    await until(lambda: all("\\Seen" in flags for _, flags, _ in dovecot.messages(read_box)))
    await until(lambda: dovecot.messages(delete_box) == [])
    store = server.store()
    assert store.pending_actions(read_box) == [] and store.pending_actions(delete_box) == []


async def test_a_rule_with_delete_after_deletes_on_the_server(mail_server: Any, dovecot: Dovecot,
                                                              mailbox: str) -> None:
    rules = f'\n[[rules]]\nname = "newsletters"\ngateway = "{mailbox}"\nsubject = "digest"\naction = "ignore"\n' \
            "delete_after = true\n"
    server = await mail_server(gateway_config(dovecot, mailbox) + rules)
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    await append(dovecot, mailbox, message("Weekly digest"))
    await append(dovecot, mailbox, message("a real question"))
    await until(lambda: subjects(server, mailbox) == ["a real question"])
    await until(lambda: [s for _, _, raw in dovecot.messages(mailbox) for s in [raw]] and
                all(b"digest" not in raw for _, _, raw in dovecot.messages(mailbox)))
    assert server.count("messages") == 2  # the ignored one is stored too, in no task


async def test_restarts_neither_lose_nor_duplicate(mail_server: Any, dovecot: Dovecot, mailbox: str) -> None:
    config = gateway_config(dovecot, mailbox, options="mark_read = true")
    server = await mail_server(config)
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    await append(dovecot, mailbox, message("one"))
    await until(lambda: subjects(server, mailbox) == ["one"])
    await server.daemon.stop()
    # while the daemon is down, mail arrives; and one server change was left undone (a crash
    # between the commit and the \Seen)
    await append(dovecot, mailbox, message("two"))
    await append(dovecot, mailbox, message("three"))
    store = server.store()
    [(key, _)] = [(k, a) for k, a in [(FetchedKey(mailbox, store.gateway_state(mailbox).folder, "1"), "seen")]]
    store.db.execute("UPDATE fetched SET action_done = 0 WHERE uid = ?", (key.uid,))
    await asyncio.to_thread(_unseen_all, dovecot, mailbox)
    store.close()
    again = await mail_server(config)
    await until(lambda: sorted(subjects(again, mailbox)) == ["one", "three", "two"])
    await until(lambda: all("\\Seen" in flags for _, flags, _ in dovecot.messages(mailbox)))
    await again.daemon.stop()
    third = await mail_server(config)
    await more_checks(third, mailbox)
    assert sorted(subjects(third, mailbox)) == ["one", "three", "two"]
    assert third.count("messages") == 3


def _unseen_all(dovecot: Dovecot, email: str) -> None:
    imap = dovecot.client(email)
    imap.select("INBOX")
    imap.uid("STORE", "1:*", "-FLAGS.SILENT", r"(\Seen)")
    imap.logout()


async def test_a_new_uidvalidity_neither_loses_nor_duplicates(mail_server: Any, dovecot: Dovecot,
                                                              mailbox: str) -> None:
    config = gateway_config(dovecot, mailbox)
    server = await mail_server(config)
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    await append(dovecot, mailbox, message("before"))
    await until(lambda: subjects(server, mailbox) == ["before"])
    await server.daemon.stop()
    await append(dovecot, mailbox, message("after"))
    store = server.store()  # as if the server had rebuilt the mailbox: the UIDVALIDITY we knew is gone
    store.db.execute("UPDATE gateway_state SET folder = 'INBOX/1', last_uid = 99 WHERE gateway = ?", (mailbox,))
    store.close()
    again = await mail_server(config)
    await until(lambda: sorted(subjects(again, mailbox)) == ["after", "before"])
    await more_checks(again, mailbox)
    assert again.count("messages") == 2


@pytest.mark.parametrize(("security", "port"), [("ssl", "imaps"), ("starttls", "imap"), ("none", "imap")])
async def test_each_kind_of_connection(mail_server: Any, dovecot: Dovecot, mailbox: str, security: str,
                                       port: str) -> None:
    server = await mail_server(gateway_config(dovecot, mailbox, security=security, port=port))
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    await append(dovecot, mailbox, message(f"over {security}"))
    await until(lambda: subjects(server, mailbox) == [f"over {security}"])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"password": "wrong"}, "login: "),
        ({"security": "ssl", "port": "imaps", "ca": False}, "tls: certificate not trusted"),
        ({"security": "ssl", "port": "imap"}, "tls: "),
    ],
)
async def test_failures_are_recorded_and_retried(mail_server: Any, dovecot: Dovecot, mailbox: str,
                                                 kwargs: dict[str, Any], error: str) -> None:
    server = await mail_server(gateway_config(dovecot, mailbox, **kwargs))
    state = await until(lambda: (s := server.store().gateway_state(mailbox)) and s.failures >= 2 and s)
    assert state.last_error.startswith(error), state.last_error
    assert state.next_attempt is not None and state.last_success is None
    listed = subprocess.run([console_script(), "--config", str(server.config_path), "gateway", "list", "--json"],
                            capture_output=True, text=True, timeout=60)
    [row] = json.loads(listed.stdout)
    assert row["last_error"].startswith(error) and row["failures"] >= 2 and row["next_attempt"]


async def test_deleting_the_comment_deletes_on_the_server_when_asked(mail_server: Any, dovecot: Dovecot,
                                                                     mailbox: str) -> None:
    server = await mail_server(gateway_config(dovecot, mailbox, options="delete_on_server_when_deleted = true"))
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    await append(dovecot, mailbox, message("delete me in the CRM"))
    [comment] = await until(lambda: server.comments(f"Mail/{mailbox}"))
    deleted = subprocess.run([console_script(), "--config", str(server.config_path), "comment", "delete",
                              str(comment.id)], capture_output=True, text=True, timeout=60)
    assert deleted.returncode == 0 and "will be deleted from" in deleted.stdout, deleted.stderr
    await until(lambda: dovecot.messages(mailbox) == [])


async def test_without_that_option_a_deleted_comment_does_not_come_back(mail_server: Any, dovecot: Dovecot,
                                                                        mailbox: str) -> None:
    config = gateway_config(dovecot, mailbox)
    server = await mail_server(config)
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    await append(dovecot, mailbox, message("kept on the server"))
    [comment] = await until(lambda: server.comments(f"Mail/{mailbox}"))
    store: SqliteStore = server.store()
    store.delete_comment(comment.id)
    store.close()
    await server.daemon.stop()
    again = await mail_server(config)
    await more_checks(again, mailbox)
    assert again.comments(f"Mail/{mailbox}") == [] and len(dovecot.messages(mailbox)) == 1


async def test_a_message_that_cannot_be_stored_is_quarantined_and_the_rest_goes_on(
        mail_server: Any, dovecot: Dovecot, mailbox: str) -> None:
    server = await mail_server(gateway_config(dovecot, mailbox))
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    store = server.store()  # a real fault: the store refuses this one message, every time
    store.db.execute("CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.subject = 'poison'"
                     " BEGIN SELECT RAISE(ABORT, 'disk says no'); END")
    store.close()
    await append(dovecot, mailbox, message("poison"))
    await append(dovecot, mailbox, message("healthy"))
    await until(lambda: subjects(server, mailbox) == ["healthy"], timeout=30)
    await until(lambda: server.store().list_quarantine(), timeout=30)
    listed = json.loads(_cli(server, "quarantine", "list", "--json").stdout)
    assert [(q["gateway"], q["attempts"]) for q in listed] == [(mailbox, 3)] and "disk says no" in listed[0]["error"]
    store = server.store()
    store.db.execute("DROP TRIGGER poison")
    store.close()
    retried = _cli(server, "quarantine", "retry", str(listed[0]["id"]))
    assert retried.returncode == 0, retried.stderr
    assert sorted(subjects(server, mailbox)) == ["healthy", "poison"]
    assert json.loads(_cli(server, "quarantine", "list", "--json").stdout) == []


def _cli(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), "--config", str(server.config_path), *args], capture_output=True,
                          text=True, timeout=60)


def pop3_config(dovecot: Dovecot, email: str, *, security: str = "starttls", port: str = "pop3",
                options: str = "") -> str:
    return gateway_config(dovecot, email, security=security, options='protocol = "pop3"\n' + options).replace(
        f'pop3 = "127.0.0.1:{dovecot.ports["pop3"]}"', f'pop3 = "127.0.0.1:{dovecot.ports[port]}"')


@pytest.mark.parametrize(("security", "port"), [("starttls", "pop3"), ("ssl", "pop3s")])
async def test_pop3_polls_and_deletes_after_the_commit(mail_server: Any, dovecot: Dovecot, mailbox: str,
                                                       security: str, port: str) -> None:
    await append(dovecot, mailbox, message("already there"))
    config = pop3_config(dovecot, mailbox, security=security, port=port, options="keep_on_server = false")
    server = await mail_server(config)
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    await append(dovecot, mailbox, message("new over pop3"))
    await until(lambda: subjects(server, mailbox) == ["new over pop3"])
    await until(lambda: [raw for _, _, raw in dovecot.messages(mailbox)] and
                all(b"new over pop3" not in raw for _, _, raw in dovecot.messages(mailbox)))
    assert len(dovecot.messages(mailbox)) == 1  # the old one stays: it was there before the gateway
    await server.daemon.stop()
    again = await mail_server(config)
    await more_checks(again, mailbox)
    assert subjects(again, mailbox) == ["new over pop3"] and again.count("messages") == 1


async def test_a_failure_in_the_middle_of_a_batch_loses_nothing(mail_server: Any, dovecot: Dovecot,
                                                                mailbox: str) -> None:
    config = gateway_config(dovecot, mailbox)
    server = await mail_server(config)
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    await server.daemon.stop()
    for subject in ("first", "flaky", "third", "fourth"):  # fetched together in one batch on restart
        await append(dovecot, mailbox, message(subject))
    store = server.store()
    store.db.execute("CREATE TRIGGER flaky BEFORE INSERT ON messages WHEN NEW.subject = 'flaky'"
                     " BEGIN SELECT RAISE(ABORT, 'a passing fault'); END")
    store.close()
    again = await mail_server(config)
    await until(lambda: (s := again.store().gateway_state(mailbox)) and s.failures >= 1)
    store = again.store()
    store.db.execute("DROP TRIGGER flaky")  # the fault passes before the message is quarantined
    store.close()
    await until(lambda: sorted(subjects(again, mailbox)) == ["first", "flaky", "fourth", "third"])
    await more_checks(again, mailbox)
    assert again.count("messages") == 4 and again.store().list_quarantine() == []


async def test_forwarding_off_fetches_nothing_until_a_reload_turns_it_on(mail_server: Any, dovecot: Dovecot,
                                                                        mailbox: str) -> None:
    from prometheus_client import generate_latest

    server = await mail_server(gateway_config(dovecot, mailbox, options="forwarding = false"))
    await append(dovecot, mailbox, message("not fetched: forwarding is off"))
    assert mailbox not in server.daemon.fetchers.watchers  # no watcher: nothing can be fetched
    assert server.comments(f"Mail/{mailbox}") == [] and server.store().gateway_state(mailbox) is None
    server.config_path.write_text(server.config_path.read_text().replace("forwarding = false", "forwarding = true"))
    await server.daemon.reload()
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    await append(dovecot, mailbox, message("fetched after the reload"))
    await until(lambda: subjects(server, mailbox) == ["fetched after the reload"])
    metrics = generate_latest(server.daemon.metrics.registry).decode()
    assert 'prostoy_mail_fetched_messages_total{organisation="main"} 1.0' in metrics
    assert 'prostoy_mail_messages_accepted_total{organisation="main",via="gateway"} 1.0' in metrics
    assert mailbox not in metrics  # (never an address as a label)


async def test_pop3_first_import_takes_only_mail_since_import_since(mail_server: Any, dovecot: Dovecot,
                                                                    mailbox: str) -> None:
    old = b"From: a@b.ru\r\nDate: Mon, 01 Jan 2001 10:00:00 +0000\r\nSubject: from 2001\r\n\r\nold\r\n"
    recent = b"From: a@b.ru\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nSubject: from 2026\r\n\r\nnew\r\n"
    await append(dovecot, mailbox, old)
    await append(dovecot, mailbox, recent)
    server = await mail_server(pop3_config(dovecot, mailbox, options='import_since = "2026-01-01"'))
    await until(lambda: subjects(server, mailbox) == ["from 2026"])
    await more_checks(server, mailbox)  # more polls: the old one stays out
    assert subjects(server, mailbox) == ["from 2026"] and len(dovecot.messages(mailbox)) == 2


async def test_a_big_message_is_kept_as_a_file_byte_for_byte(mail_server: Any, dovecot: Dovecot,
                                                            mailbox: str) -> None:
    """Above EXTERNAL_AT the raw message is a file beside the store (written once, not twice
    through the WAL); what is read back is the same bytes, and a small one stays in the database."""
    from prostoy_mail.store.raw_files import EXTERNAL_AT

    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n"
    big = message("big one", (line * (EXTERNAL_AT // len(line) + 100)).decode())
    small = message("small one")
    await append(dovecot, mailbox, big)
    await append(dovecot, mailbox, small)
    server = await mail_server(gateway_config(dovecot, mailbox, options='import_since = "2000-01-01"'))
    await until(lambda: len(subjects(server, mailbox)) == 2)
    store = server.store()
    rows = {subject: (raw_file, length) for subject, raw_file, length in store.db.execute(
        "SELECT subject, raw_file, length(raw) FROM messages")}
    assert rows["big one"][0] is not None and rows["big one"][1] == 0
    assert rows["small one"] == (None, len(small))
    stored = {c.subject: store.raw_message(c.message_db_id) for c in server.comments(f"Mail/{mailbox}")}
    assert stored == {"big one": big, "small one": small}  # (Dovecot keeps CRLF as given)
    assert [p.name for p in store.files.folder.iterdir()] == [rows["big one"][0]]


async def test_a_message_file_that_cannot_be_written_pauses_fetching_and_quarantines_nothing(
        mail_server: Any, dovecot: Dovecot, mailbox: str) -> None:
    from prostoy_mail.store.raw_files import EXTERNAL_AT

    server = await mail_server(gateway_config(dovecot, mailbox))
    await until(lambda: (s := server.store().gateway_state(mailbox)) and s.last_success)
    folder = server.store().files.folder
    folder.parent.joinpath(folder.name).write_text("not a folder")  # every file write now fails
    big = message("big one", ("x" * 70 + "\r\n") * (EXTERNAL_AT // 70))
    await append(dovecot, mailbox, big)
    state = await until(lambda: (s := server.store().gateway_state(mailbox)) and s.failures >= 2 and s)
    assert state.last_error.startswith("store"), state.last_error
    assert subjects(server, mailbox) == [] and server.store().list_quarantine() == []
    folder.unlink()  # the disk is back
    await until(lambda: subjects(server, mailbox) == ["big one"])
    [comment] = server.comments(f"Mail/{mailbox}")
    assert server.store().raw_message(comment.message_db_id) == big
    assert server.store().list_quarantine() == []


def test_idle_hears_mail_on_a_descriptor_numbered_past_1024(dovecot: Dovecot, mailbox: str) -> None:
    """select() refused descriptors from 1,024 up: in a daemon with 1,000 gateways those past it
    failed for ever (issue #20). IDLE waits with poll(), on any descriptor, without waking every
    second; stop() (abort: the socket shut down) ends the wait at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        tls = TlsSettings("starttls", ca_file=str(dovecot.ca_file))
        connection = ImapConnection.open(Endpoint("127.0.0.1", dovecot.ports["imap"]), tls, mailbox, USERS[mailbox])
        try:
            assert connection.imap.sock.fileno() >= 1024
            connection.select("INBOX")
            threading.Timer(0.3, dovecot.append, (mailbox, b"Subject: late\r\n\r\nx\r\n")).start()
            assert connection.idle(30, threading.Event()) is True
            stop = threading.Event()
            threading.Timer(0.3, lambda: (stop.set(), connection.abort())).start()
            began = time.monotonic()
            # (DONE on the socket shut down fails, or the EOF is read first: either way the watcher
            # sees that it is stopping, and ends)
            with pytest.raises((OSError, FetchError)):
                connection.idle(30, stop)
            assert time.monotonic() - began < 5
        finally:
            connection.close()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
