"""Gateways of organisations that live in the store, on one daemon, fetching from a real
Dovecot: each organisation's gateway fetches into its own tasks by its own rules; a gateway's
address is one organisation's; an organisation's servers are public addresses only unless
the provider says otherwise ([fetch] private_servers); removing an organisation stops its
gateways first."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from prostoy_mail.auth.password_hashes import hash_password
from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.errors import NotFound
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import QUICK_FETCH, config_text
from tests.dovecot import Dovecot
from tests.integration.conftest import MailServer
from tests.waiting import until

pytestmark = pytest.mark.integration

USERS = {"info@example.org": "pw-main", "acme@example.org": "pw-acme", "beta@example.org": "pw-beta",
         "spare@example.org": "pw-spare"}


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot(USERS).start()
    yield server
    server.stop()


def server_entry(dovecot: Dovecot) -> dict[str, Any]:
    return {"name": "dovecot.test", "imap": f"127.0.0.1:{dovecot.ports['imap']}", "fetch_security": "none",
            "ssl": False}


def gateway_entry(email: str) -> dict[str, Any]:
    return {"email": email, "server": "dovecot.test", "login": email, "password": USERS[email]}


def invoices_rule(email: str) -> dict[str, Any]:
    return {"name": "invoices", "gateway": email, "subject": "invoice", "action": "comment", "task": "Sales/Invoices"}


def file_text(dovecot: Dovecot, *, private_servers: bool) -> str:
    return config_text(listen={}, fetch={**QUICK_FETCH, "private_servers": private_servers},
                       servers=[server_entry(dovecot)], gateways=[gateway_entry("info@example.org")],
                       rules=[invoices_rule("info@example.org")])


def organisation(store: SqliteStore, slug: str, owner: str, gateway: str, dovecot: Dovecot) -> int:
    """An organisation in the store with the same project, task and rule names as the others."""
    org_id = store.add_organisation(slug, slug.title()).id
    with store.acting_for(org_id):
        store.add_user(owner, owner, hash_password(f"{owner}-pw"), is_owner=True)
        store.add_project("Sales")
        store.add_task("Sales", "Invoices")
    store.replace_org_entries(org_id, {"servers": [server_entry(dovecot)], "gateways": [gateway_entry(gateway)],
                                       "rules": [invoices_rule(gateway)]})
    return org_id


@pytest.fixture
async def server(tmp_path: Path, dovecot: Dovecot) -> AsyncIterator[MailServer]:
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(file_text(dovecot, private_servers=True))  # (Dovecot is on loopback)
    store = SqliteStore(tmp_path / "store.db")
    store.add_user("ivanov", "Иван", hash_password("iv-pw"), is_owner=True)
    store.add_project("Sales")
    store.add_task("Sales", "Invoices")
    organisation(store, "acme", "boss", "acme@example.org", dovecot)
    organisation(store, "beta", "chief", "beta@example.org", dovecot)
    store.close()
    daemon = Daemon(load_config(config))
    await daemon.start()
    try:
        yield MailServer(daemon, config, tmp_path / "store.db")
    finally:
        await daemon.stop()


def subjects(server: MailServer, org: str, task: str) -> list[str]:
    store = SqliteStore(server.store_path)
    try:
        store.org_id = store.organisation(org).id
        found = store.task_for_source(task) if task.startswith("gateway:") else store.resolve_task(task)
        return [] if found is None else [c.subject for c in store.list_comments(found.id)]
    finally:
        store.close()


def last_error(server: MailServer, email: str) -> str:
    store = SqliteStore(server.store_path)
    try:
        state = store.gateway_state(email)
        return (state.last_error or "") if state is not None else ""
    finally:
        store.close()


def message(subject: str) -> bytes:
    return f"From: client@client.ru\r\nTo: someone@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


async def watching(server: MailServer, *emails: str) -> None:
    """Each gateway's watcher has finished a check (so mail from now on is new mail to it)."""
    fetchers = server.daemon.fetchers
    assert fetchers is not None
    await until(lambda: all(fetchers.checks(email) for email in emails))


async def test_each_organisations_gateway_fetches_into_its_own_tasks(server: MailServer, dovecot: Dovecot) -> None:
    await watching(server, "info@example.org", "acme@example.org", "beta@example.org")
    dovecot.append("acme@example.org", message("invoice 7 for acme"))
    dovecot.append("beta@example.org", message("hello beta"))
    dovecot.append("info@example.org", message("invoice 8 for main"))
    # each routed by its own organisation's rule "invoices" into its own "Sales/Invoices"
    await until(lambda: subjects(server, "acme", "Sales/Invoices") == ["invoice 7 for acme"])
    await until(lambda: subjects(server, "main", "Sales/Invoices") == ["invoice 8 for main"])
    await until(lambda: subjects(server, "beta", "gateway:beta@example.org") == ["hello beta"])  # (its fallback)
    assert subjects(server, "beta", "Sales/Invoices") == []
    # another organisation's gateway task is not found when acting for this one
    with pytest.raises(NotFound):
        subjects(server, "beta", "gateway:acme@example.org")
    # the metrics count per organisation, never naming an address or a rule
    metrics = generate_latest(server.daemon.metrics.registry).decode()
    for slug in ("main", "acme", "beta"):
        assert f'prostoy_mail_fetched_messages_total{{organisation="{slug}"}} 1.0' in metrics
        assert f'prostoy_mail_messages_accepted_total{{organisation="{slug}",via="gateway"}} 1.0' in metrics
    assert 'prostoy_mail_messages_routed_total{by="rule",organisation="acme"} 1.0' in metrics
    assert 'prostoy_mail_messages_routed_total{by="fallback",organisation="beta"} 1.0' in metrics
    assert "@example.org" not in metrics and "invoices" not in metrics


async def test_a_gateways_address_is_one_organisations(server: MailServer) -> None:
    store = SqliteStore(server.store_path)
    try:
        beta = store.organisation("beta").id
        entries = store.org_entries(beta)
        store.replace_org_entries(beta, {**entries, "gateways": [*entries["gateways"],
                                                                 gateway_entry("acme@example.org")]})
        store.record_change("organisation", beta)
    finally:
        store.close()
    await until(lambda: "beta" in (server.daemon.running.organisations_refused if server.daemon.running else {}))
    assert server.daemon.running is not None
    refused = server.daemon.running.organisations_refused["beta"]
    assert "acme@example.org is connected by another organisation" in refused
    fetchers = server.daemon.fetchers
    assert fetchers is not None
    assert "acme@example.org" in fetchers.watchers  # (still acme's, undisturbed)


async def test_organisations_servers_are_public_only_unless_allowed(server: MailServer, dovecot: Dovecot) -> None:
    await watching(server, "acme@example.org")
    server.config_path.write_text(file_text(dovecot, private_servers=False))
    await server.daemon.reload()
    # an organisation in the store may not reach a loopback address; the file's organisation may
    await until(lambda: "private or reserved address" in last_error(server, "acme@example.org"))
    assert "127.0.0.1" in last_error(server, "acme@example.org")
    dovecot.append("info@example.org", message("invoice 9 for main"))
    await until(lambda: "invoice 9 for main" in subjects(server, "main", "Sales/Invoices"))
    assert last_error(server, "info@example.org") == ""


async def test_removing_an_organisation_stops_its_gateways_and_forgets_their_state(server: MailServer) -> None:
    await watching(server, "beta@example.org")
    store = SqliteStore(server.store_path)
    try:
        beta = store.organisation("beta").id
        store.replace_org_entries(beta, {})
        change = store.record_change("organisation", beta)
    finally:
        store.close()
    fetchers = server.daemon.fetchers
    assert fetchers is not None
    await until(lambda: "beta@example.org" not in fetchers.watchers)
    assert server.daemon.change_id >= change
    assert "acme@example.org" in fetchers.watchers
    store = SqliteStore(server.store_path)
    try:
        assert store.gateway_state("beta@example.org") is not None
        store.remove_organisation(beta)
        assert store.gateway_state("beta@example.org") is None
        assert store.gateway_state("acme@example.org") is not None
    finally:
        store.close()
