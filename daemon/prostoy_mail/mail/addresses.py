"""Which SMTP recipients the domain accepts: its own mailboxes, never a relay.

Everything that is not plainly `login[+token]@our-domain` is refused, including the old
relay tricks (`user%other@domain`, `@domain:user@other`, `"user@other"@domain`,
`other!user@domain`), which some mail systems would forward elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

from .compact import reduce_by_fields

_RELAY_TRICK = re.compile(r'[%!"@\\ ]')  # user%other@, other!user@, "user@other"@, user@other@
_LOCAL = re.compile(r"^([a-z0-9](?:[a-z0-9._-]*[a-z0-9])?)(?:\+([a-z0-9._-]{1,64}))?$")


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str  # as the client gave it
    login: str  # the domain mailbox
    token: str | None  # the part after "+", e.g. a reply token

    __reduce__ = reduce_by_fields  # (pickled by SMTP workers for every message)


class Refused(Exception):
    """A recipient we do not accept; the message is the SMTP reply."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def mailbox_login(local: str, host: str, domain: str) -> str:
    """The login of the mailbox `local@host` (the part before any "+tag", in lower case): the
    local part on the shared `domain`, the whole address on an organisation's own domain."""
    base = local.split("+", 1)[0].lower()
    return base if host == domain else f"{base}@{host}"


def classify_recipient(address: str, domain: str, mailboxes: Container[str],
                       own_domains: Container[str] = frozenset()) -> Recipient:
    """The domain mailbox `address` names (on the shared `domain` or an organisation's own
    domain), or Refused with the reply to give."""
    text = address.strip()
    if text.startswith("@") or ":" in text.split("@")[0]:
        raise Refused(f"550 5.7.1 <{text}>: source routes are not accepted; this server is not a relay")
    local, at, host = text.rpartition("@")
    if not at or not local or not host:
        raise Refused(f"501 5.1.3 <{text}>: bad recipient address syntax")
    host = host.lower().rstrip(".")
    if host.startswith("[") or (host != domain and host not in own_domains):
        raise Refused(f"554 5.7.1 <{text}>: relay access denied")
    if _RELAY_TRICK.search(local):
        raise Refused(f"550 5.7.1 <{text}>: relay tricks are not accepted; this server is not a relay")
    match = _LOCAL.match(local.lower())
    if match is None or (login := mailbox_login(match[1], host, domain)) not in mailboxes:
        raise Refused(f"550 5.1.1 <{text}>: no such mailbox here")
    return Recipient(text, login, match[2])
