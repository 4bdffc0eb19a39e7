"""`new_task` rules and conversations: the router (pure, table-driven), the title, and the
intake on the in-memory store (who gets into a conversation, exactly one task per message,
automatic mail, the hourly limit per sender)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prostoy_mail.intake import Inbound, accept_now
from prostoy_mail.mail.tokens import TaskTokens
from prostoy_mail.routing.index import RuleList
from prostoy_mail.routing.router import NewTask, RoutingTable, Scope, route
from prostoy_mail.routing.rules import GLOBAL, Condition, Facts, RoutingRule
from prostoy_mail.routing.task_title import MAX_TITLE, NO_SUBJECT, task_title
from tests.memory_store import MemoryIntakeStore

SUPPORT_PROJECT, SALES_TASK, INVOICES_TASK = 7, 10, 20
SALES = "mailbox:sales"
TOKENS = TaskTokens(b"k" * 32)


def opens(name: str, scope: str = GLOBAL, *, subject: str = "", stop: bool = False,
          assign_to: str | None = None) -> RoutingRule:
    conditions = tuple(c for c in (Condition.of("subject", subject.split(",")),) if c.items)
    return RoutingRule(name, scope, conditions, "new_task", None, assign_to, False, stop, project_id=SUPPORT_PROJECT)


def comments(name: str, task: int, *, subject: str = "", stop: bool = False) -> RoutingRule:
    conditions = tuple(c for c in (Condition.of("subject", subject.split(",")),) if c.items)
    return RoutingRule(name, GLOBAL, conditions, "comment", task, None, False, stop)


def ignores(name: str, subject: str) -> RoutingRule:
    return RoutingRule(name, GLOBAL, (Condition.of("subject", [subject]),), "ignore")


def table(*rules: RoutingRule, limit: int = 20) -> RoutingTable:
    return RoutingTable(RuleList([r for r in rules if r.scope == GLOBAL]),
                        {SALES: Scope(SALES, RuleList([r for r in rules if r.scope == SALES]), SALES_TASK)},
                        limit, opens_tasks=any(r.action == "new_task" for r in rules))


HELP = Facts.of("Помогите с заказом", "client@far.example", ["sales@example.test"])
AUTO = Facts.of("Помогите с заказом", "client@far.example", ["sales@example.test"], "auto-reply")
BOUNCE = Facts.of("Помогите с заказом", "mailer-daemon@far.example", ["sales@example.test"], "bounce")


@pytest.mark.parametrize(
    ("rules", "facts", "may_open", "targets", "new_tasks"),
    [
        # a matching new_task rule asks for one task, and nothing else happens to the message
        ((opens("support"),), HELP, True, [], [NewTask("support", SUPPORT_PROJECT)]),
        # the assignee goes with it
        ((opens("support", assign_to="petrov"),), HELP, True, [], [NewTask("support", SUPPORT_PROJECT, "petrov")]),
        # a rule that does not match opens nothing: the fallback as ever
        ((opens("support", subject="invoice"),), HELP, True, [(SALES_TASK, ("fallback",))], []),
        # new_task and comment both match (no stop): one new task plus the comment
        ((opens("support"), comments("all", INVOICES_TASK)), HELP, True, [(INVOICES_TASK, ("all",))],
         [NewTask("support", SUPPORT_PROJECT)]),
        # stop on the new_task rule: later rules are not checked
        ((opens("support", stop=True), comments("all", INVOICES_TASK)), HELP, True, [],
         [NewTask("support", SUPPORT_PROJECT)]),
        # two new_task rules: a task each (one message never opens two through the same rule)
        ((opens("support"), opens("orders", subject="заказ")), HELP, True, [],
         [NewTask("support", SUPPORT_PROJECT), NewTask("orders", SUPPORT_PROJECT)]),
        # ignore after it wins: nothing at all
        ((opens("support"), ignores("spam", "помогите")), HELP, True, [], []),
        # a mailbox's own new_task rule
        ((opens("support", SALES),), HELP, True, [], [NewTask("support", SUPPORT_PROJECT)]),
        # auto-replies and bounces never open a task: the fallback, with the reason beside it
        ((opens("support"),), AUTO, True, [(SALES_TASK, ("fallback", "support: no new task (auto-reply)"))], []),
        ((opens("support"),), BOUNCE, True, [(SALES_TASK, ("fallback", "support: no new task (bounce)"))], []),
        # a sender over its hourly number of new tasks: the fallback, with a note
        ((opens("support"),), HELP, False,
         [(SALES_TASK, ("fallback", "support: no new task (sender's hourly limit of new tasks)"))], []),
        # ...while its comment rules still apply
        ((opens("support"), comments("all", INVOICES_TASK)), HELP, False,
         [(INVOICES_TASK, ("all",)),
          (SALES_TASK, ("fallback", "support: no new task (sender's hourly limit of new tasks)"))], []),
    ],
)
def test_new_task_rules(rules: tuple[RoutingRule, ...], facts: Facts, may_open: bool,
                        targets: list[tuple[int, tuple[str, ...]]], new_tasks: list[NewTask]) -> None:
    decision = route(facts, table(*rules), (SALES,), may_open_tasks=may_open)
    assert [(t.task_id, t.routed_by) for t in decision.targets] == targets
    assert list(decision.new_tasks) == new_tasks


def test_a_conversation_is_routed_like_a_reply_without_rules() -> None:
    decision = route(HELP, table(opens("support")), (SALES,), 55, reply_by="conversation")
    assert [(t.task_id, t.routed_by) for t in decision.targets] == [(55, ("conversation",))]
    assert decision.new_tasks == () and decision.reply


@pytest.mark.parametrize(
    ("subject", "title"),
    [
        ("Помогите с заказом", "Помогите с заказом"),
        ("Re: Fwd: Счёт № 7", "Счёт № 7"),
        ("RE[2]: Ответ: Отв:  вопрос по   доставке", "вопрос по доставке"),
        ("Пересл: FW: AW: WG: накладная", "накладная"),
        ("Ресторан: меню на неделю", "Ресторан: меню на неделю"),  # a colon that is not a prefix stays
        ("", NO_SUBJECT),
        ("Re:   ", NO_SUBJECT),
        ("строка\r\n\tвторая\x00", "строка вторая"),
    ],
)
def test_a_task_is_titled_by_its_subject(subject: str, title: str) -> None:
    assert task_title(subject) == title


def test_a_long_subject_is_cut_at_a_word() -> None:
    title = task_title("слово " * 100)
    assert len(title) <= MAX_TITLE and title.endswith("слово…")


# --- the intake on the in-memory store ---------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> MemoryIntakeStore:
    return MemoryIntakeStore(tmp_path / "files", tasks={SALES_TASK, INVOICES_TASK})


def mail(subject: str, sender: str = "client@far.example", extra: str = "", message_id: str | None = None) -> bytes:
    mid = f"Message-ID: <{message_id}>\r\n" if message_id else ""
    return (f"From: {sender}\r\nTo: sales@example.test\r\nSubject: {subject}\r\n{mid}{extra}\r\nbody\r\n").encode()


def accept(store: MemoryIntakeStore, raw: bytes, t: RoutingTable) -> list[tuple[int, tuple[str, ...]]]:
    inbound = Inbound(raw, "smtp", (SALES,), ("sales@example.test",), "x@far.example")
    with store.transaction():
        decision = accept_now(store, TOKENS, t, inbound).decision
    return [(target.task_id, target.routed_by) for target in decision.targets]


def test_a_customer_opens_a_task_and_the_conversation_stays_in_it(store: MemoryIntakeStore) -> None:
    rules = table(opens("support"))
    [(task, by)] = accept(store, mail("Re: Помогите с заказом", message_id="first@client"), rules)
    assert by == ("support",) and store.conversations[task].title == "Помогите с заказом"
    assert store.conversations[task].project_id == SUPPORT_PROJECT
    # the customer writes again, referring to their first message: the same task
    again = mail("Ещё вопрос", extra="In-Reply-To: <first@client>\r\n", message_id="second@client")
    assert accept(store, again, rules) == [(task, ("conversation",))]
    # someone the task wrote to (task send) answers with References: the same task
    store.add_participants(task, ["Colleague@Far.Example"])
    answer = mail("Re: Ещё вопрос", "colleague@far.example", "References: <first@client> <second@client>\r\n")
    assert accept(store, answer, rules) == [(task, ("conversation",))]
    # a stranger who quotes the Message-ID (it was on every Cc'd copy) does not get in: a new task
    stranger = mail("Re: Помогите с заказом", "stranger@elsewhere.example", "In-Reply-To: <first@client>\r\n")
    [(other, by)] = accept(store, stranger, rules)
    assert other != task and by == ("support",)
    assert store.conversations[other].title == "Помогите с заказом (2)"  # unique within the project


def test_the_same_message_delivered_twice_opens_one_task(store: MemoryIntakeStore) -> None:
    rules = table(opens("support"))
    first = accept(store, mail("Заказ", message_id="once@client"), rules)
    again = accept(store, mail("Заказ", message_id="once@client", extra="X-Via: another gateway\r\n"), rules)
    assert first == again and len(store.conversations) == 1


def test_auto_replies_never_open_a_task_but_join_the_conversation(store: MemoryIntakeStore) -> None:
    rules = table(opens("support"))
    [(task, _)] = accept(store, mail("Заказ", message_id="order@client"), rules)
    away = "Auto-Submitted: auto-replied\r\n"
    assert accept(store, mail("Out of office", extra=away), rules) == [
        (SALES_TASK, ("fallback", "support: no new task (auto-reply)"))]
    assert accept(store, mail("Out of office", extra=away + "In-Reply-To: <order@client>\r\n"), rules) == [
        (task, ("conversation",))]
    assert len(store.conversations) == 1


def test_a_flood_from_one_sender_is_capped_per_hour(store: MemoryIntakeStore) -> None:
    rules = table(opens("support"), limit=3)
    routed = [accept(store, mail(f"loop {n}", message_id=f"loop{n}@bot"), rules) for n in range(5)]
    assert [by for [(_, by)] in routed[:3]] == [("support",)] * 3
    assert routed[3:] == [[(SALES_TASK, ("fallback", "support: no new task (sender's hourly limit of new tasks)"))]] * 2
    assert len(store.conversations) == 3
    assert accept(store, mail("hello", "other@far.example"), rules)[0][1] == ("support",)  # others go on


def test_a_failure_after_opening_leaves_no_task(store: MemoryIntakeStore) -> None:
    rules = table(opens("support"))

    def broken(*args: object) -> tuple[int, ...]:
        raise OSError("disk")

    store.insert_comments = broken  # type: ignore[method-assign]
    with pytest.raises(OSError):
        accept(store, mail("Заказ", message_id="x@client"), rules)
    assert store.conversations == {} and store.messages == {}
