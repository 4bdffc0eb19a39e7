"""What an SMTP session hands on once DATA is complete: a Delivery, in the daemon's process or
from an SMTP worker over its channel (so it is small, picklable, and imports little)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .mail.addresses import Recipient
from .mail.compact import reduce_by_fields
from .mail.parse import ParsedMessage
from .store.raw_files import SpooledRaw


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the SMTP side hands to the intake."""

    raw: bytes  # the message; when spooled, only its start
    mail_from: str
    recipients: tuple[Recipient, ...]
    peer: str
    spooled: SpooledRaw | None = None  # a big message, written to its file as it arrived
    # parse_message(raw, mail_from, text_limit=TEXT_INLINE), when an SMTP worker parsed it (so
    # the daemon's store writer, which every message waits for, need not)
    parsed: ParsedMessage | None = field(default=None, repr=False)

    __reduce__ = reduce_by_fields  # (pickled by SMTP workers for every message)
