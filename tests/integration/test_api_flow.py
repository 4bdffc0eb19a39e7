"""The help page's flow through the API, against a real Dovecot: create a server and a
gateway, press Test (a wrong password: the step that failed, with Dovecot's own reply), create
a rule, hear the mail land as a server-sent event, delete the comment and, with the gateway's
option, the message on Dovecot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from prostoy_mail.auth.password_hashes import hash_password
from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import LOOPBACK_ANY_PORT, QUICK_FETCH, config_text
from tests.dovecot import Dovecot
from tests.sse import next_event
from tests.waiting import until

pytestmark = pytest.mark.integration

USERS = {"box@example.org": "right-password"}


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot(USERS).start()
    yield server
    server.stop()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Daemon]]:
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(listen={"http": LOOPBACK_ANY_PORT}, smtp={"workers": 0},
                                  fetch={**QUICK_FETCH, "private_servers": True}))  # (Dovecot is on loopback)
    store = SqliteStore(tmp_path / "store.db")
    acme = store.add_organisation("acme", "Acme").id
    with store.acting_for(acme):
        store.add_user("boss", "Boss", hash_password("boss-pw"), is_owner=True)
        store.add_project("Sales")
        store.add_task("Sales", "Invoices")
    store.close()
    daemon = Daemon(load_config(config))
    await daemon.start()
    base = f"http://127.0.0.1:{daemon.bound_port('http')}/api/v1"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        token = (await http.post("/sessions", json={"login": "boss", "password": "boss-pw"})).json()["token"]
        http.headers["Authorization"] = f"Bearer {token}"
        try:
            yield http, daemon
        finally:
            await daemon.stop()




async def test_the_help_pages_flow(client: tuple[httpx.AsyncClient, Daemon], dovecot: Dovecot) -> None:
    http, daemon = client
    org = "/organisations/acme"
    made = await http.post(f"{org}/servers", json={"name": "dovecot.test", "imap": f"127.0.0.1:{dovecot.ports['imap']}",
                                                   "ssl": False, "verify_certificate": False})
    assert made.status_code == 201, made.text
    wrong = (await http.post(f"{org}/gateways/verify", json={
        "email": "box@example.org", "server": "dovecot.test", "password": "wrong", "smtp": False})).json()
    failed = [step for step in wrong["steps"] if not step["ok"]]
    assert not wrong["ok"] and [(s["protocol"], s["step"]) for s in failed] == [("imap", "login")], wrong
    assert "Authentication failed" in failed[0]["detail"]  # (Dovecot's own words)
    gateway = await http.post(f"{org}/gateways", json={"email": "box@example.org", "server": "dovecot.test",
                                                      "password": "right-password",
                                                      "delete_on_server_when_deleted": True})
    assert gateway.status_code == 201, gateway.text
    assert "password" not in gateway.json() and "right-password" not in gateway.text
    test = (await http.post(f"{org}/gateways/box@example.org/test", params={"smtp": "false"})).json()
    assert test["ok"] and [s["step"] for s in test["steps"]][-1] == "login", test
    rule = await http.post(f"{org}/rules", json={"name": "invoices", "gateway": "box@example.org",
                                                 "subject": ["invoice"], "action": "comment",
                                                 "task": "Sales/Invoices"})
    assert rule.status_code == 201, rule.text

    async with http.stream("GET", f"{org}/events", params={"after": 0}) as stream:
        lines = stream.aiter_lines()
        states = [await asyncio.wait_for(next_event(lines, "gateway.state"), 20) for _ in range(2)]
        assert [event["object"] for event in states] == [  # (connecting, then the watcher's first check)
            {"gateway": "box@example.org", "state": state, "step": None, "error": None}
            for state in ("connecting", "idle")]
        appended = time.monotonic()
        await asyncio.to_thread(dovecot.append, "box@example.org",
                                b"From: client@client.ru\r\nSubject: invoice 77\r\n\r\npay\r\n")
        event = await asyncio.wait_for(next_event(lines, "comment.created"), 20)
        print(f"from Dovecot's APPEND to the event: {time.monotonic() - appended:.3f} s")
    comment = event["object"]
    assert (comment["subject"], comment["routed_by"], comment["source"]) == ("invoice 77", ["invoices"],
                                                                             "box@example.org")
    invoices = next(t for t in (await http.get(f"{org}/tasks")).json() if t["title"] == "Invoices")
    assert comment["task"] == invoices["id"]
    assert (await http.delete(f"{org}/comments/{comment['id']}")).status_code == 204
    assert (await http.get(f"{org}/tasks/{invoices['id']}/comments")).json() == []
    await until(lambda: dovecot.messages("box@example.org") == [])  # (deleted on the server by the watcher)
    gateways = (await http.get(f"{org}/gateways")).json()
    assert [(g["email"], g["state"]) for g in gateways] == [("box@example.org", "idle")]
    assert daemon.fetchers is not None and "box@example.org" in daemon.fetchers.watchers
