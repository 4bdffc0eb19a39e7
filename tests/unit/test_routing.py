"""The router, table-driven and in-process: the order of SPEC "Routing of inbound mail"."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prostoy_mail.routing.index import RuleList
from prostoy_mail.routing.router import RoutingTable, Scope, route
from prostoy_mail.routing.rules import GLOBAL, Condition, Facts, RoutingRule

SALES, INFO, GW = "mailbox:sales", "mailbox:info", "gateway:support@yandex.ru"
SALES_TASK, INFO_TASK, GW_TASK, IVAN_PERSONAL = 100, 101, 102, 200


def rule(name: str, scope: str = GLOBAL, *, subject: str = "", senders: str = "", recipients: str = "",
         task: int | None = 1, ignore: bool = False, stop: bool = False, delete_after: bool = False,
         assign_to: str | None = None) -> RoutingRule:
    conditions = tuple(
        c for c in (Condition.of("subject", subject.split(",")), Condition.of("senders", senders.split(",")),
                    Condition.of("recipients", recipients.split(","))) if c.items)
    return RoutingRule(name, scope, conditions, "ignore" if ignore else "comment", None if ignore else task,
                       assign_to, delete_after, stop)


def table(*rules: RoutingRule) -> RoutingTable:
    scopes = {
        SALES: Scope(SALES, RuleList([r for r in rules if r.scope == SALES]), SALES_TASK),
        INFO: Scope(INFO, RuleList([r for r in rules if r.scope == INFO]), INFO_TASK),
        GW: Scope(GW, RuleList([r for r in rules if r.scope == GW]), IVAN_PERSONAL),  # personal_for ivan
    }
    return RoutingTable(RuleList([r for r in rules if r.scope == GLOBAL]), scopes)


INVOICE = Facts.of("СЧЁТ № 15 от ООО Ромашка", "Buh@Client.RU", ["sales@example.test", "boss@client.ru"])


def where(facts: Facts, t: RoutingTable, scopes: tuple[str, ...] = (SALES,), reply: int | None = None
          ) -> list[tuple[int, tuple[str, ...]]]:
    return [(x.task_id, x.routed_by) for x in route(facts, t, scopes, reply).targets]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # no rule: fallback to the mailbox's task
        ((), [(SALES_TASK, ("fallback",))]),
        # case folding: "счёт" matches "СЧЁТ"; senders part matches; all filled conditions must hold
        ((rule("inv", subject="счёт", senders="@client.ru", task=1),), [(1, ("inv",))]),
        ((rule("inv", subject="счёт", senders="@other.ru", task=1),), [(SALES_TASK, ("fallback",))]),
        # any item of a list matches
        ((rule("inv", subject="invoice, счёт", task=1),), [(1, ("inv",))]),
        # recipients look at To/Cc and the envelope
        ((rule("boss", recipients="boss@", task=2),), [(2, ("boss",))]),
        # without stop later rules are checked too; a task gets the message once
        ((rule("a", subject="счёт", task=1), rule("b", senders="buh", task=2), rule("c", subject="ромашка", task=1)),
         [(1, ("a", "c")), (2, ("b",))]),
        # stop ends the list
        ((rule("a", subject="счёт", task=1, stop=True), rule("b", senders="buh", task=2)), [(1, ("a",))]),
        # a global match means the mailbox's own rules are not consulted
        ((rule("g", subject="счёт", task=1), rule("own", SALES, senders="buh", task=3)), [(1, ("g",))]),
        # no global match: the mailbox's own rules
        ((rule("g", subject="nothing", task=1), rule("own", SALES, senders="buh", task=3)), [(3, ("own",))]),
        # other mailboxes' rules do not apply
        ((rule("other", INFO, senders="buh", task=3),), [(SALES_TASK, ("fallback",))]),
        # ignore: no task, no fallback, even after an earlier match
        ((rule("a", subject="счёт", task=1), rule("spam", senders="client.ru", ignore=True)), []),
        ((rule("spam", SALES, senders="client.ru", ignore=True),), []),
        # an empty rule matches everything
        ((rule("all", task=9),), [(9, ("all",))]),
    ],
)
def test_routing_table(rules: tuple[RoutingRule, ...], expected: list[tuple[int, tuple[str, ...]]]) -> None:
    assert where(INVOICE, table(*rules)) == expected


def test_a_reply_goes_to_its_task_and_nothing_else_is_consulted() -> None:
    t = table(rule("all", task=9), rule("spam", ignore=True))
    decision = route(INVOICE, t, (SALES,), reply_task_id=77)
    assert [(x.task_id, x.routed_by) for x in decision.targets] == [(77, ("reply",))] and decision.reply


def test_personal_gateway_falls_back_to_the_owner_s_personal_task() -> None:
    assert where(INVOICE, table(), (GW,)) == [(IVAN_PERSONAL, ("fallback",))]


def test_two_mailboxes_each_get_their_fallback_and_their_own_rules() -> None:
    t = table(rule("info-rule", INFO, subject="счёт", task=5))
    assert where(INVOICE, t, (SALES, INFO)) == [(SALES_TASK, ("fallback",)), (5, ("info-rule",))]


def test_delete_after_and_assign_to_are_recorded() -> None:
    decision = route(INVOICE, table(rule("inv", GW, subject="счёт", task=1, delete_after=True, assign_to="petrov")),
                     (GW,))
    assert decision.delete_after and decision.targets[0].assign_to == "petrov"


def test_trace_explains_every_rule_checked() -> None:
    t = table(rule("g", subject="invoice", task=1), rule("own", SALES, senders="@client.ru", subject="счёт", task=2))
    decision = route(INVOICE, t, (SALES,), trace=True)
    assert [(c.rule, c.matched, c.why) for c in decision.checks] == [
        ("g", False, ("subject: none of invoice",)),
        ("own", True, ('subject: "счёт"', 'senders: "@client.ru"')),
    ]


def test_ten_thousand_rules_route_correctly() -> None:
    rules = [rule(f"r{i}", subject=f"[тема {i}]", task=1000 + i) for i in range(10_000)]
    facts = Facts.of("Re: [ТЕМА 9999] отчёт", "a@b.c", [])
    assert where(facts, table(*rules)) == [(10_999, ("r9999",))]


WORDS = st.sampled_from(["счёт", "СЧЁТ", "invoice", "inv", "@client.ru", "buh", "ё", "a", "oice", "ромашка", "boss@"])


@settings(max_examples=400, deadline=None)
@given(
    rules=st.lists(st.tuples(st.lists(WORDS, max_size=3), st.lists(WORDS, max_size=2), st.lists(WORDS, max_size=2),
                             st.booleans(), st.booleans(), st.integers(1, 4)), max_size=12),
    subject=st.lists(WORDS, max_size=4).map(" ".join),
    sender=st.lists(WORDS, max_size=2).map("".join),
    recipients=st.lists(st.lists(WORDS, max_size=2).map("".join), max_size=3),
)
def test_the_index_finds_what_checking_every_rule_finds(
        rules: list[tuple[list[str], list[str], list[str], bool, bool, int]], subject: str, sender: str,
        recipients: list[str]) -> None:
    compiled = [rule(f"r{i}", subject=",".join(s), senders=",".join(f), recipients=",".join(r), ignore=ign,
                     stop=stop, task=task) for i, (s, f, r, ign, stop, task) in enumerate(rules)]
    facts = Facts.of(subject, sender, recipients)
    brute = [r for r in compiled if r.check(facts)[0]]
    assert RuleList(compiled).matching(facts) == brute
    fast = route(facts, table(*compiled), (SALES,))
    traced = route(facts, table(*compiled), (SALES,), trace=True)
    assert (fast.targets, fast.ignored_by) == (traced.targets, traced.ignored_by)
