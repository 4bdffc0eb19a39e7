"""Hostile or broken IMAP servers: what Dovecot will not do, a small fake server does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.waiting import until


class FakeImap:
    """Just enough IMAP to get a client to a chosen fault."""

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.logins = 0
        self.server: asyncio.Server | None = None
        self.messages: list[bytes] = []  # UID n is messages[n - 1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        caps = "IMAP4rev1 AUTH=PLAIN" + ("" if self.fault == "no-idle" else " IDLE") + (
            "" if self.fault == "no-starttls" else " STARTTLS")
        writer.write(f"* OK [CAPABILITY {caps}] fake ready\r\n".encode())
        try:
            while line := await reader.readline():
                tag, _, rest = line.decode().strip().partition(" ")
                command = rest.split(" ")[0].upper()
                if command == "CAPABILITY":
                    writer.write(f"* CAPABILITY {caps}\r\n{tag} OK done\r\n".encode())
                elif command == "LOGIN":
                    self.logins += 1
                    if self.fault == "garbage":
                        writer.write(b"\x00\xff%%%% this is not IMAP at all\r\n" * 3)
                        writer.close()
                        return
                    writer.write(f"{tag} OK logged in\r\n".encode())
                elif command == "SELECT":
                    count = len(self.messages)
                    writer.write(f"* {count} EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT {count + 1}] n\r\n"
                                 f"{tag} OK [READ-WRITE] selected\r\n".encode())
                elif command == "UID" and "FETCH" in rest.upper() and self.fault == "stall":
                    raw = self.messages[0]  # half a response, then nothing more: the client must time out
                    writer.write(f"* 1 FETCH (UID 1 BODY[] {{{len(raw)}}}\r\n".encode() + raw[:len(raw) // 2])
                    await writer.drain()
                    await asyncio.sleep(3600)
                elif command == "UID" and "BODY.PEEK" in rest.upper() and self.fault == "huge-literal":
                    # a literal of 4 GiB announced: imaplib would allocate it before reading a byte
                    writer.write(b"* 1 FETCH (UID 1 BODY[] {4294967296}\r\n" + b"x" * 65536)
                    await writer.drain()
                    await asyncio.sleep(3600)
                elif command == "UID" and "FETCH" in rest.upper() and self.fault == "endless":
                    for _ in range(400):  # untagged lines without end (17+ MiB): never the tagged answer
                        writer.write(b"* OK still thinking " + b"." * 65536 + b"\r\n")
                        await writer.drain()
                    await asyncio.sleep(3600)
                elif command == "UID" and "FETCH" in rest.upper() and self.fault == "uid-lie":
                    wanted = [int(u) for u in rest.split()[2].split(",")]
                    for uid in wanted:  # each asked UID answered as another (and UID 2 twice)
                        raw, lie = self.messages[uid - 1], uid + 98
                        writer.write(f"* {uid} FETCH (UID {lie} BODY[] {{{len(raw)}}}\r\n".encode() + raw + b")\r\n")
                        if uid == 2:
                            writer.write(f"* 2 FETCH (UID 2 BODY[] {{{len(raw)}}}\r\n".encode() + raw + b")\r\n")
                            writer.write(f"* 2 FETCH (UID 2 BODY[] {{{len(raw)}}}\r\n".encode() + raw + b")\r\n")
                    writer.write(f"{tag} OK fetched\r\n".encode())
                elif command == "UID" and "FETCH" in rest.upper() and self.fault == "malformed":
                    writer.write(b"* 1 FETCH (UID one BODY[] {not-a-number}\r\n)))\r\n" + tag.encode() + b" OK x\r\n")
                elif command == "UID" and "FETCH" in rest.upper():
                    wanted = rest.split()[2]
                    for uid in (int(u) for u in wanted.split(",")):
                        raw = self.messages[uid - 1]
                        writer.write(f"* {uid} FETCH (UID {uid} BODY[] {{{len(raw)}}}\r\n".encode() + raw + b")\r\n")
                    writer.write(f"{tag} OK fetched\r\n".encode())
                elif command == "UID" and "SEARCH" in rest.upper():
                    if self.fault == "huge":  # an endless line: the client must give up, not eat memory
                        writer.write(b"* SEARCH ")
                        for _ in range(40):
                            writer.write(b"1 " * 100_000)
                            await writer.drain()
                        writer.write(b"\r\n")
                    uids = list(range(1, len(self.messages) + 1))
                    criteria = rest.split()[2:]
                    if criteria[:1] == ["UID"]:
                        low = int(criteria[1].split(":")[0])
                        uids = [u for u in uids if u >= low] or uids[-1:]  # n:* includes the highest
                    writer.write(f"* SEARCH {' '.join(map(str, uids))}\r\n{tag} OK searched\r\n".encode())
                elif command == "IDLE":
                    if self.fault == "bye":
                        writer.write(b"* BYE shutting down for maintenance\r\n")
                        await writer.drain()
                        writer.close()
                        return
                    writer.write(b"+ idling\r\n")
                elif command == "DONE":
                    writer.write(b"x OK idle done\r\n")
                elif command == "LOGOUT":
                    writer.write(f"* BYE bye\r\n{tag} OK\r\n".encode())
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(f"{tag} OK whatever\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass


@pytest.fixture
async def fake_imap() -> AsyncIterator[Callable[[str], Any]]:
    servers: list[asyncio.Server] = []

    async def start(fault: str) -> tuple[FakeImap, int]:
        fake = FakeImap(fault)
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        servers.append(server)
        return fake, server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()


def config(port: int, security: str, extra: str = "") -> str:
    return f"""
[fetch]
idle_renew = 1
backoff_initial = 0.2
backoff_max = 0.5
timeout = 1

[[servers]]
name = "fake.test"
imap = "127.0.0.1:{port}"
fetch_security = "{security}"
ssl = false

[[gateways]]
email = "victim@fake.test"
server = "fake.test"
password = "x"
{extra}
[[mailboxes]]
login = "sales"
"""


@pytest.mark.parametrize(
    ("fault", "security", "error"),
    [
        ("no-starttls", "starttls", "starttls: the server does not offer STARTTLS"),
        ("garbage", "none", ""),
        ("bye", "none", "idle: the server said goodbye: * BYE shutting down"),
        ("huge", "none", ""),
        ("stall", "none", "connection: timed out"),
        ("malformed", "none", ""),
    ],
)
async def test_a_bad_server_backs_off_and_the_daemon_goes_on(mail_server: Any, fake_imap: Any, fault: str,
                                                             security: str, error: str) -> None:
    fake, port = await fake_imap(fault)
    fake.messages.append(b"From: a@b.ru\r\nSubject: waiting\r\n\r\n" + b"z" * 5000 + b"\r\n")
    server = await mail_server(config(port, security, "import_since = 2000-01-01"))  # fetch the one there
    state = await until(lambda: (s := server.store().gateway_state("victim@fake.test")) and s.failures >= 2 and s,
                        timeout=30)
    assert state.last_error.startswith(error), state.last_error
    assert state.next_attempt is not None
    if fault == "no-starttls":
        assert fake.logins == 0  # no password was sent in plain text
    # the rest of the daemon is unaffected: inbound mail still lands
    started = time.monotonic()
    assert await server.send("a@b.ru", ["sales@example.test"], b"Subject: still here\r\n\r\nx\r\n") == {}
    assert time.monotonic() - started < 5
    assert [c.subject for c in server.comments("Mail/sales@example.test")] == ["still here"]


async def test_a_literal_bigger_than_a_message_may_be_is_refused_unread(mail_server: Any, fake_imap: Any) -> None:
    """`{4294967296}`: the session ends with a logged error; no 4 GiB is reserved."""
    fake, port = await fake_imap("huge-literal")
    fake.messages.append(b"Subject: x\r\n\r\nx\r\n")
    peak = _vm_peak()
    server = await mail_server(config(port, "none", "import_since = 2000-01-01"))
    state = await until(lambda: (s := server.store().gateway_state("victim@fake.test")) and s.failures >= 2 and s)
    assert state.last_error.startswith("bounds: the server announced a literal of 4294967296 bytes"), state.last_error
    assert _vm_peak() - peak < 1 << 30  # (before the bound: +4 GiB of address space, filled as the data came)
    assert server.count("messages") == 0


async def test_an_endless_response_is_cut_off(mail_server: Any, fake_imap: Any) -> None:
    fake, port = await fake_imap("endless")
    fake.messages.append(b"Subject: x\r\n\r\nx\r\n")
    extra = "import_since = 2000-01-01\n[smtp]\nmax_message_size = 100000\n"
    server = await mail_server(config(port, "none", extra).replace("timeout = 1", "timeout = 30"))
    state = await until(lambda: (s := server.store().gateway_state("victim@fake.test")) and s.failures >= 1 and s,
                        timeout=60)
    assert state.last_error.startswith("bounds: the server sent more than"), state.last_error


async def test_only_the_uids_asked_for_are_taken(mail_server: Any, fake_imap: Any) -> None:
    """A server answering `UID FETCH 1` with `UID 99` must not move the gateway's position past
    messages 2..98 (they would never be fetched), nor store anything under a UID not asked for."""
    fake, port = await fake_imap("uid-lie")
    for n in (1, 2, 3):
        fake.messages.append(f"Subject: m{n}\r\nMessage-ID: <m{n}@x>\r\n\r\nx\r\n".encode())
    server = await mail_server(config(port, "none", "import_since = 2000-01-01"))
    await until(lambda: server.comments("Mail/victim@fake.test"))  # UID 2, answered truthfully once
    await until(lambda: (s := server.store().gateway_state("victim@fake.test")) and s.last_success)
    assert [c.subject for c in server.comments("Mail/victim@fake.test")] == ["m2"]  # once, though sent thrice
    state = server.store().gateway_state("victim@fake.test")
    assert state.last_uid == 2, state


class FakePop3:
    """Just enough POP3 for a client to reach RETR, and then a fault."""

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.sessions = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1  # the first session only notes what is there; from the second, "2" is new
        writer.write(b"+OK fake pop3\r\n")
        try:
            while line := await reader.readline():
                command = line.decode().strip().split(" ")[0].upper()
                if command == "UIDL":
                    writer.write(b"+OK\r\n1 first\r\n" + (b"2 second\r\n" if self.sessions > 1 else b"") + b".\r\n")
                elif command == "LIST":
                    writer.write(b"+OK\r\n1 20\r\n.\r\n")
                elif command == "RETR" and self.fault == "size-lie":
                    writer.write(b"+OK 20 octets\r\nSubject: x\r\n\r\n")  # then 20 MiB, never the "."
                    for _ in range(320):
                        writer.write(b"y" * 65534 + b"\r\n")
                        await writer.drain()
                    await asyncio.sleep(3600)
                elif command == "RETR" and self.fault == "endless-line":
                    writer.write(b"+OK 20 octets\r\nSubject: x\r\n\r\n")
                    for _ in range(40):
                        writer.write(b"y" * 65536)
                        await writer.drain()
                    await asyncio.sleep(3600)
                elif command == "QUIT":
                    writer.write(b"+OK bye\r\n")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(b"+OK\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass


@pytest.mark.parametrize(("fault", "error"), [
    ("size-lie", "bounds: the server sent more than"),
    ("endless-line", "protocol: line too long"),
])
async def test_a_pop3_server_cannot_make_a_message_endless(mail_server: Any, fault: str, error: str) -> None:
    fake = FakePop3(fault)
    listener = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    try:
        port = listener.sockets[0].getsockname()[1]
        text = config(port, "none", 'protocol = "pop3"\n[smtp]\nmax_message_size = 100000\n')
        text = text.replace("backoff_max = 0.5", "backoff_max = 0.5\npoll_interval = 0.2")
        text = text.replace(f'imap = "127.0.0.1:{port}"', f'pop3 = "127.0.0.1:{port}"')
        text = text.replace("timeout = 1", "timeout = 30")
        server = await mail_server(text)
        state = await until(lambda: (s := server.store().gateway_state("victim@fake.test")) and s.failures >= 1 and s,
                            timeout=60)
        assert state.last_error.startswith(error), state.last_error
        assert server.count("messages") == 0
    finally:
        listener.close()


def _vm_peak() -> int:
    """This process's peak address space (VmPeak), bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmPeak:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmPeak")


async def test_a_server_without_idle_is_polled(mail_server: Any, fake_imap: Any) -> None:
    fake, port = await fake_imap("no-idle")
    fake.messages.append(b"Subject: before the gateway\r\n\r\nold\r\n")
    server = await mail_server(config(port, "none").replace("idle_renew = 1", "idle_renew = 1\npoll_interval = 0.5"))
    await until(lambda: (s := server.store().gateway_state("victim@fake.test")) and s.last_success)
    fake.messages.append(b"Subject: found by polling\r\n\r\nnew\r\n")
    await until(lambda: [c.subject for c in server.comments("Mail/victim@fake.test")] == ["found by polling"])
