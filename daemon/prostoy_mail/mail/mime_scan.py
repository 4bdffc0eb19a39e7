"""A big multipart message read from its file with bounded memory.

Python's email parser holds every part, split into lines, and then a decoded copy of each
attachment: a 30 MiB message with one attachment took ~270 MiB to list it. This scanner
reads the file a line at a time and writes a skeleton: the message with the bodies of its
big non-text leaf parts left out, measuring each one's decoded size as email would
(base64: from the characters; 7bit/8bit/binary: the bytes, less the line end before the
boundary). The skeleton is then parsed as usual (parse.parse_skeleton), so the comment is
the same as from the whole message. Anything unusual (message/* parts, quoted-printable or
other encodings in a big part, broken base64, missing boundaries) makes it give up (None):
the caller then parses the whole message.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from .parse import ParsedMessage, parse_message, parse_skeleton

SCAN_AT = 1024 * 1024  # messages from this size are worth scanning
KEEP = 64 * 1024  # a leaf body up to this size stays in the skeleton
MAX_LEVELS = 10  # nested multiparts followed; deeper ones make the scanner give up
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/]*=*")
_SIZED = ("", "7bit", "8bit", "binary", "base64")


class _GiveUp(Exception):
    pass


class _Leaf:
    """The body of one leaf part as it streams past: kept while small, else measured."""

    def __init__(self, headers: Message) -> None:
        self.encoding = str(headers.get("Content-Transfer-Encoding", "")).strip().lower()
        # Text parts make the comment's text: they are always kept (and are rarely big).
        self.measurable = headers.get_content_maintype() != "text" and self.encoding in _SIZED
        self.kept: list[bytes] = []
        self.kept_size = 0
        self.dropped = False
        self.size = 0  # 7bit...: bytes so far; base64: characters so far
        self.last_end = 0  # length of the last line's line end
        self.padding = 0  # base64: "=" seen at the end so far

    def add(self, line: bytes) -> None:
        if self.measurable:
            self._measure(line)
        if not self.dropped:
            self.kept.append(line)
            self.kept_size += len(line)
            if self.measurable and self.kept_size > KEEP:
                self.dropped, self.kept = True, []
            elif self.kept_size > 4 * KEEP:  # a big text part (or one not measurable): read it whole
                raise _GiveUp

    def _measure(self, line: bytes) -> None:
        content = line.rstrip(b"\r\n")
        self.last_end = len(line) - len(content)
        if self.encoding != "base64":
            self.size += len(line)
            return
        if not _BASE64_LINE.fullmatch(content) or (self.padding and content):
            raise _GiveUp  # not plain base64: email's lenient decoding decides, on the whole message
        if content:
            self.size += len(content)
            self.padding = len(content) - len(content.rstrip(b"="))

    def decoded_size(self) -> int:
        if self.encoding != "base64":
            return self.size - self.last_end  # the line end before the boundary belongs to it
        missing = -self.size % 4
        if missing == 3:
            raise _GiveUp  # (one character too many: email repairs that its own way)
        return (self.size + missing) // 4 * 3 - (self.padding + missing)


def parse_big(raw: bytes, mail_from: str | None = None) -> ParsedMessage:
    """parse_message(), except that a big multipart message is scanned, not parsed whole."""
    if len(raw) > SCAN_AT:
        scanned = scan_multipart(io.BytesIO(raw), mail_from)
        if scanned is not None:
            return scanned
    return parse_message(raw, mail_from)


def scan_multipart(lines: Iterable[bytes], mail_from: str | None = None) -> ParsedMessage | None:
    """The ParsedMessage of a multipart message given as its lines (a file opened in binary);
    None when it is not multipart or has something this scanner leaves to email."""
    try:
        skeleton, sizes, leaves = _skeleton(lines)
    except _GiveUp:
        return None
    if not sizes:
        return None  # nothing was left out: parsing the whole message costs no more
    return parse_skeleton(skeleton, sizes, leaves, mail_from)


def _skeleton(lines: Iterable[bytes]) -> tuple[bytes, dict[int, int], int]:
    out = bytearray()
    boundaries: list[bytes] = []  # b"--" + boundary of each open multipart, outermost first
    header: list[bytes] = []
    leaf: _Leaf | None = None
    in_headers = True
    sizes: dict[int, int] = {}
    leaves = 0
    for line in lines:
        if in_headers:
            header.append(line)
            out += line
            if line not in (b"\r\n", b"\n"):
                continue
            in_headers = False
            headers = BytesHeaderParser(policy=compat32).parsebytes(b"".join(header))
            header = []
            maintype = headers.get_content_maintype()
            if maintype == "multipart":
                boundary = headers.get_boundary()
                if not boundary or len(boundaries) >= MAX_LEVELS:
                    raise _GiveUp
                boundaries.append(b"--" + boundary.encode("ascii", "surrogateescape"))
            elif maintype == "message" or not boundaries:
                raise _GiveUp  # (a single part is not this scanner's business)
            else:
                leaf = _Leaf(headers)
            continue
        level, closing = _delimiter(line, boundaries)
        if level is None:
            if leaf is not None:
                leaf.add(line)
            else:
                out += line  # a preamble or an epilogue
            continue
        if leaf is not None:
            if leaf.dropped:
                sizes[leaves] = leaf.decoded_size()
            else:
                out += b"".join(leaf.kept)
            leaves += 1
            leaf = None
        out += line
        del boundaries[level + 1:]
        if closing:
            boundaries.pop()
        else:
            in_headers = True
    if leaf is not None or boundaries or in_headers:
        raise _GiveUp  # the message ended inside a part: email's repairs decide
    return bytes(out), sizes, leaves


def _delimiter(line: bytes, boundaries: list[bytes]) -> tuple[int | None, bool]:
    """Which open multipart's delimiter `line` is (the innermost first), as email matches them:
    the delimiter, "--" for the closing one, then only blanks; and whether it is the closing one."""
    if not line.startswith(b"--"):
        return None, False
    content = line.rstrip(b"\r\n").rstrip(b" \t")
    for level in range(len(boundaries) - 1, -1, -1):
        if content == boundaries[level]:
            return level, False
        if content == boundaries[level] + b"--":
            return level, True
    return None, False
