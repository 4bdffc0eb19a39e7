"""A message's MIME tree for serving parts (the IMAP server), bounded in depth.

Python's email parser and generator, and Twisted's BODYSTRUCTURE, recurse once (or several
times) per MIME level: 2,000 nested multiparts raised RecursionError inside Twisted and
dropped the client's connection, so no client could sync that folder. Here a multipart
nested deeper than MAX_DEPTH is kept as one opaque part, its body as text; a message the
parser cannot take at all is one opaque part under its headers. The stored raw message
is never changed (BODY[] is served from it byte-exact).
"""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from .parse import MAX_DEPTH


def bounded_tree(raw: bytes) -> Message:
    """The compat32 parse of `raw`, no deeper than MAX_DEPTH multipart levels. (The walk below
    visits the parts down to that depth only: for ordinary mail, each part once.)"""
    try:
        msg = message_from_bytes(raw, policy=compat32)
    except RecursionError:
        return _opaque(raw)
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        children = part.get_payload()
        if not isinstance(children, list):
            continue
        if depth >= MAX_DEPTH:
            part.set_payload(_body_text(part))
            continue
        stack.extend((child, depth + 1) for child in children if isinstance(child, Message))
    return msg


def _opaque(raw: bytes) -> Message:
    msg = BytesHeaderParser(policy=compat32).parsebytes(raw)
    head_end = raw.find(b"\r\n\r\n")
    body = raw[head_end + 4:] if head_end >= 0 else b""
    msg.set_payload(body.decode("ascii", "surrogateescape"))
    return msg


def _body_text(part: Message) -> str:
    """A multipart part's body as text; "" when even that is too deep to write out."""
    try:
        text = part.as_bytes(policy=compat32)
    except RecursionError:
        return ""
    head_end = text.find(b"\n\n")
    return text[head_end + 2:].decode("ascii", "surrogateescape") if head_end >= 0 else ""
