"""The IMAP server for mail clients, over real sockets: stdlib imaplib for the protocol cases,
raw sockets for the byte-level ones (STARTTLS injection, pipelining, bounds), mbsync (isync)
as a real client syncing to a Maildir."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.store.ports import CommentTarget
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import LOOPBACK_ANY_PORT, config_text
from tests.tls_files import write_server_pair
from tests.users import HASHES, PASSWORDS
from tests.waiting import until


@dataclass
class Imap:
    daemon: Daemon
    path: Path
    context: ssl.SSLContext

    def port(self, name: str) -> int:
        return self.daemon.bound_port(name)

    def store(self) -> SqliteStore:
        return SqliteStore(self.path / "store.db")

    def login(self, login: str = "ivanov", implicit: bool = False) -> imaplib.IMAP4:
        if implicit:
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL("127.0.0.1", self.port("imaps"), ssl_context=self.context,
                                                      timeout=30)
        else:
            client = imaplib.IMAP4("127.0.0.1", self.port("imap"), timeout=30)
            client.starttls(self.context)
        client.login(login, PASSWORDS[login])
        return client

    def deliver(self, rcpt: str, raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.port("smtp"), timeout=30) as smtp:
            smtp.sendmail("client@far.example", [rcpt], raw)


def mail(subject: str, body: str = "body", extra: str = "") -> bytes:
    return f"From: Client <client@far.example>\r\nSubject: {subject}\r\n{extra}\r\n{body}\r\n".encode()


@pytest.fixture
async def imap(tmp_path: Path) -> AsyncIterator[Imap]:
    ca = trustme.CA()
    write_server_pair(ca, tmp_path, "localhost", "127.0.0.1", common_name="localhost")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    any_port = LOOPBACK_ANY_PORT
    (tmp_path / "prostoy-mail.toml").write_text(config_text(
        listen={"smtp": any_port, "imap": any_port, "imaps": any_port, "submission": any_port},
        # nobody listens at the relay: sent mail stays queued, which is all these tests need
        relay={"host": "127.0.0.1", "port": 9, "security": "none"},
        tls={"cert": "cert.pem", "key": "key.pem"},
        auth={"delay_after": 3, "max_delay": 0.1, "max_failures": 5},
        mailboxes=[{"login": "ivan", "owner": "ivanov"}, {"login": "petr", "owner": "petrov"}, "sales"]))
    store = SqliteStore(tmp_path / "store.db")
    for login, password_hash in HASHES.items():
        store.add_user(login, login.title(), password_hash, login == "ivanov")
    store.close()
    daemon = Daemon(load_config(tmp_path / "prostoy-mail.toml"))
    await daemon.start()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    try:
        yield Imap(daemon, tmp_path, context)
    finally:
        await daemon.stop()


async def run(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


def _ok(result: tuple[str, list[Any]]) -> list[Any]:
    status, data = result
    assert status == "OK", data
    return data


async def test_login_only_over_tls_and_the_folders_a_user_sees(imap: Imap) -> None:
    def go() -> tuple[list[bytes], str, list[bytes], list[bytes]]:
        plain = imaplib.IMAP4("127.0.0.1", imap.port("imap"), timeout=30)
        caps = list(plain.capabilities)
        try:
            plain.login("ivanov", PASSWORDS["ivanov"])
            refused = ""
        except imaplib.IMAP4.error as exc:
            refused = str(exc)
        plain.logout()
        ivanov = imap.login("ivanov")
        ivanov_list = _ok(ivanov.list())
        ivanov.logout()
        petrov = imap.login("petrov")
        petrov_list = _ok(petrov.list())
        petrov.logout()
        return caps, refused, ivanov_list, petrov_list

    caps, refused, ivanov_list, petrov_list = await run(go)
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps
    assert "disabled" in refused.lower()

    def names(listing: list[bytes]) -> set[str]:
        return {line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in listing}

    assert {"INBOX", "sales", "Tasks/Mail/sales@example.test", "Tasks/Personal/Ivanov",
            "Tasks/Mail/ivan@example.test"} <= names(ivanov_list)  # ivanov is the owner: he sees all tasks
    seen_by_petrov = names(petrov_list)
    assert {"INBOX", "sales", "Tasks/Personal/Petrov", "Tasks/Mail/sales@example.test"} <= seen_by_petrov
    assert "Tasks/Personal/Ivanov" not in seen_by_petrov and "Tasks/Mail/ivan@example.test" not in seen_by_petrov
    assert "petr" not in seen_by_petrov and "ivan" not in seen_by_petrov


async def test_a_task_a_rule_opened_is_a_folder_with_its_mail(imap: Imap) -> None:
    """A conversation (a task a new_task rule opened, as the intake does) is a folder for those
    who may see tasks, its title made safe for a folder name, its mail in it."""
    store = imap.store()
    project = store.add_project("Support")
    with store.transaction():
        task_id = store.open_conversation("support", "q@far.example", "client@far.example", project.id,
                                          "Order 5/6 late", None)
    store.close()
    await run(lambda: imap.deliver("sales@example.test", mail("order 5/6 late", extra="Message-ID: <q2@far>\r\n")))
    stored = imap.store()
    sales = stored.resolve_task("Mail/sales@example.test").id
    message = stored.list_comments(sales)[0].message_db_id
    with stored.transaction():
        stored.insert_comments(message, [CommentTarget(task_id, ("support",))])
    stored.close()

    def go() -> tuple[list[bytes], list[bytes]]:
        client = imap.login("petrov")
        listing = _ok(client.list('""', '"Tasks/Support/*"'))
        client.select('"Tasks/Support/Order 5&IhU-6 late"')  # (modified UTF-7 for "∕", U+2215)
        fetched = _ok(client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        client.logout()
        return listing, fetched

    listing, fetched = await run(go)
    assert [line.decode().rsplit(' "/" ', 1)[1] for line in listing] == ['"Tasks/Support/Order 5&IhU-6 late"']
    assert b"order 5/6 late" in fetched[0][1]


async def test_a_user_of_another_organisation_sees_only_its_own(imap: Imap) -> None:
    """Two organisations on one installation, the same project and task names: over IMAP each
    user sees, selects and appends to their own organisation's folders only."""
    from prostoy_mail.auth.password_hashes import hash_password

    store = imap.store()
    acme = store.add_organisation("acme", "Acme").id
    with store.acting_for(acme):
        store.add_user("boss", "Boss", hash_password("boss-pw"), True)
        store.add_project("Mail")
        store.add_task("Mail", "sales@example.test")  # a name main has too
    store.close()

    def go() -> tuple[set[str], set[str], str, str, str]:
        boss = imaplib.IMAP4("127.0.0.1", imap.port("imap"), timeout=30)
        boss.starttls(imap.context)
        boss.login("boss", "boss-pw")
        theirs = {line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in _ok(boss.list())}
        select = boss.select('"sales"')[0]
        appended = boss.append('"sales"', None, None, mail("sneaked in"))
        append = f"{appended[0]} {appended[1][0].decode()}"
        boss.logout()
        ivanov = imap.login("ivanov")  # main's owner: every task of main, none of acme's
        ours = {line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in _ok(ivanov.list())}
        ivanov.select("INBOX")
        copied = ivanov.copy("1", '"Tasks/Personal/Boss"')  # acme's folder, by its exact name
        copy = f"{copied[0]} {copied[1][0].decode()}"
        mine = ivanov.select('"Tasks/Mail/sales@example.test"')[0]
        ivanov.logout()
        return theirs, ours, select, append, mine, copy

    await run(lambda: imap.deliver("ivan@example.test", mail("for ivanov")))
    theirs, ours, select, append, mine, copy = await run(go)
    assert copy == "NO [TRYCREATE] No such mailbox"
    store = imap.store()
    with store.acting_for(acme):
        assert [c.subject for c in store.list_comments(store.resolve_task("Personal/Boss").id)] == []
    store.close()
    assert theirs >= {"Tasks/Mail/sales@example.test", "Tasks/Personal/Boss"}
    assert not {"sales", "ivan", "petr", "Tasks/Personal/Ivanov", "Tasks/Personal/Petrov"} & theirs
    assert (select, append, mine) == ("NO", "NO [TRYCREATE] No such mailbox", "OK")  # (was BAD: a str in Twisted)
    assert "Tasks/Personal/Boss" not in ours and "Tasks/Personal/Ivanov" in ours
    acme_task = [f for f in ours if f.startswith("Tasks/Mail/sales@example.test")]
    assert acme_task == ["Tasks/Mail/sales@example.test"]  # (one: main's own, no "#id" twin from acme)


async def test_bodystructure_of_8bit_headers_does_not_drop_the_connection(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    raw = ("From: Клиент <client@far.example>\r\nSubject: отчёт\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n"
           "Content-Type: text/plain; charset=utf-8; name=\"заметка.txt\"\r\n"
           "Content-Description: описание\r\n\r\nтекст\r\n--b1\r\n"
           "Content-Type: application/pdf; name=\"отчёт.pdf\"\r\n"
           "Content-Disposition: attachment; filename=\"отчёт.pdf\"\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b1--\r\n").encode()
    await run(lambda: imap.deliver("ivan@example.test", raw))

    def go() -> tuple[Any, Any, Any]:
        client = imap.login("ivanov")
        client.select("INBOX")
        structure = client.fetch("1", "(BODYSTRUCTURE)")
        part = client.fetch("1", "(BODY.PEEK[2.MIME] BODY.PEEK[1])")
        alive = client.noop()
        client.logout()
        return structure, part, alive

    structure, part, alive = await run(go)
    def flat(data: list[Any]) -> bytes:
        return b" ".join(b" ".join(d) if isinstance(d, tuple) else d for d in data if d)

    assert structure[0] == "OK" and b'("APPLICATION" "PDF"' in flat(structure[1]).upper(), structure
    assert part[0] == "OK" and "текст".encode() in flat(part[1]) and b"filename" in flat(part[1]), part
    assert alive[0] == "OK"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_what_real_clients_trip_over_gets_the_answer_rfc_3501_gives(
        imap: Imap, caplog: pytest.LogCaptureFixture) -> None:
    """LIST "" "" names the hierarchy delimiter; COPY to a folder that does not exist is
    NO [TRYCREATE]; a name that is not valid modified UTF-7 (or holds atom-specials) is a NO,
    never a BAD or a dropped connection; SELECT's FLAGS lists the keywords in use."""
    await run(lambda: imap.deliver("ivan@example.test", mail("labelled")))

    def go() -> dict[str, Any]:
        client = imap.login("ivanov")
        out: dict[str, Any] = {"delimiter": client.list('""', '""')}
        client.select("INBOX")
        out["keyword"] = client.store("1", "+FLAGS", "($Label1 Work)")
        out["copy"] = client.copy("1", '"No/Such/Folder"')
        out["bad_utf7"] = client.select('"Tasks/&Jjo"')
        out["specials"] = client.select('"a(b)c%*\\"')
        out["still_alive"] = client.noop()
        again = imap.login("ivanov")
        out["flags"] = again.select("INBOX")
        out["flags_line"] = again.untagged_responses.get("FLAGS")
        out["permanent"] = again.response("PERMANENTFLAGS")
        again.logout()
        client.logout()
        return out

    out = await run(go)
    assert out["delimiter"] == ("OK", [b'(\\Noselect) "/" ""'])
    assert out["keyword"][0] == "OK"
    assert out["copy"][0] == "NO" and b"[TRYCREATE]" in out["copy"][1][0]
    assert out["bad_utf7"][0] == "NO" and out["specials"][0] == "NO" and out["still_alive"][0] == "OK"
    flags = out["flags_line"][0].decode()
    assert "$Label1" in flags and "Work" in flags and "\\Seen" in flags, flags
    assert "$Label1" in out["permanent"][1][0].decode()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text  # nothing unhandled


async def test_list_wildcards_cost_linear_time_and_never_reach_twisteds_regexp(
        imap: Imap, monkeypatch: pytest.MonkeyPatch) -> None:
    """`LIST "" "*********z"` took 7 s of the event loop (10 stars: 48 s): a backtracking
    regular expression. Twisted's own wildcardToRegexp (GHSA-8pqf-f4m5-798g) must not be used."""
    from twisted.mail import imap4

    def forbidden(*args: Any) -> Any:
        raise AssertionError("twisted.mail.imap4.wildcardToRegexp reached")

    monkeypatch.setattr(imap4, "wildcardToRegexp", forbidden)

    def go() -> tuple[list[Any], list[Any], list[Any], float]:
        client = imap.login("ivanov")
        started = time.monotonic()
        hostile = _ok(client.list('""', '"' + "*" * 40 + 'z"'))
        hostile += _ok(client.list('""', '"' + "%*" * 2000 + 'z"'))
        elapsed = time.monotonic() - started
        tasks = _ok(client.list('""', '"Tasks/%/%"'))
        inbox = _ok(client.list('""', '"inBOX"'))
        client.logout()
        return hostile, tasks, inbox, elapsed

    hostile, tasks, inbox, elapsed = await run(go)
    assert all(h is None for h in hostile)  # imaplib: no untagged LIST line, just OK
    assert elapsed < 5  # the old matcher had not answered the first one after minutes
    assert any(b"Tasks/Personal/Ivanov" in line for line in tasks)
    assert all(line.rsplit(b" ", 1)[1].strip(b'"').count(b"/") == 2 for line in tasks)  # % stops at "/"
    assert inbox == [b'(\\HasNoChildren) "/" "INBOX"']


async def test_a_negative_literal_gets_bad_and_a_long_command_is_not_echoed(imap: Imap) -> None:
    reader, writer = await _raw_tls_session(imap)
    writer.write(b"a1 LOGIN {-5}\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 10)
    assert answer.startswith(b"a1 BAD"), answer  # not "+": no continuation for a negative size
    writer.write(b"a2 NOOP " + b"x" * 60000 + b"\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 10)
    assert answer.startswith(b"a2 BAD") and len(answer) < 300, answer[:100]
    writer.write(b"a3 NOOP\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"a3 OK")
    writer.close()


async def test_status_with_an_item_it_does_not_know_is_answered(imap: Imap) -> None:
    """`STATUS INBOX (MESSAGES HIGHESTMODSEQ)` got no reply at all: the client hung."""
    def go() -> tuple[str, list[Any]]:
        client = imap.login()
        try:
            client.status("INBOX", "(MESSAGES HIGHESTMODSEQ)")
            refused = ""
        except imaplib.IMAP4.error as exc:  # (imaplib raises for BAD)
            refused = str(exc)
        known = _ok(client.status("INBOX", "(MESSAGES UIDNEXT)"))
        client.logout()
        return refused, known

    refused, known = await run(go)
    assert "BAD" in refused and "unknown STATUS item HIGHESTMODSEQ" in refused, refused
    assert b"MESSAGES 0" in known[0] and b"UIDNEXT" in known[0]


def _nested(levels: int) -> bytes:
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(levels))
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    return (b"From: client@far.example\r\nSubject: nested %d\r\n" % levels + head
            + b"Content-Type: text/plain\r\n\r\ninnermost\r\n" + tail)


async def test_absurdly_nested_mail_is_served_without_dropping_the_client(imap: Imap) -> None:
    """2,000 nested multiparts raised RecursionError inside Twisted and closed the connection:
    that folder could be synced by no client. Deeper than 20 levels is served as one part."""
    for levels in (2000, 300, 3):
        await run(lambda levels=levels: imap.deliver("ivan@example.test", _nested(levels)))

    def go() -> list[Any]:
        client = imap.login()
        _ok(client.select("INBOX", readonly=True))
        got = [_ok(client.fetch("1:3", "(BODYSTRUCTURE)")), _ok(client.fetch("1:3", "(BODY.PEEK[1])")),
               _ok(client.fetch("2", "(BODY.PEEK[1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1])")),
               _ok(client.fetch("1:3", "(BODY.PEEK[])")), _ok(client.noop())]
        client.logout()
        return got

    structures, firsts, deep, whole, _ = await run(go)
    assert len([s for s in structures if isinstance(s, bytes)]) == 3
    assert b'"TEXT" "PLAIN"' in structures[2].upper()  # the shallow one keeps its structure
    assert len([f for f in firsts if isinstance(f, tuple)]) == 3
    assert len([w for w in whole if isinstance(w, tuple)]) == 3
    assert next(w[1] for w in whole if isinstance(w, tuple)) == _nested(2000)  # BODY[] is byte-exact
    assert deep


async def test_select_fetch_store_search_in_a_mailbox(imap: Imap) -> None:
    raw_8bit = b"From: client@far.example\r\nSubject: \xd1\x81\xd1\x87\xd1\x91\xd1\x82 7\r\n\r\nbody\r\n"
    await run(lambda: imap.deliver("ivan@example.test", mail("first")))
    await run(lambda: imap.deliver("ivan@example.test", raw_8bit))
    await run(lambda: imap.deliver("ivan@example.test", mail("Invoice", "x" * 100)))
    stored = imap.store()
    try:
        originals = [stored.raw_message(uid) for uid in stored.folder_uids("mailbox:ivan")]
    finally:
        stored.close()

    def go() -> dict[str, Any]:
        client = imap.login()
        data = _ok(client.select("INBOX"))
        out: dict[str, Any] = {"exists": data, "uidnext": client.response("UIDNEXT")[1],
                               "uidvalidity": client.response("UIDVALIDITY")[1],
                               "permanent": client.response("PERMANENTFLAGS")[1],
                               "unseen": client.response("UNSEEN")[1]}
        out["bodies"] = [item[1] for item in _ok(client.uid("FETCH", "1:*", "(BODY.PEEK[])"))
                         if isinstance(item, tuple)]
        out["subject"] = _ok(client.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        out["partial"] = _ok(client.fetch("3", "(BODY.PEEK[]<0.20>)"))
        _ok(client.store("1", "+FLAGS", "(\\Seen \\Flagged)"))
        out["search_unseen"] = _ok(client.search(None, "UNSEEN"))
        out["search_subject"] = _ok(client.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT", "СЧЁТ".encode()))
        out["search_or"] = _ok(client.search(None, "OR", "SUBJECT", "first", "LARGER", "90"))
        client.logout()
        again = imap.login()
        again.select("INBOX", readonly=True)
        out["flags_after_relogin"] = _ok(again.fetch("1", "(FLAGS)"))
        again.logout()
        return out

    out = await run(go)
    assert out["exists"] == [b"3"] and out["unseen"] == [b"1"] and int(out["uidvalidity"][0]) > 0
    assert b"\\Seen" in out["permanent"][0] and b"\\*" in out["permanent"][0]
    assert int(out["uidnext"][0]) > max(int(x) for x in [1])
    assert out["bodies"] == originals  # byte-exact
    subject = out["subject"][0][1]
    assert subject.isascii() and b"=?utf-8?" in subject.lower()  # the raw 8-bit value, RFC 2047-encoded
    meta, piece = out["partial"][0]
    assert b"BODY[]<0> {20}" in meta and piece == originals[2][:20]
    assert out["search_unseen"] == [b"2 3"]
    assert len(out["search_subject"][0].split()) == 1  # Unicode case folding on the decoded subject
    assert out["search_or"] == [b"1 3"]
    assert b"\\Seen" in out["flags_after_relogin"][0] and b"\\Flagged" in out["flags_after_relogin"][0]


async def test_idle_reports_new_mail_within_a_second(imap: Imap) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.port("imaps"), ssl=imap.context)

    async def command(line: bytes, until: bytes) -> bytes:
        writer.write(line + b"\r\n")
        await writer.drain()
        got = b""
        while until not in got:
            got += await asyncio.wait_for(reader.readline(), 10)
        return got

    await reader.readline()
    await command(b"a LOGIN ivanov ivanov-pw", b"a OK")
    await command(b"b SELECT INBOX", b"b OK")
    await command(b"c IDLE", b"+ ")
    started = loop.time()
    await run(lambda: imap.deliver("ivan@example.test", mail("while idling")))
    line = await asyncio.wait_for(reader.readline(), 5)
    latency = loop.time() - started
    assert re.match(rb"\* 1 EXISTS", line), line
    assert latency < 1.0, latency
    assert b"c OK" in await command(b"DONE", b"c OK")
    writer.close()


async def test_deleting_in_a_task_folder_deletes_the_comment(imap: Imap) -> None:
    await run(lambda: imap.deliver("sales@example.test", mail("keep")))
    await run(lambda: imap.deliver("sales@example.test", mail("delete me")))

    def go() -> list[bytes]:
        client = imap.login()
        _ok(client.select("Tasks/Mail/sales@example.test"))
        _ok(client.store("2", "+FLAGS", "(\\Deleted)"))
        expunged = _ok(client.expunge())
        client.logout()
        return expunged

    assert await run(go) == [b"2"]
    stored = imap.store()
    try:
        task = stored.resolve_task("Mail/sales@example.test")
        comments = stored.list_comments(task.id, include_deleted=True)
    finally:
        stored.close()
    assert [(c.subject, c.deleted_at is not None) for c in comments] == [("keep", False), ("delete me", True)]


async def test_a_user_of_another_organisation_deletes_in_its_own_task_folder(imap: Imap) -> None:
    """The daemon deletes the comment for the organisation whose task holds it (its writer
    works for every organisation's users, not only the file's)."""
    from prostoy_mail.auth.password_hashes import hash_password
    from prostoy_mail.store.ports import CommentTarget, MessageRecord

    store = imap.store()
    acme = store.add_organisation("acme", "Acme").id
    with store.acting_for(acme):
        store.add_user("boss", "Boss", hash_password("boss-pw"), True)
        store.add_project("Deals")
        task = store.add_task("Deals", "Big one").id
        for subject in ("keep", "delete me"):
            store.store_message(MessageRecord(raw=mail(subject), direction="in", source="smtp", subject=subject),
                                [CommentTarget(task, ("r",))])
    store.close()

    def go() -> list[bytes]:
        boss = imaplib.IMAP4("127.0.0.1", imap.port("imap"), timeout=30)
        boss.starttls(imap.context)
        boss.login("boss", "boss-pw")
        _ok(boss.select('"Tasks/Deals/Big one"'))
        _ok(boss.store("2", "+FLAGS", "(\\Deleted)"))
        expunged = _ok(boss.expunge())
        boss.logout()
        return expunged

    assert await run(go) == [b"2"]
    store = imap.store()
    try:
        with store.acting_for(acme):
            comments = store.list_comments(task, include_deleted=True)
    finally:
        store.close()
    assert [(c.subject, c.deleted_at is not None) for c in comments] == [("keep", False), ("delete me", True)]


async def _raw_tls_session(imap: Imap) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.port("imap"))
    await reader.readline()
    return reader, writer


async def test_commands_pipelined_behind_starttls_are_dropped(imap: Imap) -> None:
    reader, writer = await _raw_tls_session(imap)
    writer.write(b"a STARTTLS\r\nb LOGIN ivanov ivanov-pw\r\n")  # the injection, in one packet
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"a OK")
    await writer.start_tls(imap.context)
    writer.write(b"c CAPABILITY\r\n")
    await writer.drain()
    lines = []
    while not lines or not lines[-1].startswith(b"c "):
        lines.append(await asyncio.wait_for(reader.readline(), 10))
    assert not any(line.startswith(b"b ") for line in lines), lines  # LOGIN was never run
    writer.write(b"d SELECT INBOX\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"d BAD")  # still not logged in
    writer.close()


async def test_pipelining_after_login_keeps_order(imap: Imap) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.port("imaps"), ssl=imap.context)
    await reader.readline()
    writer.write(b"a LOGIN ivanov ivanov-pw\r\nb SELECT INBOX\r\nc NOOP\r\n")
    await writer.drain()
    tagged = []
    while len(tagged) < 3:
        line = await asyncio.wait_for(reader.readline(), 10)
        if line[:1] in b"abc" and line[1:2] == b" ":
            tagged.append(line.split(b" ", 2)[:2])
    assert tagged == [[b"a", b"OK"], [b"b", b"OK"], [b"c", b"OK"]]
    writer.close()


async def test_a_misbehaving_client_is_cut_off_and_others_go_on(imap: Imap) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.port("imaps"), ssl=imap.context)
    await reader.readline()
    writer.write(b"a LOGIN {100000000}\r\n")  # a 100 MB literal announced
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"* BYE")
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.port("imaps"), ssl=imap.context)
    await reader.readline()
    writer.write(b"x" * 70000 + b"\r\n")  # a line over the limit
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"* BYE")

    def other() -> list[Any]:
        client = imap.login()
        data = _ok(client.select("INBOX"))
        client.logout()
        return data

    assert await run(other) == [b"0"]


class _From127002(imaplib.IMAP4):
    """imaplib from another client address (127.0.0.2, also loopback)."""

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=("127.0.0.2", 0))


async def test_failed_logins_are_throttled_per_address(imap: Imap) -> None:
    def attack() -> list[str]:
        outcomes = []
        client = _From127002("127.0.0.1", imap.port("imap"), timeout=30)
        client.starttls(imap.context)
        for _ in range(7):
            try:
                client.login("ivanov", "guess")
                outcomes.append("ok")
            except imaplib.IMAP4.abort:
                outcomes.append("closed")
                break
            except imaplib.IMAP4.error as exc:
                outcomes.append(str(exc))
        return outcomes

    outcomes = await run(attack)  # [auth] max_failures = 5
    assert outcomes == ["b'LOGIN failed'"] * 4 + ["closed"], outcomes  # the 5th failure: BYE, disconnected

    def from_elsewhere() -> list[Any]:  # the user is not locked out: only that address is refused
        client = imaplib.IMAP4_SSL("localhost", imap.port("imaps"), ssl_context=imap.context, timeout=30)
        client.login("ivanov", PASSWORDS["ivanov"])
        data = _ok(client.select("INBOX"))
        client.logout()
        return data

    assert await run(from_elsewhere) == [b"0"]


async def test_mbsync_syncs_inbox_and_a_task_folder(imap: Imap, tmp_path: Path) -> None:
    if shutil.which("mbsync") is None:
        pytest.fail("mbsync is not installed (apt-get install isync)")
    for i in range(5):
        await run(lambda i=i: imap.deliver("ivan@example.test", mail(f"inbox {i}", f"text {i}")))
        await run(lambda i=i: imap.deliver("sales@example.test", mail(f"sales {i}", f"text {i}")))
    local = tmp_path / "maildir"
    local.mkdir()
    config = tmp_path / "mbsyncrc"
    ca_file = imap.path / "ca.pem"
    config.write_text(f"""
IMAPAccount crm
Host localhost
Port {imap.port("imaps")}
User ivanov
Pass ivanov-pw
SSLType IMAPS
CertificateFile {ca_file}

IMAPStore remote
Account crm

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel crm
Far :remote:
Near :local:
Patterns INBOX "Tasks/Mail/sales@example.test"
Create Near
Expunge Near
SyncState *
""")

    def sync() -> None:
        done = subprocess.run(["mbsync", "-c", str(config), "-a"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    def local_subjects(folder: str) -> list[str]:
        found = []
        for sub in ("cur", "new"):
            for path in sorted((local / folder / sub).glob("*")):
                match = re.search(rb"Subject: (.*)\r?\n", path.read_bytes())
                found.append(match[1].decode() if match else "")
        return sorted(found)

    def on_server(folder: str) -> list[bytes]:
        stored = imap.store()
        try:
            # as a Maildir keeps it: LF line ends
            return sorted(stored.raw_message(i.message_db_id).replace(b"\r\n", b"\n")
                          for i in stored.folder_items(folder))
        finally:
            stored.close()

    def local_raw(folder: str) -> list[bytes]:  # without the X-TUID header mbsync adds while it works
        return sorted(re.sub(rb"(?m)^X-TUID: .*\n", b"", p.read_bytes())
                      for sub in ("cur", "new") for p in (local / folder / sub).glob("*"))

    await run(sync)
    assert local_subjects("INBOX") == [f"inbox {i}" for i in range(5)]
    assert local_raw("INBOX") == on_server("mailbox:ivan")  # message by message, byte-exact
    task_dir = "Tasks/Mail/sales@example.test"
    assert local_subjects(task_dir) == [f"sales {i}" for i in range(5)]
    stored = imap.store()
    task_id = stored.resolve_task("Mail/sales@example.test").id
    stored.close()
    assert local_raw(task_dir) == on_server(f"task:{task_id}")

    # new mail, and a deletion in the CRM: the next sync brings the one and removes the other
    await run(lambda: imap.deliver("ivan@example.test", mail("inbox 5")))
    stored = imap.store()
    first = stored.list_comments(task_id)[0]
    stored.close()
    code = subprocess.run([str(Path(__import__("sys").executable).parent / "prostoy-mail"), "--config",
                           str(imap.path / "prostoy-mail.toml"), "comment", "delete", str(first.id)],
                          capture_output=True, text=True, timeout=60)
    assert code.returncode == 0, code.stderr
    await run(sync)
    assert local_subjects("INBOX") == [f"inbox {i}" for i in range(6)]
    assert local_subjects(task_dir) == [f"sales {i}" for i in range(1, 5)]
    assert local_raw(task_dir) == on_server(f"task:{task_id}")


async def test_a_flood_of_commands_is_slowed_for_that_client_only(imap: Imap) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.port("imaps"), ssl=imap.context)
    await reader.readline()
    started = loop.time()
    writer.write(b"".join(b"n%d NOOP\r\n" % i for i in range(3500)))  # 1,000 commands a second
    await writer.drain()

    answered = [0]

    async def answers() -> float:
        while answered[0] < 3500:
            line = await asyncio.wait_for(reader.readline(), 10)
            assert line, "disconnected"
            answered[0] += line.startswith(b"n")
        return loop.time() - started

    flood = asyncio.create_task(answers())
    await until(lambda: answered[0] >= 500)  # the flood is being answered (and soon slowed)
    other_started = loop.time()

    def other() -> None:
        client = imap.login()
        client.noop()
        client.logout()

    await run(other)
    other_took = loop.time() - other_started
    took = await flood
    assert took >= 2.0, took  # 3,500 commands: at least three pauses, the last two of a whole second
    assert other_took < took, (other_took, took)  # the other client was not held up by the flood
    writer.close()


async def test_copy_into_a_task_files_the_mail_there(imap: Imap) -> None:
    await run(lambda: imap.deliver("ivan@example.test", mail("file me")))
    stored = imap.store()
    stored.add_project("Deals")
    stored.add_task("Deals", "Big one")
    stored.close()

    def go() -> tuple[list[Any], list[Any]]:
        client = imap.login()
        _ok(client.select("INBOX"))
        _ok(client.copy("1", '"Tasks/Deals/Big one"'))
        _ok(client.select('"Tasks/Deals/Big one"'))
        fetched = _ok(client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
        client.logout()
        return fetched, []

    fetched, _ = await run(go)
    assert b"Subject: file me" in fetched[0][1]
    stored = imap.store()
    try:
        (comment,) = stored.list_comments(stored.resolve_task("Deals/Big one").id)
    finally:
        stored.close()
    assert (comment.subject, comment.routed_by) == ("file me", ("copy",))


async def test_authenticate_plain_on_imaps_and_fetch_without_nagle_stalls(imap: Imap) -> None:
    for i in range(3):
        await run(lambda i=i: imap.deliver("ivan@example.test", mail(f"n{i}", "z" * 3000)))

    def go() -> float:
        client = imaplib.IMAP4_SSL("localhost", imap.port("imaps"), ssl_context=imap.context, timeout=30)
        assert "AUTH=PLAIN" in client.capabilities
        _ok(client.authenticate("PLAIN", lambda _: b"\0ivanov\0" + PASSWORDS["ivanov"].encode()))
        _ok(client.select("INBOX"))
        started = time.perf_counter()
        for _ in range(100):  # one FETCH with a body at a time: each would wait ~40 ms with Nagle on
            _ok(client.uid("FETCH", "1:*", "(BODY.PEEK[])"))
        took = time.perf_counter() - started
        client.logout()
        return took

    took = await run(go)
    assert took < 2.0, took  # with Nagle's delay and delayed ACKs: 100 x ~40 ms = 4 s and more


async def test_a_clean_stop_says_bye_to_connected_clients(imap: Imap) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", imap.port("imaps"), ssl=imap.context)
    await reader.readline()
    writer.write(b"a LOGIN ivanov ivanov-pw\r\nb SELECT INBOX\r\n")
    await writer.drain()
    while not (await asyncio.wait_for(reader.readline(), 10)).startswith(b"b OK"):
        pass
    await imap.daemon.stop()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"* BYE")
    writer.close()


async def test_sent_shows_what_was_submitted_and_takes_the_clients_copy_once(imap: Imap) -> None:
    sent = (b"From: Ivan <ivan@example.test>\r\nTo: client@far.example\r\nSubject: my offer\r\n"
            b"Message-ID: <offer-1@ivanov.pc>\r\n\r\nprice: 100\r\n")

    def submit() -> None:
        with smtplib.SMTP("127.0.0.1", imap.port("submission"), timeout=30) as client:
            client.starttls(context=imap.context)
            client.login("ivanov", PASSWORDS["ivanov"])
            client.sendmail("ivan@example.test", ["client@far.example"], sent)

    await run(submit)

    def go() -> dict[str, Any]:
        client = imap.login()
        out: dict[str, Any] = {"list": _ok(client.list('""', "Sent"))}
        out["select"] = _ok(client.select("Sent"))
        out["body"] = _ok(client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)])"))[0][1]
        out["append_copy"] = client.append("Sent", "(\\Seen)", None, sent)  # what Thunderbird does after sending
        out["after"] = _ok(client.select("Sent"))
        out["flags"] = _ok(client.fetch("1", "(FLAGS)"))
        out["append_other"] = client.append("Sent", None, None, b"Subject: not sent here\r\n\r\nx\r\n")
        out["append_inbox"] = client.append("INBOX", None, None, sent)
        _ok(client.store("1", "+FLAGS", "(\\Deleted)"))
        _ok(client.expunge())
        out["after_expunge"] = _ok(client.select("Sent"))
        client.logout()
        petrov = imap.login("petrov")
        out["petrov"] = _ok(petrov.select("Sent"))
        petrov.logout()
        return out

    out = await run(go)
    assert b"\\Sent" in out["list"][0]  # RFC 6154: clients find it by itself
    assert set(out["select"]) == {b"1"} and b"Subject: my offer" in out["body"]
    assert out["append_copy"][0] == "OK" and set(out["after"]) == {b"1"}  # the copy is the same message: once
    assert b"\\Seen" in out["flags"][0]
    assert out["append_other"][0] == "NO" and out["append_inbox"][0] == "NO"
    assert out["after_expunge"][-1] == b"0" and out["petrov"] == [b"0"]
    stored = imap.store()
    try:  # expunging from Sent hides it from this user's Sent only: the task keeps its comment
        (comment,) = [c for c in stored.list_comments(stored.resolve_task("Personal/Ivanov").id)
                      if c.direction == "out"]
    finally:
        stored.close()
    assert comment.subject == "my offer"


async def test_a_reload_that_changes_smtp_leaves_the_imap_listeners_alone(imap: Imap) -> None:
    """[smtp] changes reopened the IMAP listeners too, which failed (Twisted's CannotListenError,
    not an OSError) and stopped the reload halfway."""
    before = {name: imap.daemon.listeners.open[name] for name in ("imap", "imaps", "smtp")}
    client = await run(lambda: imap.login(implicit=True))
    config = imap.path / "prostoy-mail.toml"
    config.write_text(config.read_text() + "\n[smtp]\nmax_recipients = 7\n")
    await imap.daemon.reload()
    running = imap.daemon.listeners.open
    assert running["imap"] is before["imap"] and running["imaps"] is before["imaps"]
    assert running["smtp"] is not before["smtp"]  # (its limits changed)
    assert imap.daemon.config.smtp.max_recipients == 7
    assert _ok(await run(client.noop))  # the session opened before goes on
    await run(client.logout)
    assert imap.daemon.generation == 2


async def test_connection_limits_are_the_configurations(tmp_path: Path) -> None:
    """[imap] max_connections_per_ip, then max_connections: one more is told BYE, saying which."""
    ca = trustme.CA()
    write_server_pair(ca, tmp_path, "localhost", "127.0.0.1", common_name="localhost")
    (tmp_path / "prostoy-mail.toml").write_text(config_text(
        listen={"imap": LOOPBACK_ANY_PORT}, tls={"cert": "cert.pem", "key": "key.pem"},
        imap={"max_connections": 4, "max_connections_per_ip": 3}))
    daemon = Daemon(load_config(tmp_path / "prostoy-mail.toml"))
    await daemon.start()
    port = daemon.bound_port("imap")
    held = []

    async def greeting(source: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        held.append(writer)
        return await asyncio.wait_for(reader.readline(), 10)

    try:
        assert [(await greeting("127.0.0.1"))[:4] for _ in range(3)] == [b"* OK"] * 3
        assert await greeting("127.0.0.1") == b"* BYE Too many connections from your address\r\n"
        assert (await greeting("127.0.0.2")).startswith(b"* OK")  # (another address: the 4th)
        assert (await greeting("127.0.0.3")).startswith(b"* BYE Too many connections (the server's limit)")
    finally:
        for writer in held:
            writer.close()
        await daemon.stop()
