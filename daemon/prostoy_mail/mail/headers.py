"""Header values as a good mail client shows them.

RFC 2047 encoded words in any charset (broken ones replaced, never an exception), and raw
8-bit headers recovered: UTF-8 first, then the body's declared charset, then windows-1251
or KOI8-R, whichever reads as Russian text. Decoded text is for showing and matching only;
it is never written back into a raw header, so a decoded "\\r\\nBcc:" cannot become a header.
"""

from __future__ import annotations

import email.errors
import email.header
import math
import re
from email.message import Message

from .address_list import mailboxes

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # an 8-bit byte kept by surrogateescape

# The usual shapes of an address header, which address_list would read token by token:
# `addr`, `<addr>`, `Words <addr>`, with dot-atom addresses and display names of plain words
# (encoded words among them, decoded afterwards). Anything else (quotes, comments, groups,
# routes, lists) goes to address_list; tests/unit/test_mail.py checks both agree.
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_ADDRESS = _DOT_ATOM + "@" + r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_WORD_CHARS = r"[^\s\"()<>@,;:\\.\[\]]+"
_PLAIN_ADDRESS = re.compile(
    rf"[ \t]*(?:(?P<name>{_WORD_CHARS}(?:[ \t]+{_WORD_CHARS})*)[ \t]*)?<(?P<angle>{_ADDRESS})>[ \t]*"
    rf"|[ \t]*(?P<bare>{_ADDRESS})[ \t]*")
_WHITESPACE_RUN = re.compile(r"[ \t]+")


def decode_bytes(raw: bytes, declared: str | None = None) -> str:
    """Text of unlabelled 8-bit bytes: UTF-8, the declared charset, else cp1251 or KOI8-R."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared and declared.lower() in ("utf-8", "utf8"):  # said UTF-8, broken somewhere: still UTF-8
        return raw.decode("utf-8", "replace")
    if declared and declared.lower() not in ("us-ascii", "ascii"):
        try:
            return raw.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    return max((raw.decode(c, "replace") for c in ("cp1251", "koi8-r")), key=_russian_score)


# Relative frequency (%) of letters in Russian text (ё counted generously: it is often written е).
_RUSSIAN_FREQUENCY = dict(zip(
    "оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъё",
    (10.97, 8.45, 8.01, 7.35, 6.70, 6.26, 5.47, 4.73, 4.54, 4.40, 3.49, 3.21, 2.98, 2.81, 2.62, 2.01, 1.90,
     1.74, 1.70, 1.65, 1.59, 1.44, 1.21, 0.97, 0.94, 0.73, 0.64, 0.48, 0.36, 0.32, 0.26, 0.04, 0.5),
    strict=True,
))
_WORD = re.compile(r"[^\W\d_]+")


def _russian_score(text: str) -> float:
    """How much `text` reads like Russian: common letters, and words cased as words are.

    KOI8-R bytes read as windows-1251 (and the reverse) give rare letters, stray symbols and
    words whose case flips inside them; the right reading scores higher.
    """
    letters = [c.lower() for c in text if c.isalpha() and not c.isascii()]
    if not letters:
        return 0.0
    frequency = sum(math.log(_RUSSIAN_FREQUENCY.get(c, 0.001)) for c in letters) / len(letters)
    words = _WORD.findall(text)
    cased = sum(w.islower() or w.isupper() or w.istitle() for w in words) / (len(words) or 1)
    symbols = sum(not c.isascii() and not c.isalpha() and not c.isspace() for c in text) / len(letters)
    return float(frequency + 3 * cased - 10 * symbols)


def decode_header_value(value: str, declared: str | None = None) -> str:
    """Decode a raw (unfolded, possibly surrogate-escaped) header value to display text."""
    value = "".join(value.splitlines())
    if not value.isascii() and _ESCAPED_BYTE.search(value):
        value = decode_bytes(value.encode("ascii", "surrogateescape"), declared)
    if "=?" in value and _ENCODED_WORD.search(value):
        parts: list[str] = []
        try:
            chunks = email.header.decode_header(value)
        except (ValueError, AssertionError, email.errors.HeaderParseError):  # hopelessly broken: shown as they are
            chunks = [(value, None)]
        for chunk, charset in chunks:
            if isinstance(chunk, str):
                parts.append(chunk)
                continue
            try:
                parts.append(chunk.decode(charset or "ascii", "replace"))
            except LookupError:  # an unknown charset name
                parts.append(decode_bytes(chunk))
        value = "".join(parts)
    return _CONTROL.sub(" ", value).strip()


def header_text(msg: Message, name: str) -> str:
    """The first header `name`, decoded for showing; "" when absent."""
    return Headers(msg).text(name.lower())


class Headers:
    """A message's headers read once: the first value of each name, all values of each name.

    Looking a header up in an email.message.Message walks every header each time; parsing
    asks for about fifteen of them per message."""

    def __init__(self, msg: Message) -> None:
        every: dict[str, list[str]] = {}
        for key, value in msg.raw_items():
            every.setdefault(key.lower(), []).append(value if isinstance(value, str) else str(value))
        self._every = every
        self.charset = msg.get_content_charset()

    def text(self, name: str) -> str:
        """The first header `name` (lower case), decoded for showing; "" when absent."""
        values = self._every.get(name)
        return "" if values is None else decode_header_value(values[0], self.charset)

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """(display name, address) pairs of every header `name` (lower case): the addresses
        from the raw header's syntax, lower-cased; only the display names decoded."""
        return parse_addresses(self._every.get(name, []), self.charset)

    def sender(self) -> tuple[str, str]:
        """(display name, address) of From's first mailbox; ("", "") when it has none."""
        values = self._every.get("from")
        return parse_address(values[0], self.charset) if values else ("", "")


def parse_addresses(values: list[str], charset: str | None = None) -> list[tuple[str, str]]:
    """(display name, address) pairs in raw address header values, addresses lower-cased,
    display names decoded; entries without an address are left out.

    The addresses come from the header's syntax before anything is decoded: a decoded
    display name is never read as an address (RFC 2047 §5; see address_list)."""
    values = ["".join(value.splitlines()) for value in values]  # unfolded
    pairs = _plain_addresses(values)
    if pairs is None:
        pairs = [pair for value in values for pair in mailboxes(value)]
    return [(_display(display, charset), addr.lower()) for display, addr in pairs]


def parse_address(value: str, charset: str | None = None) -> tuple[str, str]:
    """(display name, address) of the first mailbox of a raw address header value."""
    return next(iter(parse_addresses([value], charset)), ("", ""))


def _display(raw: str, charset: str | None) -> str:
    return decode_header_value(raw, charset) if raw else ""


def _plain_address(value: str) -> tuple[str, str] | None:
    match = _PLAIN_ADDRESS.fullmatch(value)
    if match is None:
        return None
    if match["bare"] is not None:
        return "", match["bare"]
    name = match["name"]
    return ("" if name is None else _WHITESPACE_RUN.sub(" ", name)), match["angle"]


def _plain_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """What address_list.mailboxes() finds, when every comma-separated item has a plain shape; else None."""
    pairs = []
    for value in values:
        for item in value.split(","):
            plain = _plain_address(item)
            if plain is None:
                return None
            pairs.append(plain)
    return pairs


def message_ids(value: str) -> list[str]:
    """The <...> ids of a Message-ID, In-Reply-To or References value, without the brackets."""
    return [m.strip() for m in re.findall(r"<([^<>\s]+)>", value)]
