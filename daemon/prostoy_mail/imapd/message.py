"""One message as Twisted's IMAP server sees it: headers, parts, and the raw bytes for BODY[].

`BODY[]` is sent byte-exact from the stored raw message (IMessageFile). Header values given
to Twisted are ASCII: raw 8-bit values (Russian mail often has them) are decoded as a good
client would and sent RFC 2047-encoded, because Twisted formats them as ASCII and would
drop the connection otherwise.
"""

from __future__ import annotations

import email.header
import email.utils
import io
from collections.abc import Callable
from email.message import Message
from email.policy import compat32
from typing import IO

from twisted.mail import imap4
from zope.interface import implementer

from ..mail.headers import decode_header_value
from ..mail.mime_tree import bounded_tree

STRUCTURED = ("content-type", "content-disposition")  # Twisted parses these for BODYSTRUCTURE


def _ascii_value(value: str, name: str = "") -> str:
    """A header value Twisted can send: unchanged when ASCII, else decoded and RFC 2047-encoded.
    Content-Type and Content-Disposition keep their structure (BODYSTRUCTURE is built from
    them): only a non-ASCII parameter value is encoded, inside its quotes."""
    if value.isascii():
        return value
    if name in STRUCTURED:
        return _ascii_parameters(value, name)
    text = decode_header_value(value)
    return email.header.Header(text, "utf-8", maxlinelen=998).encode()


def _ascii_parameters(value: str, name: str) -> str:
    holder = Message()
    holder[name] = decode_header_value(value)  # (raw 8-bit in any charset Russian mail uses, as clients show it)
    params = holder.get_params(header=name) or []
    if not params:
        return "application/octet-stream" if name == "content-type" else "attachment"
    first, *rest = params
    parts = [first[0] if first[0].isascii() else "application/octet-stream"]
    for key, raw in rest:
        text = email.utils.collapse_rfc2231_value(raw)
        if not key.isascii():
            continue
        encoded = text if text.isascii() else email.header.Header(text, "utf-8", maxlinelen=998).encode()
        parts.append(f'{key}="{encoded.replace(chr(92), "").replace(chr(34), "")}"')
    return "; ".join(parts)


@implementer(imap4.IMessagePart)
class Part:
    def __init__(self, msg: Message) -> None:
        self._msg: Message | None = msg

    @property
    def msg(self) -> Message:
        assert self._msg is not None
        return self._msg

    def getHeaders(self, negate: bool, *names: bytes | str) -> dict[str, str]:
        wanted = {(n.decode("ascii", "replace") if isinstance(n, bytes) else n).lower() for n in names}
        headers: dict[str, str] = {}
        for key, value in self.msg.raw_items():
            lower = key.lower()
            if not names or (lower in wanted) != negate:
                text = value if isinstance(value, str) else str(value)
                headers.setdefault(lower, _ascii_value(text.replace("\r\n", "").replace("\n", ""), lower))
        return headers

    def getBodyFile(self) -> IO[bytes]:
        if self.msg.is_multipart():  # its parts, as the parser holds them
            return io.BytesIO(_body_of(self.msg.as_bytes(policy=compat32)))
        payload = self.msg.get_payload(decode=False)
        return io.BytesIO(_payload_bytes(payload) if isinstance(payload, str) else b"")

    def getSize(self) -> int:
        return len(self.getBodyFile().read())

    def isMultipart(self) -> bool:
        return self.msg.is_multipart()

    def getSubPart(self, part: int) -> Part:
        payload = self.msg.get_payload()
        if not isinstance(payload, list) or not 0 <= part < len(payload):
            raise IndexError(part)
        sub = payload[part]
        if not isinstance(sub, Message):
            raise IndexError(part)
        return Part(sub)


@implementer(imap4.IMessage, imap4.IMessageFile)
class StoredMessage(Part):
    """A message of a folder; the raw bytes are read only when a command needs them."""

    def __init__(self, uid: int, message_db_id: int, size: int, internal_date: str, flags: set[str],
                 load: Callable[[], bytes]) -> None:
        self.uid = uid
        self.message_db_id = message_db_id
        self.size = size
        self.internal_date = internal_date
        self.flags = flags
        self._load = load
        self._raw: bytes | None = None
        self._msg = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self._load()
        return self._raw

    @property
    def msg(self) -> Message:  # parsed on first use (FETCH BODY[] needs only the raw bytes)
        if self._msg is None:
            self._msg = bounded_tree(self.raw)  # (no deeper than Twisted's recursion can serve)
        return self._msg

    def open(self) -> IO[bytes]:
        return io.BytesIO(self.raw)

    def getBodyFile(self) -> IO[bytes]:
        return io.BytesIO(_body_of(self.raw))

    def getSize(self) -> int:
        return self.size

    def getUID(self) -> int:
        return self.uid

    def getFlags(self) -> list[str]:
        return sorted(self.flags)

    def getInternalDate(self) -> str:
        return self.internal_date


def _payload_bytes(payload: str) -> bytes:
    """A part's body as bytes again: the parser keeps raw 8-bit bytes as surrogates (those go
    back as they came); text that is Unicode by then (a part re-encoded by the parser) is sent
    as UTF-8 (it was 'ascii' only, and dropped the connection)."""
    try:
        return payload.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return payload.encode("utf-8", "surrogateescape")


def _body_of(raw: bytes) -> bytes:
    """What follows the header block and its empty line."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        _head, found, body = raw.partition(separator)
        if found:
            return body
    return b""
