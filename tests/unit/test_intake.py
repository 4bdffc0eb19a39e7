"""The inbound funnel on an in-memory store (tests/memory_store.py): routing into comments,
replies, fetched mail once, the duplicate window — whatever adapter is behind the role."""

from __future__ import annotations

from pathlib import Path

import pytest

from prostoy_mail.intake import Fetch, Inbound, accept_now
from prostoy_mail.mail.tokens import TaskTokens
from prostoy_mail.routing.index import RuleList
from prostoy_mail.routing.router import RoutingTable, Scope
from prostoy_mail.routing.rules import GLOBAL, Condition, RoutingRule
from prostoy_mail.store.ports import FetchedKey
from prostoy_mail.store.roles import IntakeStore
from tests.memory_store import MemoryIntakeStore

SALES_TASK, INVOICES_TASK, THREAD_TASK = 10, 20, 30
TOKENS = TaskTokens(b"k" * 32)
TABLE = RoutingTable(
    RuleList([RoutingRule("invoices", GLOBAL, (Condition.of("subject", ["invoice"]),), "comment", INVOICES_TASK,
                          None, False, True)]),
    {"mailbox:sales": Scope("mailbox:sales", RuleList([]), SALES_TASK)})


@pytest.fixture
def store(tmp_path: Path) -> MemoryIntakeStore:
    memory = MemoryIntakeStore(tmp_path / "files", tasks={SALES_TASK, INVOICES_TASK, THREAD_TASK})
    assert isinstance(memory, IntakeStore)  # (the role's methods, by name)
    return memory


def mail(subject: str, extra: str = "") -> bytes:
    return f"From: a@client.ru\r\nTo: sales@example.test\r\nSubject: {subject}\r\n{extra}\r\nbody\r\n".encode()


def accept(store: MemoryIntakeStore, raw: bytes, window: float = 0.0, fetch: Fetch | None = None) -> tuple[int, ...]:
    inbound = Inbound(raw, "smtp" if fetch is None else "box@gw.test", ("mailbox:sales",), ("sales@example.test",),
                      "a@client.ru", fetch=fetch)
    with store.transaction():
        return accept_now(store, TOKENS, TABLE, inbound, window).comment_ids


def test_rules_and_fallback_make_comments_in_the_store(store: MemoryIntakeStore) -> None:
    accept(store, mail("invoice 7"))
    accept(store, mail("hello"))
    assert [(task, by) for task, _, by in store.comments.values()] == [
        (INVOICES_TASK, ("invoices",)), (SALES_TASK, ("fallback",))]
    assert {login for login, _ in store.mailboxes} == {"sales"}


def test_a_reply_goes_to_the_task_that_sent_the_original(store: MemoryIntakeStore) -> None:
    store.sent["orig@prostoy"] = THREAD_TASK
    accept(store, mail("Re: our offer", "In-Reply-To: <orig@prostoy>\r\n"))
    [(task, _, by)] = store.comments.values()
    assert (task, by) == (THREAD_TASK, ("reply",))


def test_the_same_bytes_within_the_window_are_counted_not_stored(store: MemoryIntakeStore) -> None:
    raw = mail("twice")
    assert accept(store, raw, window=86400)
    assert accept(store, raw, window=86400) == ()
    assert len(store.messages) == 1 and store.messages[1].times_received == 2
    accept(store, raw, window=0)  # off: stored again
    assert len(store.messages) == 2


def test_a_fetched_message_is_recorded_with_its_key(store: MemoryIntakeStore) -> None:
    key = FetchedKey("box@gw.test", "INBOX/7", "42")
    accept(store, mail("fetched"), fetch=Fetch(key, keep_on_server=True, mark_read=True, position=42))
    assert store.fetched[key] == (1, "seen")
    with pytest.raises(ValueError, match="fetched twice"):  # and the transaction keeps nothing of it
        accept(store, mail("fetched again"), fetch=Fetch(key, keep_on_server=True, mark_read=True))
    assert len(store.messages) == 1
