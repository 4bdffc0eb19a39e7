"""SMTP submission end to end over real sockets: a mail client (smtplib) logs in over TLS and
sends; the spool delivers to a real SMTP peer (aiosmtpd with TLS and AUTH) standing in for the
gateway's external server and for the relay."""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.store.ports import Comment, OutboundEntry
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import LOOPBACK_ANY_PORT, config_text
from tests.conftest import Cli
from tests.dovecot import Dovecot
from tests.smtp_peer import SmtpPeer
from tests.tls_files import write_server_pair
from tests.users import HASHES, PASSWORDS
from tests.waiting import until


@dataclass
class Setup:
    daemon: Daemon
    store_path: Path
    client_context: ssl.SSLContext
    gateway_peer: SmtpPeer
    relay_peer: SmtpPeer

    def port(self, name: str) -> int:
        return self.daemon.bound_port(name)

    def with_store(self, fn: Callable[[SqliteStore], Any]) -> Any:
        store = SqliteStore(self.store_path)
        try:
            return fn(store)
        finally:
            store.close()

    def comments(self, task: str) -> list[Comment]:
        return self.with_store(lambda s: s.list_comments(s.resolve_task(task).id))

    def entry(self, entry_id: int) -> OutboundEntry:
        return self.with_store(lambda s: s.get_outbound(entry_id))

    def client(self, *, login: str | None = "ivanov", source: str = "127.0.0.1") -> smtplib.SMTP:
        """A mail client on the submission port, after STARTTLS (and AUTH unless login is None)."""
        client = smtplib.SMTP("127.0.0.1", self.port("submission"), timeout=30, source_address=(source, 0))
        client.starttls(context=self.client_context)
        client.ehlo()
        if login is not None:
            client.login(login, PASSWORDS[login])
        return client

    async def submit(self, mail_from: str, rcpts: list[str], data: bytes, login: str = "ivanov") -> str:
        def go() -> str:
            with self.client(login=login) as client:
                client.mail(mail_from)
                for rcpt in rcpts:
                    code, reply = client.rcpt(rcpt)
                    assert code == 250, (code, reply)
                code, reply = client.data(data)
                assert code == 250, (code, reply)
                return reply.decode()
        return await asyncio.to_thread(go)


def message(sender: str, to: str, subject: str, extra: str = "") -> bytes:
    return (f"From: Ivan <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}\r\nHello,\r\nbody\r\n").encode()


def queue_id(reply: str) -> int:
    return int(reply.rsplit(" ", 1)[1])


@pytest.fixture
async def outbound(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[Daemon, SmtpPeer, SmtpPeer]] = []

    async def start(*, outbound: Mapping[str, Any] | None = None, relay_security: str = "starttls",
                    peer_security: str | None = None, relay_ca: str = "ca.pem", extra: str = "",
                    gateway_options: Mapping[str, Any] | None = None, extra_ca: Path | None = None,
                    prepare: Callable[[SqliteStore], None] | None = None) -> Setup:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        if extra_ca is not None:  # one bundle for a server whose IMAP and SMTP have different CAs
            with open(tmp_path / "ca.pem", "ab") as bundle:
                bundle.write(extra_ca.read_bytes())
        write_server_pair(ca, tmp_path, "localhost", "127.0.0.1")
        gateway_peer = await SmtpPeer(ca, "starttls", {"support@peer.test": "gw-pw",
                                                        "ivanov@peer.test": "iv-pw"}).start()
        relay_peer = await SmtpPeer(ca, peer_security or relay_security, {"relay-user": "relay-pw"}).start()
        outbound_options = {"retry_initial": 0.3, "retry_max": 1, "poll_interval": 0.5, **(outbound or {})}
        text = config_text(
            listen={"smtp": LOOPBACK_ANY_PORT, "submission": LOOPBACK_ANY_PORT, "submissions": LOOPBACK_ANY_PORT},
            tls={"cert": "cert.pem", "key": "key.pem"},
            auth={"delay_after": 3, "max_delay": 0.2, "max_failures": 6, "block_time": 60},
            outbound=outbound_options,
            relay={"host": "127.0.0.1", "port": relay_peer.port, "security": relay_security, "login": "relay-user",
                   "password": "relay-pw", "ca_file": relay_ca},
            servers=[{"name": "peer.test", "smtp": f"127.0.0.1:{gateway_peer.port}", "security": "starttls",
                      "ca_file": "ca.pem"}],
            mailboxes=["sales", {"login": "ivan", "owner": "ivanov"}, {"login": "petr", "owner": "petrov"}],
            gateways=[{"email": "support@peer.test", "server": "peer.test", "login": "support@peer.test",
                       "password": "gw-pw", "forwarding": False, **(gateway_options or {})},
                      {"email": "ivanov@peer.test", "server": "peer.test", "login": "ivanov@peer.test",
                       "password": "iv-pw", "personal_for": "ivanov", "forwarding": False}])
        (tmp_path / "prostoy-mail.toml").write_text(text + extra.replace("GATEWAY_PEER_PORT", str(gateway_peer.port)))
        store = SqliteStore(tmp_path / "store.db")
        for login, password_hash in HASHES.items():
            store.add_user(login, login.title(), password_hash, login == "ivanov")
        if prepare is not None:
            prepare(store)
        store.close()
        daemon = Daemon(load_config(tmp_path / "prostoy-mail.toml"))
        await daemon.start()
        started.append((daemon, gateway_peer, relay_peer))
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        return Setup(daemon, tmp_path / "store.db", context, gateway_peer, relay_peer)

    yield start
    for daemon, *peers in started:
        await daemon.stop()
        for peer in peers:
            await peer.stop()


async def test_a_client_sends_through_a_gateway_with_its_smtp_login(outbound: Any) -> None:
    setup: Setup = await outbound()
    reply = await setup.submit("support@peer.test", ["client@far.example"],
                               message("support@peer.test", "client@far.example", "Offer"))
    assert reply.startswith("2.0.0 Ok: queued as")
    (got,) = await setup.gateway_peer.wait_for(1)
    assert got.login == "support@peer.test"  # the gateway's SMTP credentials
    assert got.mail_from == "support@peer.test" and got.rcpt_tos == ["client@far.example"]
    assert b"Subject: Offer" in got.raw and b"Message-ID: <pm." in got.raw  # none given: a signed one
    entry = await until(lambda: (e := setup.entry(queue_id(reply))).state == "sent" and e)
    assert entry.recipients[0].reply and entry.recipients[0].reply.startswith("250")
    (comment,) = setup.comments("Mail/support@peer.test")
    assert comment.direction == "out" and comment.subject == "Offer" and comment.routed_by == ("fallback",)
    assert comment.message_id is not None
    assert setup.with_store(lambda s: s.task_of_sent([comment.message_id])) == comment.task_id
    assert setup.relay_peer.received == []


async def test_the_connection_to_the_next_server_is_reused(outbound: Any) -> None:
    setup: Setup = await outbound()
    for i in range(5):
        await setup.submit("support@peer.test", ["client@far.example"],
                           message("support@peer.test", "client@far.example", f"n{i}"))
    await setup.gateway_peer.wait_for(5)
    assert setup.gateway_peer.connections == 1


async def test_a_personal_domain_mailbox_goes_through_the_relay_with_a_signed_reply_address(outbound: Any) -> None:
    setup: Setup = await outbound()
    await setup.submit("ivan@example.test", ["client@far.example"],
                       message("ivan@example.test", "client@far.example", "From my mailbox",
                               "Message-ID: <client-made@ivanov.pc>\r\n"))
    (got,) = await setup.relay_peer.wait_for(1)
    assert got.login == "relay-user"
    assert got.mail_from.startswith("ivan+t") and got.mail_from.endswith("@example.test")
    assert f"Reply-To: <{got.mail_from}>".encode() in got.raw
    assert b"Message-ID: <client-made@ivanov.pc>" in got.raw  # the client's own id is kept ...
    (comment,) = setup.comments("Personal/Ivanov")  # a personal mailbox's task: the owner's personal one
    assert comment.direction == "out"
    # ... and on record: a reply naming it comes back to this task, over inbound SMTP
    reply = (b"From: client@far.example\r\nTo: ivan@example.test\r\nSubject: Re: From my mailbox\r\n"
             b"In-Reply-To: <client-made@ivanov.pc>\r\n\r\nthanks\r\n")
    await asyncio.to_thread(_send_inbound, setup.port("smtp"), "client@far.example", ["ivan@example.test"], reply)
    comments = setup.comments("Personal/Ivanov")
    assert [c.direction for c in comments] == ["out", "in"] and comments[1].routed_by == ("reply",)
    # a reply to the signed reply address (no In-Reply-To) lands there too
    bare = b"From: client@far.example\r\nTo: x\r\nSubject: answer\r\n\r\nhi\r\n"
    await asyncio.to_thread(_send_inbound, setup.port("smtp"), "client@far.example", [got.mail_from], bare)
    assert [c.routed_by for c in setup.comments("Personal/Ivanov")][-1] == ("reply",)


def _send_inbound(port: int, sender: str, rcpts: list[str], data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, rcpts, data)


async def test_mail_for_our_own_mailboxes_is_delivered_here(outbound: Any) -> None:
    setup: Setup = await outbound()
    await setup.submit("sales@example.test", ["petr@example.test", "client@far.example"],
                       message("sales@example.test", "petr@example.test, client@far.example", "Internal"))
    await setup.relay_peer.wait_for(1)
    assert setup.relay_peer.received[0].rcpt_tos == ["client@far.example"]  # only the outside one
    petrov = await until(lambda: [c for c in setup.comments("Personal/Petrov") if c.direction == "in"])
    assert petrov[0].subject == "Internal"


async def test_bcc_is_not_sent_and_bare_line_ends_leave_as_crlf(outbound: Any) -> None:
    setup: Setup = await outbound()
    data = b"From: support@peer.test\nTo: a@far.example\nBcc: secret@far.example\nSubject: lf\n\nline1\nline2\n"
    await setup.submit("support@peer.test", ["a@far.example", "secret@far.example"], data)
    (got,) = await setup.gateway_peer.wait_for(1)
    assert b"Bcc" not in got.raw and b"secret@" not in got.raw
    assert got.raw.count(b"\n") == got.raw.count(b"\r\n") and b"line1\r\nline2" in got.raw
    assert sorted(got.rcpt_tos) == ["a@far.example", "secret@far.example"]


async def test_implicit_tls_port_logs_in_and_sends(outbound: Any) -> None:
    setup: Setup = await outbound()

    def go() -> None:
        with smtplib.SMTP_SSL("127.0.0.1", setup.port("submissions"), context=setup.client_context,
                              timeout=30) as client:
            client.ehlo()
            assert client.has_extn("auth") and not client.has_extn("starttls")
            client.login("ivanov", PASSWORDS["ivanov"])
            client.sendmail("ivanov@peer.test", ["x@far.example"],
                            message("ivanov@peer.test", "x@far.example", "via 465"))

    await asyncio.to_thread(go)
    (got,) = await setup.gateway_peer.wait_for(1)
    assert got.login == "ivanov@peer.test"


async def test_no_auth_without_tls_and_no_mail_without_auth(outbound: Any) -> None:
    setup: Setup = await outbound()

    def go() -> tuple[bool, tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", setup.port("submission"), timeout=30) as plain:
            plain.ehlo()
            offered_auth = plain.has_extn("auth")
            before_tls = plain.docmd("AUTH", "PLAIN AGl2YW5vdgBpdmFub3YtcHc=")
        with setup.client(login=None) as client:
            without_auth = client.mail("ivanov@peer.test")
        return offered_auth, before_tls, without_auth

    offered_auth, before_tls, without_auth = await asyncio.to_thread(go)
    assert not offered_auth
    assert before_tls[0] == 530  # STARTTLS first
    assert without_auth[0] == 530 and b"5.7.0" in without_auth[1]


async def test_a_wrong_password_and_an_unknown_user_get_the_same_535(outbound: Any) -> None:
    setup: Setup = await outbound()

    def attempt(login: str, password: str, mechanism: str) -> tuple[int, bytes]:
        with setup.client(login=None) as client:
            client.ehlo()
            try:
                client.login(login, password) if mechanism == "any" else None
                if mechanism != "any":
                    client.user, client.password = login, password
                    return client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code, exc.smtp_error
        return 235, b""

    for mechanism in ("PLAIN", "LOGIN"):
        wrong = await asyncio.to_thread(attempt, "ivanov", "nope", mechanism)
        unknown = await asyncio.to_thread(attempt, "nobody", "nope", mechanism)
        assert wrong == unknown == (535, b"5.7.8 Authentication credentials invalid")
    ok = await asyncio.to_thread(attempt, "ivanov", PASSWORDS["ivanov"], "PLAIN")
    assert ok[0] == 235


@pytest.mark.slow
async def test_brute_force_is_slowed_then_cut_for_that_address_only(outbound: Any) -> None:
    setup: Setup = await outbound()

    def attack() -> list[tuple[int, float]]:
        results = []
        with setup.client(login=None, source="127.0.0.2") as client:
            client.ehlo()
            client.user, client.password = "ivanov", "guess"
            for _ in range(8):
                started = time.monotonic()
                try:  # one AUTH PLAIN per try (smtplib's login() would also try LOGIN: two failures)
                    client.auth("PLAIN", client.auth_plain)
                except smtplib.SMTPAuthenticationError as exc:
                    results.append((exc.smtp_code, time.monotonic() - started))
                except smtplib.SMTPServerDisconnected:
                    results.append((0, time.monotonic() - started))
                    break
        return results

    results = await asyncio.to_thread(attack)
    codes = [code for code, _ in results]
    assert codes[:5] == [535] * 5 and codes[5] == 454, codes  # the 6th failure blocks, then the session ends
    assert min(t for _, t in results[3:5]) >= 0.15  # after 3 failures each try is slowed

    def again(source: str, login: str = "ivanov") -> tuple[int, bytes]:
        with setup.client(login=None, source=source) as client:
            client.ehlo()
            client.user, client.password = login, PASSWORDS[login]
            try:
                client.auth("PLAIN", client.auth_plain)
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code, exc.smtp_error
            return 235, b""

    blocked = await asyncio.to_thread(again, "127.0.0.2")
    assert blocked[0] == 454  # even the right password: this login is refused from this address for now
    assert (await asyncio.to_thread(again, "127.0.0.1"))[0] == 235  # the user is not locked out elsewhere
    assert (await asyncio.to_thread(again, "127.0.0.2", "petrov"))[0] == 235  # nor a colleague behind that NAT

    def spray(source: str) -> list[int]:  # made-up logins from one address: blocked for made-up logins
        codes = []
        with setup.client(login=None, source=source) as client:
            client.ehlo()
            for n in range(8):
                client.user, client.password = f"nobody{n}", "guess"
                try:
                    client.auth("PLAIN", client.auth_plain)
                except smtplib.SMTPAuthenticationError as exc:
                    codes.append(exc.smtp_code)
                except smtplib.SMTPServerDisconnected:
                    break
        return codes

    assert (await asyncio.to_thread(spray, "127.0.0.3"))[-1] == 454
    assert (await asyncio.to_thread(again, "127.0.0.3", "petrov"))[0] == 235  # known users still may
    assert setup.daemon.guard.unblock("127.0.0.2") == 1  # (what `prostoy-mail auth unblock` asks the daemon)
    assert (await asyncio.to_thread(again, "127.0.0.2"))[0] == 235


async def test_sending_as_someone_else_is_refused(outbound: Any) -> None:
    setup: Setup = await outbound()

    def go() -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
        with setup.client(login="petrov") as client:
            other_personal = client.mail("ivan@example.test")
            client.rset()
            other_gateway = client.mail("ivanov@peer.test")
            client.rset()
            client.mail("sales@example.test")  # corporate: every user may
            client.rcpt("x@far.example")
            forged_from = client.data(message("ivanov@peer.test", "x@far.example", "forged"))
        return other_personal, other_gateway, forged_from

    other_personal, other_gateway, forged_from = await asyncio.to_thread(go)
    assert other_personal[0] == 553 and b"5.7.1" in other_personal[1]
    assert other_gateway[0] == 553 and b"5.7.1" in other_gateway[1]
    assert forged_from[0] == 553 and b"5.7.1" in forged_from[1]
    assert setup.with_store(lambda s: s.list_outbound(include_finished=True)) == []

    # A display name that decodes to an address the user may not send as is only a name:
    # the mail goes out from, and is filed as from, the address in the header's syntax.
    name = "=?utf-8?B?" + base64.b64encode(b"ivanov@peer.test,").decode() + "?="
    raw = (f"From: {name} <sales@example.test>\r\nTo: x@far.example\r\nSubject: named\r\n\r\nHello\r\n").encode()

    def named() -> tuple[int, bytes]:
        with setup.client(login="petrov") as client:
            client.mail("sales@example.test")
            client.rcpt("x@far.example")
            return client.data(raw)

    assert (await asyncio.to_thread(named))[0] == 250
    [entry] = setup.with_store(lambda s: s.list_outbound(include_finished=True))
    [filed] = [c for c in setup.with_store(lambda s: s.list_comments(entry.task_id)) if c.subject == "named"]
    assert filed.from_addr == "sales@example.test" and filed.from_name == "ivanov@peer.test,"


async def test_a_deferred_recipient_is_retried_until_accepted(outbound: Any) -> None:
    setup: Setup = await outbound()
    setup.gateway_peer.answers["later@far.example"] = "451 4.2.0 try again later"
    reply = await setup.submit("support@peer.test", ["later@far.example"],
                               message("support@peer.test", "later@far.example", "retry me"))
    entry_id = queue_id(reply)
    entry = await until(lambda: (e := setup.entry(entry_id)).attempts >= 2 and e)
    assert entry.state == "queued" and entry.recipients[0].reply == "451 4.2.0 try again later"
    assert setup.gateway_peer.received == []
    del setup.gateway_peer.answers["later@far.example"]
    (got,) = await setup.gateway_peer.wait_for(1)
    assert got.rcpt_tos == ["later@far.example"]
    assert (await until(lambda: (e := setup.entry(entry_id)).state != "queued" and e)).state == "sent"


async def test_refused_recipients_bounce_per_recipient_into_the_task(outbound: Any) -> None:
    setup: Setup = await outbound()
    setup.gateway_peer.answers["nobody@far.example"] = "550 5.1.1 no such user"
    reply = await setup.submit("support@peer.test", ["ok@far.example", "nobody@far.example"],
                               message("support@peer.test", "ok@far.example", "partly"))
    (got,) = await setup.gateway_peer.wait_for(1)
    assert got.rcpt_tos == ["ok@far.example"]
    entry = await until(lambda: (e := setup.entry(queue_id(reply))).state != "queued" and e)
    assert entry.state == "failed"
    assert {r.address: r.state for r in entry.recipients} == {"ok@far.example": "delivered",
                                                               "nobody@far.example": "failed"}
    comments = await until(lambda: len(c := setup.comments("Mail/support@peer.test")) == 2 and c)
    bounce = comments[1]
    assert bounce.direction == "in" and bounce.bounce and bounce.routed_by == ("reply",)
    assert "nobody@far.example" in bounce.text and "550 5.1.1 no such user" in bounce.text
    assert "ok@far.example" not in bounce.text


async def test_a_message_that_keeps_failing_expires_and_bounces(outbound: Any) -> None:
    setup: Setup = await outbound(outbound={"max_queue_time": 1.5})
    setup.gateway_peer.answers["slow@far.example"] = "452 4.2.2 mailbox full"
    reply = await setup.submit("support@peer.test", ["slow@far.example"],
                               message("support@peer.test", "slow@far.example", "expiring"))
    entry = await until(lambda: (e := setup.entry(queue_id(reply))).state != "queued" and e)
    assert entry.state == "failed" and entry.attempts >= 2
    last_reply = entry.recipients[0].reply or ""
    assert "expired" in last_reply and "452 4.2.2 mailbox full" in last_reply
    bounce = (await until(lambda: len(c := setup.comments("Mail/support@peer.test")) == 2 and c))[1]
    assert bounce.bounce and "slow@far.example" in bounce.text


async def test_an_unreachable_server_is_a_temporary_failure(outbound: Any) -> None:
    setup: Setup = await outbound()
    await setup.gateway_peer.stop()
    assert setup.gateway_peer.server is not None
    await setup.gateway_peer.server.wait_closed()
    reply = await setup.submit("support@peer.test", ["x@far.example"],
                               message("support@peer.test", "x@far.example", "down"))
    entry = await until(lambda: (e := setup.entry(queue_id(reply))).attempts >= 1 and e)
    assert entry.state == "queued" and entry.recipients[0].reply and entry.recipients[0].reply.startswith("4.4.1")


def dovecot_gateway(dovecot: Dovecot) -> str:
    """The gateway box@dovecot.test: fetched from the private Dovecot, sending through the gateway
    peer (its port filled in by the fixture); more of its keys may follow."""
    return f"""
[fetch]
idle_renew = 1
poll_interval = 1

[[servers]]
name = "dovecot.test"
imap = "127.0.0.1:{dovecot.ports['imap']}"
fetch_security = "starttls"
ssl = false
smtp = "127.0.0.1:GATEWAY_PEER_PORT"
security = "starttls"
ca_file = "ca.pem"

[[gateways]]
email = "box@dovecot.test"
server = "dovecot.test"
login = "box@dovecot.test"
password = "box-pw"
smtp_login = "support@peer.test"
smtp_password = "gw-pw"
"""


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot({"box@dovecot.test": "box-pw"}).start()
    yield server
    server.stop()


async def test_a_reply_thread_through_a_gateway_stays_in_its_task_and_sent_is_filed_once(
        outbound: Any, dovecot: Dovecot) -> None:
    """Mail comes in through an IMAP gateway into a task by a rule; the user answers it from a
    mail client through us; a copy goes to the gateway's Sent folder; the customer's answer to
    that comes back through the gateway into the same task, though no rule matches it."""
    def prepare(store: SqliteStore) -> None:
        store.add_project("Sales")
        store.add_task("Sales", "Deal 7")

    gateway = dovecot_gateway(dovecot)
    setup: Setup = await outbound(extra_ca=dovecot.ca_file, prepare=prepare, extra=gateway + """upload_sent = true

[[rules]]
name = "deals"
gateway = "box@dovecot.test"
subject = "deal"
task = "Sales/Deal 7"
""")
    await until(lambda: setup.with_store(lambda s: (g := s.gateway_state("box@dovecot.test")) and g.last_success))
    question = (b"From: Client <client@far.example>\r\nTo: box@dovecot.test\r\nSubject: About the deal\r\n"
                b"Message-ID: <q1@far.example>\r\n\r\nWhat is the price?\r\n")
    await asyncio.to_thread(dovecot.append, "box@dovecot.test", question)
    await until(lambda: setup.comments("Sales/Deal 7"))

    answer = message("box@dovecot.test", "client@far.example", "Re: About the deal",
                     "In-Reply-To: <q1@far.example>\r\nReferences: <q1@far.example>\r\n")
    await setup.submit("box@dovecot.test", ["client@far.example"], answer)
    (sent,) = await setup.gateway_peer.wait_for(1)
    comments = setup.comments("Sales/Deal 7")
    assert [(c.direction, c.routed_by) for c in comments] == [("in", ("deals",)), ("out", ("reply",))]
    our_id = comments[1].message_id
    assert our_id and our_id.startswith("pm.") and f"<{our_id}>".encode() in sent.raw

    copies = await until(lambda: dovecot.messages("box@dovecot.test", "Sent"))
    assert len(copies) == 1 and f"Message-ID: <{our_id}>".encode() in copies[0][2] and "\\Seen" in copies[0][1]

    customer = (f"From: Client <client@far.example>\r\nTo: box@dovecot.test\r\nSubject: Re: Re: About it\r\n"
                f"In-Reply-To: <{our_id}>\r\n\r\nAgreed.\r\n").encode()
    await asyncio.to_thread(dovecot.append, "box@dovecot.test", customer)
    thread = await until(lambda: len(c := setup.comments("Sales/Deal 7")) == 3 and c)
    assert (thread[2].direction, thread[2].routed_by, thread[2].text) == ("in", ("reply",), "Agreed.")

    # a retry of the Sent copy (e.g. after a crash before it was recorded) does not file it twice
    entry_id = setup.with_store(lambda s: s.list_outbound(include_finished=True))[0].id
    setup.with_store(lambda s: s.db.execute("UPDATE outbound SET sent_folder = 'pending' WHERE id = ?", (entry_id,)))
    setup.daemon.outbound.wake()  # type: ignore[union-attr]
    await until(lambda: setup.entry(entry_id).sent_folder == "done")
    assert len(dovecot.messages("box@dovecot.test", "Sent")) == 1


async def test_task_send_from_the_command_line_is_sent_by_the_running_daemon(outbound: Any, tmp_path: Path) -> None:
    def prepare(store: SqliteStore) -> None:
        store.add_project("Deals")
        store.add_task("Deals", "Big one")

    setup: Setup = await outbound(prepare=prepare)
    (tmp_path / "body.txt").write_text("Цена: 100.\n", "utf-8")
    run = Cli(tmp_path / "prostoy-mail.toml")
    result = await asyncio.to_thread(run, "task", "send", "Deals/Big one", "--from", "sales@example.test",
                                     "--to", "client@far.example", "--subject", "Offer",
                                     "--body-file", str(tmp_path / "body.txt"))
    assert result.out.startswith("queued as 1")
    (got,) = await setup.relay_peer.wait_for(1)  # picked up within [outbound] poll_interval
    assert got.mail_from.startswith("sales+t") and "Цена: 100.".encode() in got.raw
    assert b"Content-Transfer-Encoding" in got.raw and got.raw.count(b"\n") == got.raw.count(b"\r\n")
    assert (await until(lambda: setup.entry(1).state != "queued" and setup.entry(1))).state == "sent"
    # the customer answers the reply address; no In-Reply-To, another subject: still this task
    answer = b"From: client@far.example\r\nTo: sales@example.test\r\nSubject: price?\r\n\r\ntoo much\r\n"
    await asyncio.to_thread(_send_inbound, setup.port("smtp"), "client@far.example", [got.mail_from], answer)
    comments = setup.comments("Deals/Big one")
    assert [(c.direction, c.routed_by) for c in comments] == [("out", ("task",)), ("in", ("reply",))]
    assert setup.comments("Mail/sales@example.test") == []


async def test_a_relay_without_starttls_gets_nothing_in_plain_text(outbound: Any, tmp_path: Path) -> None:
    setup: Setup = await outbound(relay_security="starttls", peer_security="none", outbound={"max_queue_time": 60})
    reply = await setup.submit("sales@example.test", ["x@far.example"],
                               message("sales@example.test", "x@far.example", "must be encrypted"))
    entry = await until(lambda: (e := setup.entry(queue_id(reply))).attempts >= 1 and e)
    assert entry.state == "queued" and setup.relay_peer.received == []  # nothing went out in plain text
    assert "STARTTLS" in (entry.recipients[0].reply or "") and "plain text" in (entry.recipients[0].reply or "")


async def test_an_untrusted_certificate_is_refused(outbound: Any, tmp_path: Path) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    setup: Setup = await outbound(relay_ca="other-ca.pem", outbound={"max_queue_time": 60})
    reply = await setup.submit("sales@example.test", ["x@far.example"],
                               message("sales@example.test", "x@far.example", "verify me"))
    entry = await until(lambda: (e := setup.entry(queue_id(reply))).attempts >= 1 and e)
    assert entry.state == "queued" and setup.relay_peer.received == []
    assert "certificate not trusted" in (entry.recipients[0].reply or ""), entry.recipients[0].reply


async def test_the_spool_survives_a_restart(outbound: Any, tmp_path: Path) -> None:
    setup: Setup = await outbound()
    setup.gateway_peer.answers["x@far.example"] = "421 4.3.2 not now"
    reply = await setup.submit("support@peer.test", ["x@far.example"],
                               message("support@peer.test", "x@far.example", "across a restart"))
    await until(lambda: setup.entry(queue_id(reply)).attempts >= 1)
    await setup.daemon.stop()
    del setup.gateway_peer.answers["x@far.example"]
    restarted = Daemon(load_config(tmp_path / "prostoy-mail.toml"))
    await restarted.start()
    try:
        (got,) = await setup.gateway_peer.wait_for(1)
        assert b"across a restart" in got.raw
        assert (await until(lambda: (e := setup.entry(queue_id(reply))).state != "queued" and e)).state == "sent"
        passes = restarted.outbound.passes
        await until(lambda: restarted.outbound.passes >= passes + 3)  # more passes: nothing is sent twice
        assert len(setup.gateway_peer.received) == 1
    finally:
        await restarted.stop()


@pytest.mark.parametrize("misbehave", ["stall", "drop"])
async def test_a_peer_that_stalls_or_drops_in_data_is_retried(outbound: Any, misbehave: str) -> None:
    setup: Setup = await outbound(outbound={"timeout": 1})
    setup.gateway_peer.misbehave = misbehave
    reply = await setup.submit("support@peer.test", ["x@far.example"],
                               message("support@peer.test", "x@far.example", f"peer {misbehave}s"))
    entry = await until(lambda: (e := setup.entry(queue_id(reply))).attempts >= 1 and e)
    assert entry.state == "queued" and (entry.recipients[0].reply or "")[:1] == "4", entry.recipients[0].reply
    setup.gateway_peer.misbehave = ""
    (got,) = await setup.gateway_peer.wait_for(1)
    assert f"peer {misbehave}s".encode() in got.raw
    assert (await until(lambda: (e := setup.entry(queue_id(reply))).state != "queued" and e)).state == "sent"


async def test_commands_pipelined_behind_starttls_are_dropped(outbound: Any) -> None:
    setup: Setup = await outbound()
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.port("submission"))
    await reader.readline()
    writer.write(b"EHLO me\r\n")
    await writer.drain()
    while not (await reader.readline()).startswith(b"250 "):
        pass
    # the injection: commands sent in plain text in the same packet as STARTTLS
    writer.write(b"STARTTLS\r\nAUTH PLAIN AGl2YW5vdgBpdmFub3YtcHc=\r\nMAIL FROM:<support@peer.test>\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220")
    await writer.start_tls(setup.client_context)
    writer.write(b"NOOP\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readline(), 10)
    assert first.startswith(b"250"), first  # the answer to NOOP: nothing injected was run
    writer.write(b"MAIL FROM:<support@peer.test>\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"503")  # still needs EHLO, AUTH
    writer.close()


NO_SMTP_GATEWAY = """
[[servers]]
name = "nosmtp.test"
imap = "127.0.0.1:9"

[[gateways]]
email = "box@nosmtp.test"
server = "nosmtp.test"
password = "x"
forwarding = false
"""


async def test_mail_that_nothing_can_carry_out_is_refused_at_rcpt(outbound: Any) -> None:
    """Accepted, it would have waited five days in the spool and then bounced."""
    setup: Setup = await outbound(extra=NO_SMTP_GATEWAY)

    def go() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        with setup.client() as client:
            client.mail("box@nosmtp.test")
            outside = client.rcpt("x@far.example")
            inside = client.rcpt("sales@example.test")  # our own mailboxes are reached without a route
            return outside, inside

    outside, inside = await asyncio.to_thread(go)
    assert outside[0] == 550 and outside[1].startswith(b"5.7.1 <x@far.example>: mail from <box@nosmtp.test> "
                                                        b"cannot be sent outside"), outside
    assert b'"nosmtp.test" has no SMTP endpoint' in outside[1]
    assert inside[0] == 250


async def test_over_the_hourly_sending_limit_submission_answers_450(outbound: Any, tmp_path: Path) -> None:
    setup: Setup = await outbound(extra="\n[limits]\noutbound_per_hour = 2\n")
    for number in range(2):
        await setup.submit("sales@example.test", ["x@far.example"],
                           message("sales@example.test", "x@far.example", f"number {number}"))

    def third() -> tuple[int, bytes]:
        with setup.client() as client:
            client.mail("sales@example.test")
            client.rcpt("x@far.example")
            return client.data(message("sales@example.test", "x@far.example", "one too many"))

    code, reply = await asyncio.to_thread(third)
    assert (code, reply.decode()) == (450, "4.7.1 the organisation has submitted 2 messages within the last hour, "
                                           "its limit (limits.outbound_per_hour); try again later")
    assert len(setup.with_store(lambda s: s.list_outbound(include_finished=True))) == 2  # nothing queued
    (tmp_path / "body.txt").write_text("x\n", "utf-8")
    sent = await asyncio.to_thread(Cli(tmp_path / "prostoy-mail.toml"), "task", "send", "Mail/sales@example.test",
                                   "--from", "sales@example.test", "--to", "y@far.example", "--subject", "s",
                                   "--body-file", str(tmp_path / "body.txt"), ok=False)
    assert sent.code == 1 and "its limit (limits.outbound_per_hour)" in sent.err


async def test_a_new_task_rule_opens_a_task_and_its_conversation_stays_together(
        outbound: Any, dovecot: Dovecot, tmp_path: Path) -> None:
    """A customer writes to a gateway (a real Dovecot); a `new_task` rule opens a task; the agent
    answers with `task send`; the customer's answers (with References, from their mail client)
    and a colleague's the task wrote to land in that task; a stranger who quotes the first
    message's Message-ID, over SMTP, opens a task of their own."""
    def prepare(store: SqliteStore) -> None:
        store.add_project("Support")

    setup: Setup = await outbound(extra_ca=dovecot.ca_file, prepare=prepare, extra=dovecot_gateway(dovecot) + """
[[rules]]
name = "support"
action = "new_task"
project = "Support"
assign_to = "petrov"
""")
    await until(lambda: setup.with_store(lambda s: (g := s.gateway_state("box@dovecot.test")) and g.last_success))
    run = Cli(tmp_path / "prostoy-mail.toml")

    def conversations() -> list[dict[str, Any]]:
        return [t for t in json.loads(run("task", "list", "--json").out) if t["kind"] == "conversation"]

    question = (b"From: Client <client@far.example>\r\nTo: box@dovecot.test\r\nSubject: Re: Fwd: Help with my order\r\n"
                b"Message-ID: <q1@far.example>\r\n\r\nWhere is it?\r\n")
    await asyncio.to_thread(dovecot.append, "box@dovecot.test", question)
    [task] = await until(lambda: conversations())
    assert (task["project"], task["title"], task["assignee"], task["source"]) == (
        "Support", "Help with my order", "petrov", "rule:support")
    ref = f"Support/{task['title']}"
    assert [(c.subject, c.routed_by) for c in setup.comments(ref)] == [("Re: Fwd: Help with my order", ("support",))]

    (tmp_path / "answer.txt").write_text("It is on its way.\n", "utf-8")
    sent = await asyncio.to_thread(run, "task", "send", ref, "--from", "box@dovecot.test", "--to",
                                   "client@far.example", "--cc", "boss@far.example", "--subject",
                                   "Re: Help with my order", "--body-file", str(tmp_path / "answer.txt"),
                                   "--in-reply-to", "q1@far.example")
    assert sent.out.startswith("queued as"), sent
    (out,) = await setup.gateway_peer.wait_for(1)
    our_id = setup.comments(ref)[1].message_id
    assert our_id and f"<{our_id}>".encode() in out.raw

    # the customer's mail client answers our message: References name both
    answer = (f"From: client@far.example\r\nTo: box@dovecot.test\r\nSubject: Re: Help with my order\r\n"
              f"Message-ID: <q2@far.example>\r\nIn-Reply-To: <{our_id}>\r\n"
              f"References: <q1@far.example> <{our_id}>\r\n\r\nThanks!\r\n").encode()
    await asyncio.to_thread(dovecot.append, "box@dovecot.test", answer)
    await until(lambda: len(setup.comments(ref)) == 3)
    # the customer writes again, answering only their own message (no signed id of ours)
    again = (b"From: client@far.example\r\nTo: box@dovecot.test\r\nSubject: one more thing\r\n"
             b"In-Reply-To: <q2@far.example>\r\n\r\nAnd the invoice?\r\n")
    await asyncio.to_thread(dovecot.append, "box@dovecot.test", again)
    # the boss the task wrote to (Cc) joins in, referring to the customer's first message only
    boss = (b"From: Boss <boss@far.example>\r\nTo: box@dovecot.test\r\nSubject: Re: Help with my order\r\n"
            b"References: <q1@far.example>\r\n\r\nPlease hurry.\r\n")
    await asyncio.to_thread(dovecot.append, "box@dovecot.test", boss)
    thread = await until(lambda: len(c := setup.comments(ref)) == 5 and c)
    assert [(c.direction, c.routed_by) for c in thread] == [
        ("in", ("support",)), ("out", ("task",)), ("in", ("reply",)), ("in", ("conversation",)),
        ("in", ("conversation",))]

    # a stranger who saw the Message-ID quotes it, over SMTP: no way in, a task of their own
    stranger = (b"From: stranger@elsewhere.example\r\nTo: sales@example.test\r\nSubject: Re: Help with my order\r\n"
                b"In-Reply-To: <q1@far.example>\r\nReferences: <q1@far.example>\r\n\r\nLet me in\r\n")
    await asyncio.to_thread(_send_inbound, setup.port("smtp"), "stranger@elsewhere.example", ["sales@example.test"],
                            stranger)
    assert len(setup.comments(ref)) == 5
    tasks = conversations()
    assert [t["title"] for t in tasks] == ["Help with my order", "Help with my order (2)"]
    [(text, by)] = [(c.text, c.routed_by) for c in setup.comments(f"Support/{tasks[1]['title']}")]
    assert (text, by) == ("Let me in", ("support",))
