"""Finding the matching rules without checking every rule: an index of their items.

Checking 1,000 rules one by one cost more than everything else a message goes through.
Instead, the items of all conditions go into a trie per field; one pass over a message's
subject, sender and recipients finds the items that occur in them, and only the rules all
of whose conditions have such an item match. The result is the
same as checking each rule in order (a property test holds the two together).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .rules import Facts, Field, RoutingRule

_END = ""  # the key under which a trie node holds the item that ends there (items are never empty)


class SubstringIndex:
    """Which of a fixed set of strings occur in a text: a trie walked from every position.

    The work per text grows with its length and the depth of the matching trie paths, not
    with the number of items (10,000 rules sharing prefixes like "счёт №" cost no more).
    """

    def __init__(self, items: set[str]) -> None:
        self.root: dict[str, Any] = {}
        for item in items:
            node = self.root
            for char in item:
                node = node.setdefault(char, {})
            node[_END] = item

    def find(self, text: str) -> set[str]:
        found: set[str] = set()
        root, length = self.root, len(text)
        for start in range(length):
            node = root.get(text[start])
            position = start + 1
            while node is not None:
                item = node.get(_END)
                if item is not None:
                    found.add(item)
                if position == length:
                    break
                node = node.get(text[position])
                position += 1
        return found


class RuleList:
    """An ordered list of rules with an index that finds the ones a message matches."""

    def __init__(self, rules: Sequence[RoutingRule]) -> None:
        self.rules = tuple(rules)
        self.needed = [len(rule.conditions) for rule in self.rules]
        self.always = [pos for pos, rule in enumerate(self.rules) if not rule.conditions]
        # (field, item) -> [(rule position, condition position)]
        self.postings: dict[tuple[Field, str], list[tuple[int, int]]] = {}
        items: dict[Field, set[str]] = {"subject": set(), "senders": set(), "recipients": set()}
        for pos, rule in enumerate(self.rules):
            for cond_pos, condition in enumerate(rule.conditions):
                for item in condition.items:
                    items[condition.field].add(item)
                    self.postings.setdefault((condition.field, item), []).append((pos, cond_pos))
        self.indexes = {field: SubstringIndex(found) for field, found in items.items() if found}

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[RoutingRule]:
        return iter(self.rules)

    def matching(self, facts: Facts) -> list[RoutingRule]:
        """The rules that match `facts`, in their order."""
        if not self.rules:
            return []
        satisfied: dict[int, set[int]] = {}
        for field, index in self.indexes.items():
            texts = (facts.subject,) if field == "subject" else (facts.sender,) if field == "senders" \
                else facts.recipients
            found: set[str] = set()
            for text in texts:
                found |= index.find(text)
            for item in found:
                for pos, cond_pos in self.postings[(field, item)]:
                    satisfied.setdefault(pos, set()).add(cond_pos)
        matched = [pos for pos, conditions in satisfied.items() if len(conditions) == self.needed[pos]]
        return [self.rules[pos] for pos in sorted(matched + self.always)]
