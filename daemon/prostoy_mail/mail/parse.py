"""From raw bytes to what a comment shows: decoded headers, plain text, attachments, marks.

The raw bytes are never changed here; this only reads them. Parsing uses the fast
compat32 policy (4-6x faster than policy.default on typical mail) and our own decoding.
Hostile structure is bounded: MIME nesting deeper than MAX_DEPTH is not descended into,
and a message Python's parser cannot take apart still yields its headers.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime

from .bounces import is_auto_reply, is_bounce
from .compact import reduce_by_fields
from .header_block import read_header_block
from .headers import Headers, decode_bytes, decode_header_value, header_text, message_ids
from .html_text import html_to_text

log = logging.getLogger(__name__)
MAX_DEPTH = 20  # MIME levels we look into; deeper parts are not shown (the raw message keeps them)
MAX_PARTS = 1000
MAX_TEXT = 256 * 1024  # characters of body text kept for the comment
# Comment texts longer than this are not stored beside the raw message that holds them again:
# they are parsed from it when read (20 KB messages: a third less to write per message). So
# the text is only ever carried this far plus one character (parse_message's text_limit).
TEXT_INLINE = 4096
MAX_BODY = 4 * MAX_TEXT  # bytes of a single-part text body decoded for it first (the raw message keeps all)
_TRUNCATED = "X-Prostoy-Truncated"


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    filename: str
    content_type: str
    size: int

    __reduce__ = reduce_by_fields  # (pickled by SMTP workers for every message)


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    subject: str
    from_name: str
    from_addr: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: str | None  # ISO 8601
    text: str
    attachments: tuple[AttachmentInfo, ...]
    bounce: bool
    auto_reply: bool

    __reduce__ = reduce_by_fields  # (pickled by SMTP workers for every message)


def parse_message(raw: bytes, mail_from: str | None = None, text_limit: int | None = None) -> ParsedMessage:
    """Parse `raw`; `mail_from` is the SMTP envelope sender ("" for a null sender) when known.
    `text_limit`: the caller keeps the body text only when it is at most this many characters
    (the store keeps a longer one as the raw message): a longer text then comes back as its
    first text_limit + 1 characters, enough to tell, and is only worked through that far.

    Never raises: a message that trips the parser in a way not foreseen is still a message
    (kept raw, routed by its envelope) rather than one refused forever."""
    try:
        keep = MAX_TEXT if text_limit is None else min(text_limit + 1, MAX_TEXT)
        parsed = _parse_message(raw, mail_from, keep=keep)
        assert parsed is not None
        return parsed
    except Exception as exc:  # a parser bug must not turn into an endless 451 or a quarantine
        log.error("a message could not be parsed (%s: %s); it is kept raw, without its details",
                  type(exc).__name__, exc)
        return ParsedMessage(subject="(a message that could not be read)", from_name="", from_addr="", to=(), cc=(),
                             message_id=None, in_reply_to=(), references=(), date=None, text="", attachments=(),
                             bounce=mail_from == "", auto_reply=False)


def parse_prefix(prefix: bytes, mail_from: str | None = None) -> ParsedMessage | None:
    """What parse_message() says of a whole message, from its first bytes when they suffice: a
    single-part text message whose body goes on past what the comment shows. None when the
    whole message is needed (multipart, other types, densely encoded text)."""
    head_end = prefix.find(b"\r\n\r\n")
    if head_end < 0 or len(prefix) - head_end - 4 <= MAX_BODY:
        return None
    try:
        if BytesHeaderParser(policy=compat32).parsebytes(prefix[: head_end + 4]).get_content_maintype() != "text":
            return None  # (a single part of another type is an attachment: its size needs all of it)
        return _parse_message(prefix, mail_from, whole=False)
    except Exception:
        return None


def parse_skeleton(skeleton: bytes, sizes: dict[int, int], leaves: int, mail_from: str | None = None
                   ) -> ParsedMessage | None:
    """What parse_message() says of a multipart message, from its skeleton (mime_scan.py): the
    message with the bodies of some leaf parts left out, whose decoded sizes are `sizes` (by the
    leaf's place in document order). None when the skeleton does not have `leaves` leaf parts."""
    try:
        msg = message_from_bytes(skeleton, policy=compat32)
        if not msg.is_multipart() or len(_walk(msg)) != leaves:
            return None
        return _parse_message(skeleton, mail_from, parsed=msg, sizes=sizes)
    except Exception:
        return None


def _parse_message(raw: bytes, mail_from: str | None, whole: bool = True, parsed: Message | None = None,
                   sizes: dict[int, int] | None = None, keep: int = MAX_TEXT) -> ParsedMessage | None:
    # (a text cut shorter needs less of a big body decoded: 8 bytes a character is ample even
    # for quoted-printable Cyrillic; were it not, the whole message is parsed below)
    msg = parsed or _parse(raw, MAX_BODY if keep >= MAX_TEXT else 8 * keep)
    text, attachments = _body(msg, sizes or {}, keep)
    if _TRUNCATED in msg and len(text) < keep:  # encoded densely (e.g. quoted-printable Cyrillic)
        if not whole:
            return None
        msg = _parse(raw)
        text, attachments = _body(msg, {}, keep)
    headers = Headers(msg)
    from_name, from_addr = headers.sender()
    automatic = is_auto_reply(headers)
    bounce = is_bounce(msg, headers, from_addr, mail_from, automatic)
    return ParsedMessage(
        subject=headers.text("subject"),
        from_name=from_name,
        from_addr=from_addr,
        to=tuple(a for _, a in headers.addresses("to")),
        cc=tuple(a for _, a in headers.addresses("cc")),
        message_id=next(iter(message_ids(headers.text("message-id"))), None),
        in_reply_to=tuple(message_ids(headers.text("in-reply-to"))),
        references=tuple(message_ids(headers.text("references"))),
        date=_date(headers.text("date")),
        text=text,
        attachments=tuple(attachments),
        bounce=bounce,
        auto_reply=automatic and not bounce,  # a bounce is never an auto-reply
    )


def _parse(raw: bytes, limit: int | None = None) -> Message:
    """compat32 parse; a single-part message skips the feed parser's line-by-line body work.

    With `limit`, a single-part text body is read only that far (whole lines): the comment
    shows MAX_TEXT characters at most, and a 5 MB body need not be decoded for that. The
    message gets the header X-Prostoy-Truncated when it was cut (on the parsed copy only).
    """
    head_end = raw.find(b"\r\n\r\n")
    if head_end >= 0:
        head = read_header_block(raw[: head_end + 2]) or BytesHeaderParser(policy=compat32).parsebytes(
            raw[: head_end + 4])
        maintype = head.get_content_maintype()
        if maintype not in ("multipart", "message"):
            body = raw[head_end + 4:]
            if limit is not None and maintype == "text" and len(body) > limit:
                body = body[: body.rfind(b"\n", 0, limit) + 1 or limit]  # whole lines (base64 too)
                head[_TRUNCATED] = "yes"
            head.set_payload(body.decode("ascii", "surrogateescape"))
            return head
    try:
        return message_from_bytes(raw, policy=compat32)
    except RecursionError:  # absurd nesting: keep what the headers say
        return BytesHeaderParser(policy=compat32).parsebytes(raw)


def _date(value: str) -> str | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _walk(msg: Message) -> list[tuple[Message, int]]:
    """Leaf parts with their depth, depth-first, bounded in depth and count."""
    leaves: list[tuple[Message, int]] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack and len(leaves) < MAX_PARTS:
        part, depth = stack.pop()
        if part.is_multipart():
            if depth >= MAX_DEPTH:
                continue
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((c, depth + 1) for c in reversed(children) if isinstance(c, Message))
            continue
        leaves.append((part, depth))
    return leaves


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename() or part.get_param("name")
    except (ValueError, LookupError, UnicodeError):
        name = None
    if name is None:
        return None
    if isinstance(name, tuple):  # RFC 2231 parts that could not be collapsed
        name = name[2]
    text = str(name)
    if "\ufffd" in text:  # raw 8-bit bytes in the parameter, which email decoded as "?": recover them
        text = _raw_filename(part) or text
    return decode_header_value(text, part.get_content_charset()) or None


_RAW_NAME = re.compile(r"""(?:^|;)\s*(?:file)?name\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))""", re.IGNORECASE)


def _raw_filename(part: Message) -> str | None:
    """The file name as its raw header has it (8-bit bytes kept, surrogate-escaped), so that
    decode_header_value recovers its charset as for a subject (windows-1251, KOI8-R, ...)."""
    for header in ("content-disposition", "content-type"):
        for key, value in part.raw_items():
            if key.lower() == header and isinstance(value, str):
                match = _RAW_NAME.search(value)
                if match is not None:
                    return match[1] if match[1] is not None else match[2]
    return None


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, LookupError, AssertionError):
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _text_of(part: Message) -> str:
    return decode_bytes(_payload(part), part.get_content_charset())


def _body(msg: Message, sizes: dict[int, int] | None = None, keep: int = MAX_TEXT
          ) -> tuple[str, list[AttachmentInfo]]:
    """The comment's text (at most `keep` characters) and the attachments; `sizes`: decoded
    sizes of leaf parts (by their place) whose bodies are not in `msg` (a skeleton of a big
    message)."""
    plain: str | None = None
    html: str | None = None
    attachments: list[AttachmentInfo] = []
    for leaf, (part, _depth) in enumerate(_walk(msg)):
        content_type = part.get_content_type()
        disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
        filename = _filename(part)
        is_text = content_type in ("text/plain", "text/html")
        if filename is not None or disposition == "attachment" or not (is_text or part is msg):
            if content_type.startswith("multipart/"):
                continue
            size = sizes[leaf] if sizes and leaf in sizes else len(_payload(part))
            attachments.append(AttachmentInfo(filename or _unnamed(content_type), content_type, size))
            continue
        if content_type == "text/plain" and plain is None:
            plain = _text_of(part)
        elif content_type == "text/html" and html is None:
            html = _text_of(part)
        elif part is msg and not is_text:
            attachments.append(AttachmentInfo(_unnamed(content_type), content_type, len(_payload(part))))
    text = plain if plain is not None else html_to_text(html) if html is not None else ""
    return comment_text(text, keep), attachments


def comment_text(text: str, keep: int) -> str:
    """`text` with line ends made LF and without surrounding white space, cut at `keep`
    characters. Only its start is worked through when that is enough for `keep` of them."""
    if len(text) > 2 * keep + 2:
        start = text.lstrip()[: 2 * keep + 2]  # (CRLF -> LF at most halves it)
        start = start.replace("\r\n", "\n").replace("\r", "\n")
        if start[keep:].strip():  # (a CR cut from its LF is an LF either way); more text after `keep`
            return start[:keep]
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()[:keep]


def _unnamed(content_type: str) -> str:
    return "message.eml" if content_type == "message/rfc822" else "unnamed"


__all__ = ["AttachmentInfo", "ParsedMessage", "header_text", "parse_message", "parse_prefix", "parse_skeleton"]
