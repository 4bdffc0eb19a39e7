"""Writing mail: header edits of a submitted message, new messages, and bounces (DSN).

A submitted message is sent as the client wrote it; only whole header fields are removed
(Bcc) or added (Message-ID, Date, Reply-To when missing), as raw lines, so nothing of the
client's encoding or signature is re-serialised.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, localtime

_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """The header block (with its final CRLF) and the rest (the empty line and the body)."""
    if raw.startswith(b"\r\n"):
        return b"", raw
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return raw if raw.endswith(b"\r\n") else raw + b"\r\n", b""
    return raw[:end + 2], raw[end + 2:]


def header_fields(header: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, whole field with its continuation lines) for each header field."""
    fields: list[tuple[str, bytes]] = []
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            name, text = fields[-1]
            fields[-1] = (name, text + line)
            continue
        match = _FIELD_NAME.match(line)
        fields.append((match[1].decode("ascii").lower() if match else "", line))
    return fields


def edit_header(raw: bytes, *, remove: Iterable[str] = (), add: Sequence[tuple[str, str]] = ()) -> bytes:
    """`raw` without the fields named in `remove`, with `add` (ASCII values) put on top."""
    header, rest = split_header(raw)
    dropped = {name.lower() for name in remove}
    kept = b"".join(text for name, text in header_fields(header) if name not in dropped)
    added = b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in add)
    return added + kept + rest


def has_field(raw: bytes, name: str) -> bool:
    header, _ = split_header(raw)
    return any(n == name.lower() for n, _ in header_fields(header))


def new_message(*, sender: str, sender_name: str, to: Sequence[str], cc: Sequence[str], subject: str, body: str,
                message_id: str | None = None, in_reply_to: str | None = None,
                references: Sequence[str] = ()) -> bytes:
    """A plain-text message, UTF-8, CRLF line ends."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(localtime())
    if message_id:
        msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    msg.set_content(body)
    return msg.as_bytes()


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    address: str
    reply: str  # the server's answer, e.g. "550 5.1.1 no such user", or why we gave up
    remote_host: str = ""


_STATUS = re.compile(r"^[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b")


def _status_code(reply: str) -> str:
    match = _STATUS.match(reply)
    if match:
        return match[1]
    return "5.0.0" if reply[:1] == "5" else "4.4.7" if "expired" in reply.lower() else "5.0.0"


def delivery_status_notification(*, reporting_host: str, postmaster: str, recipient: str, original: bytes,
                                 original_message_id: str | None, failed: Sequence[FailedRecipient],
                                 message_id: str) -> bytes:
    """A bounce (RFC 3464 multipart/report) telling `recipient` that `failed` did not get `original`."""
    header, _ = split_header(original)
    lines = [f"This is the mail system at host {reporting_host}.", "",
             "I'm sorry to have to inform you that your message could not",
             "be delivered to one or more recipients.", ""]
    lines += [f"<{f.address}>: {f.reply}" for f in failed]
    report = [f"Reporting-MTA: dns; {reporting_host}", f"Arrival-Date: {format_datetime(localtime())}", ""]
    for f in failed:
        report += [f"Final-Recipient: rfc822; {f.address}", "Action: failed", f"Status: {_status_code(f.reply)}"]
        if f.remote_host:
            report.append(f"Remote-MTA: dns; {f.remote_host}")
        if f.reply[:1].isdigit():
            report.append(f"Diagnostic-Code: smtp; {f.reply}")
        else:
            report.append(f"Diagnostic-Code: x-prostoy-mail; {f.reply}")
        report.append("")
    boundary = f"=_bounce_{secrets.token_hex(12)}"
    top = [
        f"From: {formataddr(('Mail Delivery System', postmaster))}",
        f"To: <{recipient}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(localtime())}",
        f"Message-ID: <{message_id}>",
        "Auto-Submitted: auto-replied",
    ]
    if original_message_id:
        top += [f"In-Reply-To: <{original_message_id}>", f"References: <{original_message_id}>"]
    top += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "", "This is a MIME-encapsulated message.", "",
        f"--{boundary}", "Content-Type: text/plain; charset=us-ascii", "", *lines,
        f"--{boundary}", "Content-Type: message/delivery-status", "", *report,
        f"--{boundary}", "Content-Type: text/rfc822-headers", "",
    ]
    text = "\r\n".join(top).encode("ascii", "replace") + b"\r\n"
    # the original header as it was (8-bit bytes of a raw header kept: it is for the sender to read)
    return text + header + f"\r\n--{boundary}--\r\n".encode("ascii")
