"""Pickling frozen dataclasses cheaply: what an SMTP worker sends the daemon for every message."""

from __future__ import annotations

from typing import Any


def reduce_by_fields(self: Any) -> tuple[Any, tuple[Any, ...]]:
    """`__reduce__` for a dataclass: rebuilt by calling it with its fields in order.

    A slots dataclass pickles through dataclasses.fields() on every instance, both ways;
    `__match_args__` (the `__init__` fields, in order) is the same list, made once.
    """
    return type(self), tuple([getattr(self, name) for name in self.__match_args__])
