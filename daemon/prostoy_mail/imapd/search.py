"""SEARCH over a selected folder (RFC 3501 6.4.4), on the query as Twisted parses it.

Twisted's own SEARCH fails on Python 3 (bytes query against str headers); this evaluates
the parsed query against the store's decoded fields (subject, addresses, dates: Unicode
case folding, so `SUBJECT счёт` finds `СЧЁТ`) and the raw message for BODY, TEXT, HEADER.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from twisted.mail import imap4

from ..mail.headers import decode_header_value
from ..store.ports import FolderItem
from .message import StoredMessage


@dataclass
class SearchItem:
    seq: int
    item: FolderItem
    flags: set[str]
    message: StoredMessage


def _text(token: Any) -> str:
    if isinstance(token, bytes):
        try:
            return token.decode("utf-8")
        except UnicodeDecodeError:
            return token.decode("latin-1")
    return str(token)


def _day(token: Any) -> date:
    try:
        return datetime.strptime(_text(token), "%d-%b-%Y").date()
    except ValueError:
        raise imap4.IllegalQueryError(f"not a date: {_text(token)}") from None


def _has(haystack: str, needle: str) -> bool:
    return needle.casefold() in haystack.casefold()


def _raw_has(raw: bytes, needle: str) -> bool:
    return needle.encode("utf-8").lower() in raw.lower() or _has(raw.decode("utf-8", "replace"), needle)


def _flag(name: str, present: bool = True) -> Callable[[SearchItem], bool]:
    return lambda e: (name in e.flags) == present


_FLAG_KEYS: dict[str, Callable[[SearchItem], bool]] = {
    "ALL": lambda e: True, "NEW": lambda e: False, "RECENT": lambda e: False, "OLD": lambda e: True,
    "SEEN": _flag("\\Seen"), "UNSEEN": _flag("\\Seen", False), "ANSWERED": _flag("\\Answered"),
    "UNANSWERED": _flag("\\Answered", False), "FLAGGED": _flag("\\Flagged"), "UNFLAGGED": _flag("\\Flagged", False),
    "DELETED": _flag("\\Deleted"), "UNDELETED": _flag("\\Deleted", False), "DRAFT": _flag("\\Draft"),
    "UNDRAFT": _flag("\\Draft", False),
}


def matches(query: list[Any], entry: SearchItem, last: tuple[int, int]) -> bool:
    """Whether every key of `query` holds for `entry` (`last`: highest sequence number and UID)."""
    while query:
        if not _step(query, entry, last):
            return False
    return True


def _step(query: list[Any], e: SearchItem, last: tuple[int, int]) -> bool:
    token = query.pop(0)
    if isinstance(token, list):
        return matches(list(token), e, last)
    key = _text(token).upper()
    if key[:1].isdigit() or key[:1] == "*":
        return e.seq in imap4.parseIdList(key.encode(), last[0])
    if key in _FLAG_KEYS:
        return _FLAG_KEYS[key](e)
    if key == "NOT":
        return not _step(query, e, last)
    if key == "OR":
        first = _step(query, e, last)
        second = _step(query, e, last)
        return first or second
    if key in ("KEYWORD", "UNKEYWORD"):
        return (_text(query.pop(0)) in e.flags) == (key == "KEYWORD")
    if key == "UID":
        return e.item.uid in imap4.parseIdList(_text(query.pop(0)).encode(), last[1])
    if key == "SUBJECT":
        return _has(e.item.subject, _text(query.pop(0)))
    if key == "FROM":
        needle = _text(query.pop(0))
        return _has(e.item.from_addr, needle) or _has(_header(e, "From"), needle)
    if key in ("TO", "CC", "BCC"):
        needle = _text(query.pop(0))
        stored = e.item.to if key == "TO" else e.item.cc if key == "CC" else ""
        return _has(stored, needle) or _has(_header(e, key.title()), needle)
    if key == "HEADER":
        name, needle = _text(query.pop(0)), _text(query.pop(0))
        value = _header(e, name)
        return value != "" and _has(value, needle) if needle else name.lower() in {
            k.lower() for k in e.message.msg}
    if key == "BODY":
        needle = _text(query.pop(0))
        raw = e.message.raw
        return _raw_has(raw.split(b"\r\n\r\n", 1)[-1], needle)
    if key == "TEXT":
        return _raw_has(e.message.raw, _text(query.pop(0)))
    if key in ("LARGER", "SMALLER"):
        size = int(_text(query.pop(0)))
        return e.item.size > size if key == "LARGER" else e.item.size < size
    if key in ("SINCE", "BEFORE", "ON"):
        return _compare(key, datetime.fromisoformat(e.item.received_at).date(), _day(query.pop(0)))
    if key in ("SENTSINCE", "SENTBEFORE", "SENTON"):
        day = _day(query.pop(0))
        if not e.item.date:
            return False
        return _compare(key[4:], datetime.fromisoformat(e.item.date).date(), day)
    raise imap4.IllegalQueryError(f"unknown search key {key}")


def _compare(how: str, value: date, day: date) -> bool:
    return value >= day if how == "SINCE" else value < day if how == "BEFORE" else value == day


def _header(e: SearchItem, name: str) -> str:
    values = e.message.msg.get_all(name, [])
    return " ".join(decode_header_value(str(v)) for v in values)
