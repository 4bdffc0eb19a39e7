"""Webhooks over real HTTP: an organisation's events POSTed to a receiver in order, signed,
retried after failures (at least once: never skipped), a webhook that keeps failing marked so."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from prostoy_mail.auth.password_hashes import hash_password
from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import LOOPBACK_ANY_PORT, config_text
from tests.waiting import until

pytestmark = pytest.mark.integration

SECRET = "the-webhook-secret-of-acme"


@dataclass
class Receiver:
    """A real HTTP server: answers 500 to its first `failures` POSTs, then 200; keeps them all."""

    failures: int = 0
    posts: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)  # (status given, headers, body)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for status, _, body in self.posts if status == 200]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver(failures=2)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                status = 500 if state.failures > 0 else 200
                state.failures -= 1
                state.posts.append((status, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(listen={"smtp": LOOPBACK_ANY_PORT, "http": LOOPBACK_ANY_PORT}, smtp={"workers": 0},
                                  fetch={"private_servers": True},  # (the receiver is on loopback)
                                  api={"webhook_retry_initial": 0.05, "webhook_retry_max": 0.2,
                                       "webhook_failing_after": 1}))
    store = SqliteStore(tmp_path / "store.db")
    acme = store.add_organisation("acme", "Acme").id
    with store.acting_for(acme):
        store.add_user("boss", "Boss", hash_password("boss-pw"), is_owner=True)
    store.replace_org_entries(acme, {"mailboxes": [{"login": "desk"}]})
    store.close()
    running = Daemon(load_config(config))
    await running.start()
    api = f"http://127.0.0.1:{running.bound_port('http')}/api/v1"
    async with httpx.AsyncClient(base_url=f"{api}/organisations/acme", timeout=30) as http:
        login = await http.post(f"{api}/sessions", json={"login": "boss", "password": "boss-pw"})
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"
        try:
            yield running, http
        finally:
            await running.stop()


def _send(daemon: Daemon, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.bound_port("smtp"), timeout=30) as client:
        client.sendmail("a@far.example", ["desk@example.test"], f"Subject: {subject}\r\n\r\nhi\r\n".encode())


async def test_events_reach_the_webhook_in_order_signed_and_again_after_failures(
        daemon: tuple[Daemon, httpx.AsyncClient], receiver: tuple[Receiver, str]) -> None:
    running, http = daemon
    state, url = receiver
    made = await http.post("/webhooks", json={"url": url, "secret": SECRET, "types": ["comment.created"]})
    assert made.status_code == 201, made.text
    assert "secret" not in made.json() and SECRET not in made.text
    for number in range(3):
        await asyncio.to_thread(_send, running, f"order {number}")
    await until(lambda: len(state.accepted()) == 3)
    assert [e["object"]["subject"] for e in state.accepted()] == ["order 0", "order 1", "order 2"]
    with state.lock:
        posts = list(state.posts)
    assert [status for status, _, _ in posts] == [500, 500, 200, 200, 200]  # (the first one, until taken)
    assert posts[0][2] == posts[2][2] and posts[0][1]["x-prostoy-event-id"] == posts[2][1]["x-prostoy-event-id"]
    for _, headers, body in posts:  # each signed: HMAC-SHA256 of "TIMESTAMP.BODY" under the secret
        expected = hmac.new(SECRET.encode(), headers["x-prostoy-timestamp"].encode() + b"." + body,
                            hashlib.sha256).hexdigest()
        assert headers["x-prostoy-signature"] == f"sha256={expected}"
        assert json.loads(body)["id"] == int(headers["x-prostoy-event-id"])
    [hook] = (await http.get("/webhooks")).json()
    assert (hook["state"], hook["attempts"], hook["delivered_through"]) == (
        "active", 0, state.accepted()[-1]["id"])


async def test_a_webhook_that_keeps_failing_is_marked_failing(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    running, http = daemon
    nowhere = "http://127.0.0.1:9/hook"  # (nothing listens there)
    made = (await http.post("/webhooks", json={"url": nowhere, "secret": SECRET})).json()
    await asyncio.to_thread(_send, running, "lost?")

    async def state() -> str:
        return str((await http.get(f"/webhooks/{made['id']}")).json()["state"])

    for _ in range(200):
        if await state() == "failing":
            break
        await asyncio.sleep(0.05)
    hook = (await http.get(f"/webhooks/{made['id']}")).json()
    assert hook["state"] == "failing" and hook["attempts"] > 1 and "ConnectError" in hook["last_error"], hook
    assert hook["delivered_through"] == made["delivered_through"]  # (its event is not skipped: still to come)
    fixed = await http.patch(f"/webhooks/{made['id']}", json={"url": "http://127.0.0.1:9/other"})
    assert fixed.json()["state"] == "active"


async def test_the_daemon_forgets_events_older_than_their_retention(tmp_path: Path) -> None:
    from prostoy_mail.store.ports import CommentTarget, MessageRecord

    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(smtp={"workers": 0}, api={"event_retention": 3600}))
    store = SqliteStore(tmp_path / "store.db")
    store.add_project("Sales")
    task = store.add_task("Sales", "Invoices").id
    for number in range(5):
        store.store_message(MessageRecord(raw=f"Subject: {number}\r\n\r\nx\r\n".encode(), direction="in",
                                          source="smtp"), [CommentTarget(task, ("r",))])
    ids = [e.id for e in store.events_after(0)]
    with store.transaction() as db:  # (the first three two hours old)
        db.execute("UPDATE events SET created_at = '2020-01-01T00:00:00+00:00' WHERE id <= ?", (ids[2],))
    daemon = Daemon(load_config(config))
    await daemon.start()
    try:
        await until(lambda: [e.id for e in store.events_after(0)] == ids[3:])
    finally:
        await daemon.stop()
        store.close()
