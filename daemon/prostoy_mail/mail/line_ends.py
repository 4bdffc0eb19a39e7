"""Line ends of received mail: CRLF only, and no smuggled end-of-data.

RFC 5321 allows only CRLF. Broken senders still send bare LF (or CR); we normalise those
to CRLF, as Postfix does with `smtpd_forbid_bare_newline = normalize`. But when a bare
line end surrounds a lone "." (`<LF>.<LF>`, `<CR>.<CR>`, `<LF>.<CR><LF>` ...), another
server could read it as the end of the data and the rest as a second, smuggled message;
such a message is refused instead, so a stored message never holds one.
"""

from __future__ import annotations

import re

_BARE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
# A line that is just "." where at least one of its two line ends is bare.
_DOT_LINE = re.compile(rb"(?:^|\r\n|\r|\n)\.(?:\r\n|\r|\n)")
_CLEAN_DOT_LINES = (b"\r\n.\r\n", b".\r\n")  # a dot-stuffed ".." line, unstuffed


class SmuggledMessage(ValueError):
    """The data holds an end-of-data sequence made with bare CR or LF."""


def has_bare_line_ends(data: bytes) -> bool:
    """Whether `data` has a CR or LF that is not part of a CRLF: every CR and LF is in a CRLF
    exactly when there are twice as many of them as CRLFs (two scans in C)."""
    return len(data) - len(data.translate(None, b"\r\n")) != 2 * data.count(b"\r\n")


def normalise_line_ends(data: bytes) -> bytes:
    """`data` with every bare CR or LF turned into CRLF; refuse a smuggling attempt."""
    if not has_bare_line_ends(data):
        return data  # the common case
    for match in _DOT_LINE.finditer(data):
        if match.group() not in _CLEAN_DOT_LINES:
            raise SmuggledMessage("bare CR or LF around a lone '.' line")
    return _BARE.sub(b"\r\n", data)
