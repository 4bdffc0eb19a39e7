"""A change of one organisation's settings rebuilds that organisation alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from prostoy_mail.config.load import parse_config
from prostoy_mail.config.model import Config
from prostoy_mail.running_config import RunningConfig
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import config_text

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "store.db")
    yield s
    s.close()


def organisation(store: SqliteStore, slug: str, mailbox: str) -> int:
    org_id = store.add_organisation(slug, slug).id
    with store.acting_for(org_id):
        store.add_project("Sales")
        store.add_task("Sales", "Invoices")
    store.replace_org_entries(org_id, {"mailboxes": [{"login": mailbox}], "rules": [
        {"name": "invoices", "subject": "invoice", "action": "comment", "task": "Sales/Invoices"}]})
    return org_id


def test_only_the_changed_organisations_are_built_again(store: SqliteStore, tmp_path: Path) -> None:
    config: Config = parse_config(config_text(mailboxes=["sales"]), tmp_path / "pm.toml")
    acme, beta, gamma = (organisation(store, slug, f"{slug}-desk") for slug in ("acme", "beta", "gamma"))
    parsed: dict[str, Config] = {}
    first = RunningConfig.build(config, store, 1, parsed)
    assert set(first.parts) == {acme, beta, gamma}

    store.replace_org_entries(beta, {"mailboxes": [{"login": "beta-desk"}, {"login": "beta-orders"}]})
    store.remove_organisation(gamma)
    second = RunningConfig.build(config, store, 2, parsed, first, {beta, gamma})
    assert second.parts[acme] is first.parts[acme]  # taken over, not read, checked and compiled again
    assert [m.login for m in second.parts[beta].config.mailboxes] == ["beta-desk", "beta-orders"]
    assert gamma not in second.parts and "mailbox:gamma-desk" not in second.intake.table.scopes
    assert {"sales", "acme-desk", "beta-desk", "beta-orders"} == set(second.smtp.mailboxes)
    assert second.intake.table.scopes["mailbox:beta-orders"].org == beta
    assert second.intake.table.scopes["mailbox:acme-desk"] is first.intake.table.scopes["mailbox:acme-desk"]

    # an organisation whose new settings cannot be applied is left out, the rest go on as they were
    store.replace_org_entries(acme, {"mailboxes": [{"login": "sales"}]})  # (the file's organisation's)
    third = RunningConfig.build(config, store, 3, parsed, second, {acme})
    assert "sales@example.test belongs to another organisation" in third.organisations_refused["acme"]
    assert acme not in third.parts and third.parts[beta] is second.parts[beta]
    store.replace_org_entries(acme, {"mailboxes": [{"login": "acme-desk"}]})
    fourth = RunningConfig.build(config, store, 4, parsed, third, {acme})
    assert fourth.organisations_refused == {} and acme in fourth.parts

    # a changed file (or no list of changes) builds everything
    changed_file = parse_config(config_text(mailboxes=["sales", "info"]), tmp_path / "pm.toml")
    fifth = RunningConfig.build(changed_file, store, 5, parsed, fourth, {acme})
    assert fifth.parts[beta] is not fourth.parts[beta] and "info" in fifth.smtp.mailboxes


def test_the_change_log_names_the_organisations_changed(store: SqliteStore) -> None:
    acme = store.add_organisation("acme", "Acme").id
    beta = store.add_organisation("beta", "Beta").id
    first = store.record_change("organisation", acme)
    store.record_change("organisation", beta)
    last = store.record_change("organisation", acme)
    assert store.changed_organisations(first - 1, last) == {acme, beta}
    file_change = store.record_change("configuration", store.file_organisation_id())
    assert store.changed_organisations(last, file_change) is None  # the file: everything again
    with store.transaction() as db:  # (the log keeps its newest rows only: one the daemon missed is gone)
        db.execute("DELETE FROM changes WHERE id = ?", (first,))
    assert store.changed_organisations(first - 1, last) is None  # everything again
