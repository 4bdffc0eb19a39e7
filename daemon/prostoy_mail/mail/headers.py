"""Header values as a good mail client shows them.

RFC 2047 encoded words in any charset (broken ones replaced, never an exception), and raw
8-bit headers recovered: UTF-8 first, then the body's declared charset, then windows-1251
or KOI8-R, whichever reads as Russian text. Decoded text is for showing and matching only;
it is never written back into a raw header, so a decoded "\\r\\nBcc:" cannot become a header.
"""

from __future__ import annotations

import email.header
import re
from email.message import Message
from email.utils import getaddresses, parseaddr

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def raw_header(msg: Message, name: str) -> str | None:
    """The first header `name` as received: unfolded, surrogate-escaped where 8-bit."""
    lower = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == lower:
            return value if isinstance(value, str) else str(value)
    return None


def decode_bytes(raw: bytes, declared: str | None = None) -> str:
    """Text of unlabelled 8-bit bytes: UTF-8, the declared charset, else cp1251 or KOI8-R."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared and declared.lower() not in ("us-ascii", "utf-8", "ascii"):
        try:
            return raw.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    return max((raw.decode(c, "replace") for c in ("cp1251", "koi8-r")), key=_russian_score)


def _russian_score(text: str) -> float:
    """Russian prose is mostly lower-case; KOI8-R read as cp1251 (and back) is mostly upper-case."""
    cyrillic = [c for c in text if "\u0400" <= c <= "\u04ff"]
    return sum(c.islower() for c in cyrillic) / (len(cyrillic) or 1)


def decode_header_value(value: str, declared: str | None = None) -> str:
    """Decode a raw (unfolded, possibly surrogate-escaped) header value to display text."""
    value = "".join(value.splitlines())
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        value = decode_bytes(value.encode("ascii", "surrogateescape"), declared)
    if "=?" in value and _ENCODED_WORD.search(value):
        parts: list[str] = []
        try:
            chunks = email.header.decode_header(value)
        except (ValueError, AssertionError):  # hopelessly broken encoded words: show them as they are
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
    value = raw_header(msg, name)
    if value is None:
        return ""
    return decode_header_value(value, msg.get_content_charset())


def address_list(msg: Message, *names: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of the address headers `names`, decoded, addresses lower-cased."""
    values = [decode_header_value(v, msg.get_content_charset())
              for key, v in msg.raw_items() if key.lower() in {n.lower() for n in names}]
    pairs = []
    for display, addr in getaddresses([v for v in values if isinstance(v, str)]):
        if addr and "@" in addr:
            pairs.append((display.strip(), addr.strip().lower()))
    return pairs


def sender(msg: Message) -> tuple[str, str]:
    """(display name, address) of From."""
    value = header_text(msg, "From")
    display, addr = parseaddr(value)
    return display.strip(), addr.strip().lower()


def message_ids(value: str) -> list[str]:
    """The <...> ids of a Message-ID, In-Reply-To or References value, without the brackets."""
    return [m.strip() for m in re.findall(r"<([^<>\s]+)>", value)]
