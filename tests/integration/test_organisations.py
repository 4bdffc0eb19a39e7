"""Two organisations on one daemon, over real sockets: each one's mailboxes, rules, tasks and
replies its own (SMTP, IMAP, the command line's --org made live without a signal)."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from prostoy_mail.auth.password_hashes import hash_password
from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import LOOPBACK_ANY_PORT, config_text
from tests.conftest import Cli
from tests.integration.conftest import MailServer
from tests.tls_files import write_server_pair
from tests.waiting import until

ACME_RULES = [{"name": "invoices", "subject": "invoice", "action": "comment", "task": "Sales/Invoices"}]


def setup(store: SqliteStore) -> None:
    """main (the file's) and acme (the store's): the same project, task and rule names."""
    store.add_user("ivanov", "Иван", hash_password("iv-pw"), is_owner=True)
    store.add_project("Sales")
    store.add_task("Sales", "Invoices")
    acme = store.add_organisation("acme", "Acme").id
    with store.acting_for(acme):
        store.add_user("boss", "Boss", hash_password("boss-pw"), is_owner=True)
        store.add_project("Sales")
        store.add_task("Sales", "Invoices")
    store.replace_org_entries(acme, {"mailboxes": [{"login": "support"}, {"login": "desk"}], "rules": ACME_RULES})


def comments(server: Any, org: str, task: str) -> list[tuple[str, tuple[str, ...]]]:
    store = SqliteStore(server.store_path)
    try:
        store.org_id = store.organisation(org).id
        return [(c.subject, c.routed_by) for c in store.list_comments(store.resolve_task(task).id)]
    finally:
        store.close()


def message(subject: str, to: str, extra: str = "") -> bytes:
    return f"From: buh@client.ru\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\nbody\r\n".encode()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[MailServer]:
    write_server_pair(trustme.CA(), tmp_path, "localhost", "127.0.0.1")
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(
        listen={"smtp": LOOPBACK_ANY_PORT, "imap": LOOPBACK_ANY_PORT, "submission": LOOPBACK_ANY_PORT},
        smtp={"workers": 0}, relay={"host": "127.0.0.1", "port": 9, "security": "none"},
        tls={"cert": "cert.pem", "key": "key.pem"}, mailboxes=["sales"],
        rules=[{"name": "invoices", "subject": "invoice", "action": "comment", "task": "Sales/Invoices"}]))
    store = SqliteStore(tmp_path / "store.db")
    setup(store)
    store.close()
    daemon = Daemon(load_config(config))
    await daemon.start()
    try:
        yield MailServer(daemon, config, tmp_path / "store.db")
    finally:
        await daemon.stop()


async def test_each_organisation_routes_its_own_mail(server: MailServer) -> None:
    # one SMTP transaction for a mailbox of each: stored once, routed by each one's own rules
    assert await server.send("buh@client.ru", ["sales@example.test", "support@example.test"],
                             message("invoice 5", "sales@example.test, support@example.test")) == {}
    assert comments(server, "main", "Sales/Invoices") == [("invoice 5", ("invoices",))]
    assert comments(server, "acme", "Sales/Invoices") == [("invoice 5", ("invoices",))]
    assert server.count("messages") == 1
    # mail for acme's mailbox alone: acme's fallback; nothing of main's is touched
    await server.send("x@client.ru", ["support@example.test"], message("hello", "support@example.test"))
    assert comments(server, "acme", "Mail/support@example.test") == [("hello", ("fallback",))]
    assert [s for s, _ in comments(server, "main", "Sales/Invoices")] == ["invoice 5"]
    # a reply naming a message main's task sent: a reply for main, new mail for acme
    store = SqliteStore(server.store_path)
    store.register_sent("offer1@example.test", store.resolve_task("Sales/Invoices").id)
    store.close()
    reply = "In-Reply-To: <offer1@example.test>\r\n"
    await server.send("x@client.ru", ["support@example.test"], message("re: offer", "support@example.test", reply))
    assert comments(server, "acme", "Mail/support@example.test")[-1] == ("re: offer", ("fallback",))
    assert [s for s, _ in comments(server, "main", "Sales/Invoices")] == ["invoice 5"]
    await server.send("x@client.ru", ["sales@example.test"], message("re: offer", "sales@example.test", reply))
    assert comments(server, "main", "Sales/Invoices")[-1] == ("re: offer", ("reply",))

    # over IMAP each sees its own mailboxes
    def folders(login: str, password: str) -> set[str]:
        client = imaplib.IMAP4("127.0.0.1", server.daemon.bound_port("imap"), timeout=30)
        client.starttls(ssl._create_unverified_context())
        client.login(login, password)
        names = {line.decode().rsplit(' "/" ', 1)[1].strip('"') for line in client.list()[1]}
        client.logout()
        return names

    boss, ivanov = await asyncio.to_thread(folders, "boss", "boss-pw"), await asyncio.to_thread(folders, "ivanov",
                                                                                                  "iv-pw")
    assert "support" in boss and "sales" not in boss and "Tasks/Mail/support@example.test" in boss
    assert "sales" in ivanov and "support" not in ivanov and "Tasks/Mail/support@example.test" not in ivanov

    # a change for acme from the command line is live when the command returns (no signal)
    added = await asyncio.to_thread(Cli(server.config_path), "--org", "acme", "mailbox", "add", "orders")
    assert "applied the change" in added.err, added
    await server.send("x@client.ru", ["orders@example.test"], message("new order", "orders@example.test"))
    assert comments(server, "acme", "Mail/orders@example.test") == [("new order", ("fallback",))]
    # ... and what acme cannot have is refused there, naming it; the daemon runs on as before
    taken = await asyncio.to_thread(Cli(server.config_path), "--org", "acme", "mailbox", "add", "sales", ok=False)
    assert taken.code == 2 and "sales@example.test belongs to another organisation" in taken.err
    await until(lambda: server.daemon.running.smtp.mailboxes >= {"sales", "support", "orders"})


async def test_each_organisations_users_send_as_its_own_addresses_only(server: MailServer) -> None:
    def submit(login: str, password: str, mail_from: str, rcpt: str) -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", server.daemon.bound_port("submission"), timeout=30) as client:
            client.starttls(context=ssl._create_unverified_context())
            client.login(login, password)
            code, reply = client.mail(mail_from)
            if code != 250:
                return code, reply
            client.rcpt(rcpt)
            return client.data(f"From: {mail_from}\r\nTo: {rcpt}\r\nSubject: internal\r\n\r\nhi\r\n".encode())

    sent = await asyncio.to_thread(submit, "boss", "boss-pw", "support@example.test", "desk@example.test")
    assert sent[0] == 250, sent
    # delivered here, to acme's other mailbox, and routed by acme (the spool's next pass)
    await until(lambda: comments(server, "acme", "Mail/desk@example.test") == [("internal", ("fallback",))])
    # a corporate mailbox with no users list is every user's: of its own organisation only
    assert (await asyncio.to_thread(submit, "boss", "boss-pw", "sales@example.test", "desk@example.test"))[0] == 553
    assert (await asyncio.to_thread(submit, "ivanov", "iv-pw", "support@example.test", "sales@example.test"))[0] == 553
    assert (await asyncio.to_thread(submit, "ivanov", "iv-pw", "sales@example.test", "sales@example.test"))[0] == 250


async def test_an_organisations_own_domain(server: MailServer) -> None:
    cli = Cli(server.config_path)
    added = await asyncio.to_thread(cli, "--org", "acme", "domain", "add", "Acme.Example")
    assert "applied the change" in added.err, added
    added = await asyncio.to_thread(cli, "--org", "acme", "mailbox", "add", "Sales@acme.example")
    assert added.out.startswith("mailbox sales@acme.example added") and "applied the change" in added.err, added
    # another organisation cannot put a mailbox on it; nor can a mailbox name a domain no one added
    for org in ("main", "acme"):
        refused = await asyncio.to_thread(cli, "--org", org, "mailbox", "add", "info@beta.example", ok=False)
        assert refused.code == 2 and "beta.example is not a domain of this organisation" in refused.err, refused
    refused = await asyncio.to_thread(cli, "mailbox", "add", "info@acme.example", ok=False)
    assert refused.code == 2 and "acme.example is not a domain of this organisation" in refused.err, refused

    # the MX takes mail for the shared domain and every organisation's own domains, nothing else
    assert await server.send("x@client.ru", ["sales@acme.example", "nobody@acme.example", "sales@acme.example.org",
                                             "sales@example.test"],
                             message("to acme's own domain", "sales@acme.example")) == {
        "nobody@acme.example": (550, b"5.1.1 <nobody@acme.example>: no such mailbox here"),
        "sales@acme.example.org": (554, b"5.7.1 <sales@acme.example.org>: relay access denied")}
    assert comments(server, "acme", "Mail/sales@acme.example") == [("to acme's own domain", ("fallback",))]
    assert [s for s, _ in comments(server, "main", "Mail/sales@example.test")] == ["to acme's own domain"]

    # acme's user sends as it: the reply address is on the own domain, and a reply comes back
    def submit() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", server.daemon.bound_port("submission"), timeout=30) as client:
            client.starttls(context=ssl._create_unverified_context())
            client.login("boss", "boss-pw")
            return client.sendmail("sales@acme.example", ["desk@example.test"],
                                   b"From: sales@acme.example\r\nTo: desk@example.test\r\nSubject: offer\r\n\r\nhi\r\n"
                                   ) or (250, b"")

    assert (await asyncio.to_thread(submit))[0] == 250
    await until(lambda: comments(server, "acme", "Mail/desk@example.test") == [("offer", ("fallback",))])
    store = SqliteStore(server.store_path)
    try:
        store.org_id = store.organisation("acme").id
        [offer] = store.list_comments(store.resolve_task("Mail/desk@example.test").id)
        reply_to = next(line for line in store.raw_message(offer.message_db_id).decode().splitlines()
                        if line.startswith("Reply-To:"))
    finally:
        store.close()
    reply_address = reply_to.split("<", 1)[1].rstrip(">")
    assert reply_address.startswith("sales+t") and reply_address.endswith("@acme.example"), reply_to
    assert await server.send("x@client.ru", [reply_address], message("re: offer", reply_address)) == {}
    assert comments(server, "acme", "Mail/sales@acme.example")[-1] == ("re: offer", ("reply",))
    # the domain cannot go while a mailbox is on it
    kept = await asyncio.to_thread(cli, "--org", "acme", "domain", "remove", "acme.example", ok=False)
    assert kept.code == 1 and "still has mailboxes (sales@acme.example)" in kept.err, kept
