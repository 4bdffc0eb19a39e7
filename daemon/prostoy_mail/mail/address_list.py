"""Mailboxes of a raw address header (From, To, Cc, Reply-To, Sender), from its syntax only.

RFC 5322 §3.4 with the leniency real mail needs. The header is split into its tokens
*before* anything is decoded: an address is what stands in `<...>` (or the bare addr-spec
when there is none), and the display name is only ever display text. An RFC 2047 encoded
word such as `=?utf-8?B?Qm9zcyA8Ym9zc0BjbGllbnQucnU+?=` ("Boss <boss@client.ru>") is decoded
by the caller for showing and never read as an address again (RFC 2047 §5). So is an
unquoted address in a display name: `owner@prostoy.biz <attacker@evil.example>` is the
mailbox `attacker@evil.example`, shown as "owner@prostoy.biz".

One pass over the value, each token found by one regular expression, so a hostile header
costs time in proportion to its length.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# One token: a quoted string, an angle address, a domain literal, a comment opener, a special,
# white space, or a run of anything else (atoms, dots, "@", 8-bit text). Unclosed quotes,
# angles and literals run to the end of the value, as lenient parsers read them.
_TOKEN = re.compile(r"""
    (?P<quoted>"(?:[^"\\]|\\.)*(?:"|\\?\Z))
  | (?P<angle><[^>]*(?:>|\Z))
  | (?P<literal>\[[^\]]*(?:\]|\Z))
  | (?P<comment>\()
  | (?P<special>[,:;])
  | (?P<space>\s+)
  | (?P<text>[^"<\[(,:;\s]+)
""", re.VERBOSE | re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_WHITESPACE = re.compile(r"\s+")
# controls and raw undecoded 8-bit bytes (white space can only come from a quoted local part)
_NOT_IN_ADDRESS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


class Mailbox(NamedTuple):
    display: str  # raw display text (unquoted, encoded words still encoded): decode it to show it
    address: str  # as written, not lower-cased; "" when the entry had none


def mailboxes(value: str) -> list[Mailbox]:
    """The mailboxes of one raw (unfolded or folded) address header value, in order.

    Group names and group syntax are dropped (their members are kept); an entry without a
    usable address is left out."""
    found: list[Mailbox] = []
    entry: list[tuple[str, str]] = []  # (kind, text) of the current entry
    position = 0
    while position < len(value):
        match = _TOKEN.match(value, position)
        if match is None:  # cannot happen: the last alternative takes any single character
            break
        kind = match.lastgroup or "text"
        position = match.end()
        if kind == "comment":
            text, position = _comment(value, position)
            entry.append(("comment", text))
        elif kind == "special":
            token = match.group()
            if token == ":" and not any(k == "angle" for k, _ in entry):
                entry = []  # "group name:" (only an angle address may hold a colon)
            else:  # "," and the ";" ending a group close an entry
                _close(entry, found)
                entry = []
        else:
            entry.append((kind, match.group()))
    _close(entry, found)
    return found


def _comment(value: str, position: int) -> tuple[str, int]:
    """The text of a (possibly nested) comment opened just before `position`, and where it ends."""
    depth, start, index = 1, position, position
    while index < len(value):
        char = value[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return value[start:index], index + 1
        index += 1
    return value[start:], len(value)


def _close(entry: list[tuple[str, str]], found: list[Mailbox]) -> None:
    # With more than one angle address (never valid), the last is the mailbox and the
    # others are display text: what precedes the address can only ever be shown.
    angle = next((i for i in range(len(entry) - 1, -1, -1) if entry[i][0] == "angle"), None)
    if angle is not None:
        address = _angle_address(entry[angle][1])
        display = _phrase(entry[:angle])
    else:
        address = "".join(_unquote_local(t) if k == "quoted" else t for k, t in entry
                          if k in ("text", "quoted", "literal"))
        display = _phrase([(k, t) for k, t in entry if k == "comment"]) if address else ""
    if _usable(address):
        found.append(Mailbox(display, address))


def _angle_address(token: str) -> str:
    inner = token[1:-1] if token.endswith(">") else token[1:]
    inner = _WHITESPACE.sub("", inner)
    return inner.rpartition(":")[2]  # a source route ("@relay1,@relay2:") is dropped


def _unquote_local(token: str) -> str:
    """A quoted local part stays quoted when it needs to be ("john doe"@x); otherwise bare."""
    inner = _QUOTED_PAIR.sub(r"\1", token[1:-1] if len(token) > 1 and token.endswith('"') else token[1:])
    return inner if re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+", inner) else token


def _phrase(tokens: list[tuple[str, str]]) -> str:
    words: list[str] = []
    for kind, text in tokens:
        if kind == "quoted":
            words.append(_QUOTED_PAIR.sub(r"\1", text[1:-1] if len(text) > 1 and text.endswith('"') else text[1:]))
        elif kind in ("text", "literal", "comment", "angle"):
            words.append(text)
    return _WHITESPACE.sub(" ", " ".join(words)).strip()


def _usable(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) and _NOT_IN_ADDRESS.search(address) is None
