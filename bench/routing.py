"""Routing time per message against 10, 1,000 and 10,000 rules (in-process, pure routing).

    .venv/bin/python bench/routing.py

The baseline in the same run is checking every rule in order (what `rule explain` does);
the figure that matters is how little the indexed routing grows with the number of rules.
"""

from __future__ import annotations

import random
import time

from prostoy_mail.routing.index import RuleList
from prostoy_mail.routing.router import RoutingTable, Scope, route
from prostoy_mail.routing.rules import GLOBAL, Condition, Facts, RoutingRule


def make_rules(n: int) -> list[RoutingRule]:
    rng = random.Random(n)
    rules = []
    for i in range(n):
        conditions = [Condition.of("subject", [f"invoice-{i}", f"счёт №{i}"])]
        if rng.random() < 0.5:
            conditions.append(Condition.of("senders", [f"@client{i}.ru", f"buh{i}@"]))
        if rng.random() < 0.2:
            conditions.append(Condition.of("recipients", [f"dept{i}@"]))
        rules.append(RoutingRule(f"r{i}", GLOBAL, tuple(conditions), "comment", 1000 + i))
    return rules


def per_message(table: RoutingTable, facts: list[Facts], trace: bool) -> float:
    start = time.perf_counter()
    for f in facts:
        route(f, table, ("mailbox:sales",), trace=trace)
    return (time.perf_counter() - start) / len(facts)


def main() -> None:
    rng = random.Random(1)
    facts = [Facts.of(f"Re: счёт №{rng.randrange(20000)} от ООО «Ромашка» за ноябрь",
                      f"buh{rng.randrange(20000)}@client{rng.randrange(20000)}.ru",
                      ["sales@prostoy.biz", f"dept{rng.randrange(20000)}@prostoy.biz", "boss@client.ru"])
             for _ in range(2000)]
    print("| rules | indexed µs/message | every rule checked µs/message | indexed vs 10 rules |")
    print("| --- | --- | --- | --- |")
    first = None
    for n in (10, 1000, 10_000):
        rules = make_rules(n)
        table = RoutingTable(RuleList(rules), {"mailbox:sales": Scope("mailbox:sales", RuleList(()), 1)})
        indexed = min(per_message(table, facts, False) for _ in range(3))
        brute = min(per_message(table, facts[:200], True) for _ in range(2))
        first = first or indexed
        print(f"| {n} | {indexed * 1e6:.1f} | {brute * 1e6:.1f} | {indexed / first:.2f}x |")


if __name__ == "__main__":
    main()
