"""A message's header block read into an email.message.Message as compat32's parser would.

email's FeedParser reads headers a line at a time through a regular expression, a line
buffer and a policy call per header: about a third of parsing a 2 KB message. A header
block of the usual shape (CRLF line ends, each line a `Name: value` or a continuation)
is read here with a split; anything else (bare CR or LF, a "From " line, a line that is
not a header) returns None, and the caller uses email's parser. The result is the same
Message (same headers, same order, same values, no defects): a hypothesis test compares
the two.
"""

from __future__ import annotations

import re
from email.message import Message
from email.policy import compat32

# compat32's header line: a name of printable characters other than ":" (may be empty, as
# email allows), then ":".
_NAME = re.compile(r"[\041-\071\073-\176]*:")


def read_header_block(block: bytes) -> Message | None:
    """`block`: the headers up to and with the CRLF of the last header line (not the empty
    line). The Message, without a payload; None when the block is not of the usual shape."""
    text = block.decode("ascii", "surrogateescape")
    if not text.endswith("\r\n"):
        return None
    between = text.replace("\r\n", "")
    if "\r" in between or "\n" in between:
        return None  # bare CR or LF: email splits lines there too; leave those to it
    lines = text[:-2].split("\r\n")
    msg = Message(policy=compat32)
    name = ""
    value: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not name:
                return None  # a continuation first: a defect email records
            value.append("\r\n" + line)
            continue
        if name:
            msg.set_raw(name, "".join(value).rstrip("\r\n"))
        match = _NAME.match(line)
        if match is None or match.end() == 1:
            return None  # not a header line ("From " either): email would end the headers there
        name = line[: match.end() - 1]
        value = [line[match.end():].lstrip(" \t")]
    if name:
        msg.set_raw(name, "".join(value).rstrip("\r\n"))
    return msg
