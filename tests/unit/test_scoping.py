"""Every store query that reads or writes an organisation's rows is scoped to it, and a
query whose scoping is taken away is caught.

The queries are found in the store's source (each method that asks `_scoped` for its
condition), so a new one is checked without being listed here. For each, the test takes
the scoping away from that one method alone and runs the same checks of what organisation
"beta" can reach of organisation "main" (both with the same user, project and task names):
at least one check must see main's rows. If none does, the checks do not cover that query.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import prostoy_mail.store as store_package
from prostoy_mail.errors import ProstoyMailError
from prostoy_mail.store.ports import CommentTarget, FetchedKey, MessageRecord
from prostoy_mail.store.sqlite import SqliteStore

pytestmark = pytest.mark.unit


def scoped_methods() -> list[str]:
    """The store's methods that call `self._scoped(...)`."""
    found = []
    for path in sorted(Path(store_package.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name != "_scoped" and any(
                    isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "_scoped" for call in ast.walk(node)):
                found.append(node.name)
    return found


@dataclass
class World:
    store: SqliteStore
    beta: int
    main_task: int
    beta_task: int
    main_projects: set[int]
    main_comment: int
    main_outbound: int
    main_quarantined: int


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = SqliteStore(tmp_path / "store.db")
    main = store.file_organisation_id()
    beta = store.add_organisation("beta", "Beta").id
    store.add_user("ivanov", "Ivanov", None, True)
    store.add_project("Sales")
    store.add_project("Main only")
    main_task = store.add_task("Sales", "Invoices").id
    main_projects = {p.id for p in store.list_projects()}
    with store.acting_for(beta):
        store.add_user("ivanov2", "Ivanov", None, True)
        store.add_project("Sales")
        beta_task = store.add_task("Sales", "Invoices").id
    with store.transaction():
        stored = store.store_message(MessageRecord(raw=b"Subject: x\r\n\r\nx\r\n", direction="out", source="smtp"),
                                     [CommentTarget(main_task, ("task",))])
        outbound = store.enqueue_outbound(message_db_id=stored.id, task_id=main_task, sender="s@example.test",
                                          envelope_from="s@example.test", route="relay", scope="mailbox:s",
                                          submitted_by="", recipients=[("a@far.example", False)],
                                          max_queue_time=3600, upload_sent=False, org_id=main)
    store.ensure_source_task("gateway:main@far.example", "gateway", "Mail", "main@far.example", None)
    quarantined = store.quarantine(FetchedKey("main@far.example", "INBOX/1", "7"), b"raw", "broken", 3)
    yield World(store, beta, main_task, beta_task, main_projects, stored.comment_ids[0], outbound, quarantined)
    store.close()


def _reaches(call: Callable[[], object]) -> bool:
    """Whether the call gets at the row (a "not there" error: it does not)."""
    try:
        call()
    except ProstoyMailError:
        return False
    return True


def leaks(w: World) -> list[str]:
    """What organisation beta's connection can reach of main's; the destructive checks last."""
    s = w.store
    checks: dict[str, Callable[[], bool]] = {
        "find_user": lambda: s.find_user("ivanov") is not None,
        "list_users": lambda: "ivanov" in {u.login for u in s.list_users()},
        "list_projects": lambda: bool({p.id for p in s.list_projects()} & w.main_projects),
        "find_project": lambda: s.find_project("Main only") is not None,  # (by name: (org_id, name))
        "get_task": lambda: _reaches(lambda: s.get_task(w.main_task)),
        "resolve_task": lambda: not _reaches(lambda: s.resolve_task("Sales/Invoices"))
        or s.resolve_task("Sales/Invoices").id != w.beta_task,
        "list_tasks": lambda: w.main_task in {t.id for t in s.list_tasks()},
        "get_comment": lambda: _reaches(lambda: s.get_comment(w.main_comment)),
        "list_comments": lambda: _reaches(lambda: s.list_comments(w.main_task)),
        "comment_keys_page": lambda: _reaches(lambda: s.comment_keys_page(w.main_task, None, None, 50)),
        "comments_by_id": lambda: bool(s.comments_by_id([w.main_comment])),
        "list_quarantine": lambda: w.main_quarantined in {q.id for q in s.list_quarantine()},
        "quarantined_raw": lambda: _reaches(lambda: s.quarantined_raw(w.main_quarantined)),
        "get_outbound": lambda: _reaches(lambda: s.get_outbound(w.main_outbound)),
        "list_outbound": lambda: w.main_outbound in {e.id for e in s.list_outbound()},
        "retry_outbound": lambda: s.retry_outbound() > 0,  # (beta has nothing queued)
        "drop_outbound": lambda: _reaches(lambda: s.drop_outbound(w.main_outbound)),
        "delete_comment": lambda: _reaches(lambda: s.delete_comment(w.main_comment)),
        "drop_quarantined": lambda: _reaches(lambda: s.drop_quarantined(w.main_quarantined)),
    }
    with s.acting_for(w.beta):
        return [name for name, check in checks.items() if check()]


def test_an_organisation_reaches_none_of_anothers_rows(world: World) -> None:
    assert scoped_methods(), "no scoped query found: has _scoped been renamed?"
    assert leaks(world) == []


@pytest.mark.parametrize("method", scoped_methods())
def test_a_query_without_its_scoping_is_caught(world: World, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    scoped = SqliteStore._scoped

    def unscoped_in_one_method(self: SqliteStore, column: str) -> tuple[str, tuple[int, ...]]:
        if sys._getframe(1).f_code.co_name == method:
            return "1", ()  # the mutation: this one query is no longer scoped
        return scoped(self, column)

    monkeypatch.setattr(SqliteStore, "_scoped", unscoped_in_one_method)
    assert leaks(world), f"{method} without its scoping: no check noticed"
