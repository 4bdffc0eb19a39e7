"""How much and how long an external server may answer one command: nothing it says is trusted.

A server can announce a literal of 4 GiB (imaplib would allocate it before reading a byte),
stream untagged lines without end, or trickle one byte a minute under the per-read timeout.
Each command's response is given a budget of bytes and of time; a literal bigger than a
message may be is refused before it is read. Over any bound the connection is shut down
(what the server sends after it is never read) and the session ends with a FetchError that
the watcher logs and backs off from, as from any failed session.
"""

from __future__ import annotations

import contextlib
import socket
import time

from .errors import FetchError

# Besides the biggest message a response may carry listings (100,000 UIDs are ~1 MB) and
# a fetch batch (FETCH_BATCH_BYTES); this much more is allowed per command.
RESPONSE_SLACK = 16 * 1024 * 1024
# A command's whole response may take this many per-read timeouts (600 s by default): a
# 35 MiB message at 64 KB/s still arrives, a server trickling bytes does not hold a gateway.
RESPONSE_TIMEOUTS = 10


class ResponseBudget:
    """Bytes and seconds left for the response to the command sent last."""

    def __init__(self, max_message_size: int, timeout: float) -> None:
        self.max_literal = max_message_size
        self.max_bytes = max_message_size + RESPONSE_SLACK
        self.max_time = timeout * RESPONSE_TIMEOUTS
        self.used = 0
        self.deadline = time.monotonic() + self.max_time

    def start(self, extra_time: float = 0.0) -> None:
        """A command was sent: its response starts with a full budget (IDLE: plus its own time)."""
        self.used = 0
        self.deadline = time.monotonic() + self.max_time + extra_time

    def take(self, size: int, sock: socket.socket | None) -> None:
        self.used += size
        if self.used > self.max_bytes:
            self.refuse(sock, f"the server sent more than {self.max_bytes} bytes in answer to one command")
        if time.monotonic() > self.deadline:
            self.refuse(sock, f"the server took more than {self.max_time:.0f} s to answer one command")

    def check_literal(self, size: int, sock: socket.socket | None) -> None:
        if size > self.max_literal:
            self.refuse(sock, f"the server announced a literal of {size} bytes, over the message size limit "
                              f"of {self.max_literal} ([smtp] max_message_size)")

    @staticmethod
    def refuse(sock: socket.socket | None, reason: str) -> None:
        if sock is not None:  # nothing more is read from this server in this session
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise FetchError("bounds", reason)
