"""An organisation in the store is edited as the file is: the same edits of a ConfigDocument
(the file) and of an OrganisationDocument (the store's entries) give the same entries and the
same settings; the store writes only the entries that changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prostoy_mail.config.edit import ConfigDocument, SettingsDocument
from prostoy_mail.config.load import parse_config
from prostoy_mail.config.model import Endpoint
from prostoy_mail.config.organisation import OrganisationDocument
from prostoy_mail.errors import NotFound
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import config_text

pytestmark = pytest.mark.unit


def edit(doc: SettingsDocument) -> None:
    doc.append("servers", {"name": "own.example", "imap": Endpoint("imap.own.example", 993), "smtp": None})
    doc.append("mailboxes", {"login": "sales", "users": ["ivanov"]})
    for number in range(4):
        doc.append("rules", {"name": f"r{number}", "subject": [f"s{number}"], "action": "comment", "task": 7})
    doc.update("rules", doc.index_of("rules", "name", "R2"), {"subject": ["changed"], "stop": True, "task": None,
                                                               "action": "ignore"})
    doc.move("rules", 3, 0)
    doc.remove("rules", doc.index_of("rules", "name", "r0"))
    doc.update("mailboxes", 0, {"users": None, "owner": "ivanov"})


def test_the_file_and_the_store_are_edited_alike(tmp_path: Path) -> None:
    path = tmp_path / "pm.toml"
    path.write_text(config_text())
    file_doc = ConfigDocument(path)
    written: list[dict[str, list[dict[str, Any]]]] = []
    file_config = parse_config(path.read_text(), path)
    org_doc = OrganisationDocument(file_config, "acme", {}, written.append)
    edit(file_doc)
    edit(org_doc)
    for section in ("servers", "mailboxes", "rules"):
        assert org_doc.entries(section) == file_doc.entries(section), section
    assert [r["name"] for r in org_doc.entries("rules")] == ["r3", "r1", "r2"]
    from_file, from_store = file_doc.save(), org_doc.save()
    assert from_store.rules == from_file.rules and from_store.mailboxes == from_file.mailboxes
    assert written == [{"servers": org_doc.entries("servers"), "mailboxes": org_doc.entries("mailboxes"),
                        "rules": org_doc.entries("rules")}]
    with pytest.raises(NotFound, match='organisation acme: no \\[\\[rules\\]\\] with name = "r0"'):
        org_doc.index_of("rules", "name", "r0")


def test_the_store_writes_only_the_entries_that_changed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    acme = store.add_organisation("acme", "Acme").id
    rules = [{"name": f"r{n}", "subject": [f"s{n}"], "action": "ignore"} for n in range(100)]
    store.replace_org_entries(acme, {"rules": rules, "mailboxes": [{"login": "sales"}]})
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    store.replace_org_entries(acme, {"rules": [*rules, {"name": "new", "action": "ignore"}],
                                     "mailboxes": [{"login": "sales"}]})
    store.db.set_trace_callback(None)
    writes = [s for s in statements if s.startswith(("INSERT", "DELETE", "UPDATE"))]
    assert len(writes) == 1 and "INSERT INTO org_entries" in writes[0]
    store.replace_org_entries(acme, {"rules": [rules[1], {"name": "new", "action": "ignore"}]})
    assert store.org_entries(acme) == {"rules": [rules[1], {"action": "ignore", "name": "new"}]}
    store.close()
