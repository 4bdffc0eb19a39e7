"""aiosmtpd's envelope with the fields our sessions and handlers add, typed.

BoundedSMTP creates these (aiosmtpd's `_create_envelope`), so a handler reads its own
fields as attributes it declared, not with getattr on whatever aiosmtpd's Envelope has.
"""

from __future__ import annotations

from aiosmtpd.smtp import Envelope

from ..mail.addresses import Recipient
from ..mail.line_ends import normalise_line_ends
from ..store.raw_files import SpooledRaw


class MailEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.recipients: list[Recipient] = []  # the domain mailboxes RCPT accepted (inbound)
        self.spooled: SpooledRaw | None = None  # a big message, written to its file as DATA arrived
        self.clean_line_ends = False  # DATA had CRLF line ends only (no bare CR or LF to look for again)


def message_data(envelope: MailEnvelope) -> bytes:
    """What DATA brought (kept in memory), with CRLF line ends only (raises SmuggledMessage, see
    line_ends.py). BoundedSMTP has already told whether it had any bare CR or LF."""
    data: bytes = envelope.original_content or b""
    return data if envelope.clean_line_ends else normalise_line_ends(data)
