"""SMTP replies: aiosmtpd's stock ones with the enhanced status codes they lack (RFC 3463),
and ours for a smuggled message and for a store that could not take one."""

from __future__ import annotations

import errno
import logging
from typing import Any

from ..store.ports import StoreFull

log = logging.getLogger(__name__)

# aiosmtpd's stock replies that lack an enhanced status code (RFC 3463), and ours for them.
ENHANCED = {
    "552 Error: Too much mail data": "552 5.3.4 Message size exceeds fixed limit",
    "552 Error: message size exceeds fixed maximum message size": "552 5.3.4 Message size exceeds fixed limit",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long",
    "500 Command line too long": "500 5.5.2 Command line too long",
    "500 Error: bad syntax": "500 5.5.2 Error: bad syntax",
    "503 Error: send HELO first": "503 5.5.1 Error: send HELO first",
    "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
    "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
    "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
    "502 5.5.1 Too many unrecognized commands, goodbye.":
        "421 4.7.0 Too many unrecognized commands, closing connection",
    "454 TLS not available": "454 4.7.0 TLS not available",
}


SMUGGLING_REPLY = "550 5.5.2 Message refused: bare CR or LF around a '.' line (RFC 5321 2.3.8)"


DISK_FULL_REPLY = "452 4.3.1 Insufficient system storage, please try again later"


def store_failure_reply(exc: Exception, peer: str, doing: str) -> tuple[str, str]:
    """The reply (and its metric reason) when the store could not take a message: 452 when its
    disk is full, else 451; either way the client keeps the message and tries again."""
    if isinstance(exc, StoreFull) or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        log.error("%s: the store's disk is full; answering 452", peer)
        return DISK_FULL_REPLY, "disk_full"
    log.error("%s: failed %s a message; answering 451", peer, doing, exc_info=exc)
    return f"451 4.3.0 Temporary failure {doing} the message, please try again later", "store_failure"


def peer_of(session: Any) -> str:
    peer = getattr(session, "peer", None)
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
