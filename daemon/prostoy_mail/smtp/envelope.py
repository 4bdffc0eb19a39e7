"""aiosmtpd's envelope with the fields our sessions and handlers add, typed.

BoundedSMTP creates these (aiosmtpd's `_create_envelope`), so a handler reads its own
fields as attributes it declared, not with getattr on whatever aiosmtpd's Envelope has.
"""

from __future__ import annotations

from aiosmtpd.smtp import Envelope

from ..mail.addresses import Recipient
from ..store.raw_files import SpooledRaw


class MailEnvelope(Envelope):
    def __init__(self) -> None:
        super().__init__()
        self.recipients: list[Recipient] = []  # the domain mailboxes RCPT accepted (inbound)
        self.spooled: SpooledRaw | None = None  # a big message, written to its file as DATA arrived
        self.clean_line_ends = False  # DATA had CRLF line ends only (no bare CR or LF to look for again)
