"""One daemon per store and per listening address on this machine.

Listeners bind with SO_REUSEPORT (a reload binds the new socket before closing the old), so
the kernel lets a second daemon bind the same address too and splits the connections
between them: mail would land in two stores. And two daemons on one SQLite store would
each think they are its only writer. So a daemon first takes:

- the store: an exclusive flock on `STORE.lock` beside it, holding the owner's PID;
- each listening address with a fixed port: an abstract UNIX socket named after it
  (`@prostoy-mail/listen/HOST:PORT`), which the kernel lets one process bind at a time and
  frees when that process ends, however it ends (no stale lock files after kill -9). A
  second daemon learns the holder's PID from the socket (SO_PEERCRED).

Either refusal is one line naming the other daemon's PID. Port 0 (a free port chosen by the
kernel) needs no lock: two daemons never get the same one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
import time
from pathlib import Path

from .errors import ProstoyMailError

log = logging.getLogger(__name__)


class AlreadyRunning(ProstoyMailError):
    """Another daemon holds the store or a listening address."""


class StoreLock:
    """Held while the daemon runs; released by release() or by the process ending."""

    def __init__(self, store: Path) -> None:
        self.path = Path(f"{store}.lock")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        for attempt in range(10):  # (a command asking who runs holds it shared for an instant)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt < 9:
                    time.sleep(0.05)
        else:
            holder = os.pread(self.fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(self.fd)
            raise AlreadyRunning(f"another prostoy-mail (PID {holder}) is running on the store {store}; "
                                 "stop it first (two daemons on one SQLite store would lose mail)")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # (the lock goes with the descriptor)
            self.fd = -1


def store_holder(store: Path) -> int | None:
    """The PID of the daemon running on this store, or None when none is."""
    try:
        fd = os.open(f"{store}.lock", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class AddressLocks:
    """The listening addresses this daemon has claimed."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, int], socket.socket] = {}

    def claim(self, listener: str, host: str, port: int) -> None:
        """Claim HOST:PORT for this daemon (again is fine); AlreadyRunning if another has it."""
        if port == 0 or (host, port) in self.held:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        name = f"\0prostoy-mail/listen/{host}:{port}"
        try:
            sock.bind(name)
            sock.listen(16)  # (never accepted: a connection only asks who holds the name)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:  # (UNIX sockets not allowed here: no lock, but no false alarm)
                log.warning("listen.%s: cannot lock %s:%d for this daemon (%s); a second daemon could listen "
                            "there too", listener, host, port, exc.strerror or exc)
                return
            raise AlreadyRunning(f"listen.{listener}: another prostoy-mail (PID {_holder(name)}) already listens "
                                 f"on {host}:{port}") from None
        self.held[(host, port)] = sock

    def keep_only(self, addresses: set[tuple[str, int]]) -> None:
        """Release every claimed address not among these (a listener moved or went away)."""
        for address in set(self.held) - addresses:
            self.held.pop(address).close()

    def release_all(self) -> None:
        self.keep_only(set())


def _holder(name: str) -> str:
    """The PID of the process listening on an abstract socket, or "unknown"."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        try:
            probe.settimeout(1.0)
            probe.connect(name)
            credentials = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return "unknown"
    pid, _, _ = struct.unpack("3i", credentials)
    return str(pid)
