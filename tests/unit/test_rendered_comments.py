"""A page of comments from the kept renderings is byte for byte what rendering the store's page
gives, after a message comes again, a comment is deleted, and renderings are pushed out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from prostoy_mail.api.rendered_comments import RenderedComments
from prostoy_mail.errors import NotFound
from prostoy_mail.store.ports import Comment, CommentTarget, MessageRecord
from prostoy_mail.store.sqlite import SqliteStore
from prostoy_mail.views import comment_json

pytestmark = pytest.mark.unit


class CountingReader:
    """The store, counting the comments read in full."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.read: list[int] = []

    def comment_keys_page(self, task_id: int, before: int | None, since: str | None,
                          limit: int) -> list[tuple[int, int]]:
        return self.store.comment_keys_page(task_id, before, since, limit)

    def comments_by_id(self, ids: list[int]) -> list[Comment]:
        self.read += ids
        return self.store.comments_by_id(ids)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    store.add_project("Sales")
    yield store
    store.close()


def add_comment(store: SqliteStore, task: int, number: int) -> int:
    text = "тело письма\n" * (number % 5)
    stored = store.store_message(MessageRecord(raw=f"Subject: {number}\r\n\r\n{text}".encode(), direction="in",
                                               source="smtp", subject=f"счёт {number}", text=text,
                                               to=(f"to{number}@example.com",)), [CommentTarget(task, ("r",))])
    return stored.comment_ids[0]


def expected(store: SqliteStore, task: int, before: int | None = None, since: str | None = None,
             limit: int = 50) -> bytes:
    return orjson.dumps([comment_json(c) for c in store.comments_page(task, before, since, limit)])


def test_pages_are_what_rendering_the_stores_page_gives(store: SqliteStore) -> None:
    task = store.add_task("Sales", "Invoices").id
    ids = [add_comment(store, task, n) for n in range(30)]
    reader, rendered = CountingReader(store), RenderedComments()
    for before, limit in ((None, 50), (None, 10), (ids[20], 10), (ids[3], 50), (ids[0], 5)):
        assert rendered.page(reader, task, before, None, limit) == expected(store, task, before, None, limit)
    assert sorted(reader.read) == ids  # each comment read once
    reader.read.clear()
    assert rendered.page(reader, task, None, None, 50) == expected(store, task)
    assert reader.read == []  # all kept
    assert orjson.loads(rendered.page(reader, task, None, "2999-01-01T00:00:00+00:00", 50)) == []


def test_a_message_received_again_and_a_deleted_comment_are_seen(store: SqliteStore) -> None:
    task = store.add_task("Sales", "Invoices").id
    ids = [add_comment(store, task, n) for n in range(5)]
    reader, rendered = CountingReader(store), RenderedComments()
    rendered.page(reader, task, None, None, 50)
    with store.transaction():
        store.received_again(store.get_comment(ids[2]).message_db_id)
    store.delete_comment(ids[4])
    reader.read.clear()
    page = rendered.page(reader, task, None, None, 50)
    assert page == expected(store, task)
    assert reader.read == [ids[2]]  # the one received again, read anew; the deleted one left out
    assert [c["times_received"] for c in orjson.loads(page)] == [1, 2, 1, 1]


def test_renderings_stay_within_their_budget(store: SqliteStore) -> None:
    task = store.add_task("Sales", "Invoices").id
    for n in range(40):
        add_comment(store, task, n)
    reader = CountingReader(store)
    one = len(orjson.dumps(comment_json(store.comments_page(task, None, None, 1)[0])))
    rendered = RenderedComments(budget=10 * one)
    assert rendered.page(reader, task, None, None, 50) == expected(store, task)
    assert 0 < rendered.size <= rendered.budget
    assert rendered.page(reader, task, None, None, 50) == expected(store, task)  # (read again, pushed out again)


def test_another_organisations_task_is_not_found(store: SqliteStore) -> None:
    task = store.add_task("Sales", "Invoices").id
    add_comment(store, task, 1)
    beta = store.add_organisation("beta", "Beta").id
    with store.acting_for(beta), pytest.raises(NotFound):
        RenderedComments().page(store, task, None, None, 50)


def test_a_page_is_read_from_an_index_not_sorted(store: SqliteStore) -> None:
    task = store.add_task("Sales", "Invoices").id
    for n in range(3):
        add_comment(store, task, n)
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    store.comment_keys_page(task, None, None, 50)
    store.comments_page(task, 10, None, 50)
    store.db.set_trace_callback(None)
    pages = [s for s in statements if "ORDER BY c.id DESC" in s]
    assert len(pages) == 2
    for statement in pages:
        plan = " ".join(row[3] for row in store.db.execute("EXPLAIN QUERY PLAN " + statement))
        assert "comments_by_task" in plan and "TEMP B-TREE" not in plan, plan
