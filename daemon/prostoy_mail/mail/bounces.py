"""Whether a message is a bounce (a delivery status notification) or an automatic reply.

A bounce is told by what mail systems really send, not only by RFC 3464: many send plain
text (Exim, qmail, Yahoo, AOL, mail.ru), some with broken MIME. In order:
- the null envelope sender (RFC 5321 4.5.5), or Exim's `X-Failed-Recipients`;
- a `multipart/report` (but a read receipt, `disposition-notification`, is not a bounce) or
  any `message/delivery-status` part;
- From `mailer-daemon@` (never a person);
- From `postmaster@`, or a message marked automatic (Auto-Submitted, Precedence, ...), whose subject reads like a bounce
  ("Undelivered Mail Returned to Sender", "failure notice", "Не удалось доставить ...").
A bounce is never also an auto-reply: an out-of-office reply can go to a task's thread,
a bounce tells about mail that did not arrive.
"""

from __future__ import annotations

import re
from email.message import Message

from .headers import Headers

_DAEMON = re.compile(r"^(mailer[-_.]?daemon|mail[-_.]?daemon|mdaemon)(\+|@|$)", re.IGNORECASE)
_POSTMASTER = re.compile(r"^postmaster(\+|@|$)", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver(ed|able)|delivery (status notification|failure|failed|has failed|problem|notification)"
    r"|mail delivery (failed|failure|problem|subsystem|system)|returned mail|failure notice|non[- ]?delivery"
    r"|delivery report|mail system error|message not delivered|could not be delivered|delayed mail"
    r"|не\s*доставлен|недоставлен|не удалось доставить|ошибка доставки|возвращ[её]нное (письмо|сообщение)"
    r"|отчет о доставке|отчёт о доставке",
    re.IGNORECASE,
)


def is_bounce(msg: Message, headers: Headers, from_addr: str, mail_from: str | None, automatic: bool) -> bool:
    """`automatic`: is_auto_reply(headers), which the caller needs too."""
    if mail_from == "" or headers.text("x-failed-recipients"):
        return True
    content_type = msg.get_content_type()
    # (a multipart/report that is a read receipt, disposition-notification, or a complaint is not)
    if content_type == "multipart/report" and str(msg.get_param("report-type", "")).lower() in ("delivery-status", ""):
        return True
    if content_type == "message/delivery-status" or _has_status_part(msg):
        return True
    local = from_addr.split("@", 1)[0]
    if _DAEMON.match(local):
        return True
    return bool((automatic or _POSTMASTER.match(local)) and _BOUNCE_SUBJECT.search(headers.text("subject")))


def _has_status_part(msg: Message) -> bool:
    """A message/delivery-status part within the first levels (where DSNs put it) and parts."""
    stack, seen = [(msg, 0)], 0
    while stack and seen < 100:
        part, depth = stack.pop()
        seen += 1
        children = part.get_payload()
        if not isinstance(children, list):
            continue
        for child in children:
            if isinstance(child, Message):
                if child.get_content_type() == "message/delivery-status":
                    return True
                if depth < 4:
                    stack.append((child, depth + 1))
    return False


def is_auto_reply(headers: Headers) -> bool:
    auto_submitted = headers.text("auto-submitted").lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return True
    if headers.text("precedence").lower() in ("bulk", "junk", "list", "auto_reply"):
        return True
    return any(headers.text(h) for h in ("x-autoreply", "x-autorespond", "x-auto-response-suppress"))
