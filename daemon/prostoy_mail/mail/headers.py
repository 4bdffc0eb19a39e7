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
    if any("\udc80" <= ch <= "\udcff" for ch in value):
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
