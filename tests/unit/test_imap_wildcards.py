"""IMAP LIST wildcards: the linear-time matcher agrees with the obvious regular expression."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from prostoy_mail.imapd.account import WildcardMatcher


def _reference(pattern: str, name: str) -> bool:
    """What RFC 3501 6.3.8 means, as a (backtracking) regular expression: fine for short inputs."""
    regexp = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern)
    flags = re.IGNORECASE if pattern.upper().startswith("INBOX") else 0
    return re.fullmatch(regexp, name, flags | re.DOTALL) is not None


_CHARS = st.sampled_from([*list("ab/*%"), "INBOX", "inbox", "Ж"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(_CHARS, max_size=8).map("".join), st.lists(st.sampled_from([*list("ab/Ж"), "INBOX"]), max_size=8)
       .map("".join))
def test_the_matcher_agrees_with_the_regular_expression(pattern: str, name: str) -> None:
    assert WildcardMatcher(pattern, longest=len(name)).matches(name) == _reference(pattern, name)


def test_the_classic_catastrophic_patterns_are_cheap() -> None:
    name = "Tasks/" + "a" * 200
    for stars in (10, 50, 5000):
        assert not WildcardMatcher("*" * stars + "z", longest=len(name)).matches(name)
        assert not WildcardMatcher("*a" * stars + "z", longest=len(name)).matches(name)
        assert WildcardMatcher("%*" * stars + "a", longest=len(name)).matches(name)
    assert not WildcardMatcher("a" * 300, longest=len(name)).matches(name)  # longer than any name: nothing
