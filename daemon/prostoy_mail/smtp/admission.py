"""Connection counts: how many sessions are open, in all and per client address.

`LocalCounts` serves sessions in one process. `SharedCounts` serves SMTP worker processes
that accept connections themselves, as Postfix's smtpd processes do: before greeting a client,
a worker asks the shared table (as smtpd asks anvil), so the limits hold for all of them
together, exactly.

The shared table is one memfd that the daemon creates and every worker maps: one region per
worker slot, written only by the worker in that slot, read by all. A POSIX lock on the file
makes "check the limits, then count the connection" one step across processes; the kernel
drops the lock of a process that dies. When a worker dies the daemon clears its region (its
connections died with it) before another worker takes the slot.

A region: [connections: u32][entries: u32], then `entries` entries of [address key: 16 bytes]
[connections from it: u32], kept packed (a freed entry takes the last one's place), so looking
an address up in another worker's region searches only the entries in use.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
from typing import Literal, Protocol

from ..config.model import SmtpLimits

Refusal = Literal["total_limit", "per_address_limit"]
_HEADER = struct.Struct("=II")
_ENTRY = struct.Struct("=16sI")
ADDRESSES_PER_WORKER = 65536  # client addresses one worker can serve at once (mapped lazily: ~1.3 MB virtual)
_REGION = _HEADER.size + _ENTRY.size * ADDRESSES_PER_WORKER


class ConnectionCounts(Protocol):
    def take(self, ip: str, limits: SmtpLimits) -> Refusal | None:
        """Count a connection from `ip` and return None, or the limit it would break."""

    def give_back(self, ip: str) -> None:
        """A connection `take` counted has closed."""


class LocalCounts:
    """The sessions of one process."""

    def __init__(self) -> None:
        self.active = 0
        self.per_ip: dict[str, int] = {}

    def take(self, ip: str, limits: SmtpLimits) -> Refusal | None:
        if self.active >= limits.max_connections:
            return "total_limit"
        if self.per_ip.get(ip, 0) >= limits.max_connections_per_ip:
            return "per_address_limit"
        self.active += 1
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        return None

    def give_back(self, ip: str) -> None:
        self.active -= 1
        left = self.per_ip.get(ip, 1) - 1
        if left:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)


def _key(ip: str) -> bytes:
    return hashlib.blake2b(ip.encode(), digest_size=16).digest()


class SharedCounts:
    """The table over a memfd of `slots` regions; `slot`: the region this process writes (None
    for the daemon, which only reads and clears)."""

    def __init__(self, fd: int, slots: int, slot: int | None = None) -> None:
        self.fd = fd
        self.slots = slots
        self.slot = slot
        self.map = mmap.mmap(fd, slots * _REGION)
        self.mine: dict[bytes, int] = {}  # address key -> its entry in this process's region

    @classmethod
    def create(cls, slots: int) -> SharedCounts:
        fd = os.memfd_create("prostoy-mail-smtp-connections", os.MFD_CLOEXEC)
        os.ftruncate(fd, slots * _REGION)  # (zero-filled; pages are allocated only when written)
        return cls(fd, slots)

    def close(self) -> None:
        if self.fd >= 0:  # (once: a second os.close could hit a descriptor since given the same number)
            self.map.close()
            os.close(self.fd)
            self.fd = -1

    # --- a worker's side -------------------------------------------------------------------

    def take(self, ip: str, limits: SmtpLimits) -> Refusal | None:
        assert self.slot is not None
        key = _key(ip)
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            if sum(self.connections(slot) for slot in range(self.slots)) >= limits.max_connections:
                return "total_limit"
            if sum(self._from(slot, key) for slot in range(self.slots)) >= limits.max_connections_per_ip:
                return "per_address_limit"
            base = self.slot * _REGION
            connections, entries = _HEADER.unpack_from(self.map, base)
            entry = self.mine.get(key)
            if entry is None:
                if entries == ADDRESSES_PER_WORKER:
                    return "total_limit"
                entry = self.mine[key] = entries
                entries += 1
                _ENTRY.pack_into(self.map, self._entry_at(self.slot, entry), key, 1)
            else:
                offset = self._entry_at(self.slot, entry)
                _ENTRY.pack_into(self.map, offset, key, _ENTRY.unpack_from(self.map, offset)[1] + 1)
            _HEADER.pack_into(self.map, base, connections + 1, entries)
            return None
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def give_back(self, ip: str) -> None:
        assert self.slot is not None
        key = _key(ip)
        entry = self.mine.get(key)
        if entry is None:
            return
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            base = self.slot * _REGION
            connections, entries = _HEADER.unpack_from(self.map, base)
            offset = self._entry_at(self.slot, entry)
            left = _ENTRY.unpack_from(self.map, offset)[1] - 1
            if left:
                _ENTRY.pack_into(self.map, offset, key, left)
            else:  # the last entry moves into its place
                del self.mine[key]
                entries -= 1
                if entry != entries:
                    last_key, last_count = _ENTRY.unpack_from(self.map, self._entry_at(self.slot, entries))
                    _ENTRY.pack_into(self.map, offset, last_key, last_count)
                    self.mine[last_key] = entry
            _HEADER.pack_into(self.map, base, connections - 1, entries)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    # --- reading, and the daemon's side ----------------------------------------------------

    def connections(self, slot: int) -> int:
        """The connections the worker in `slot` has open."""
        return int(_HEADER.unpack_from(self.map, slot * _REGION)[0])

    def clear(self, slot: int) -> None:
        """Forget the connections of the worker in `slot` (it has died, and they with it)."""
        if self.fd < 0:  # (closed: the workers have all stopped)
            return
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            _HEADER.pack_into(self.map, slot * _REGION, 0, 0)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)

    def _from(self, slot: int, key: bytes) -> int:
        """Connections from the address with `key` in `slot`'s region."""
        if slot == self.slot:
            entry = self.mine.get(key)
            return 0 if entry is None else int(_ENTRY.unpack_from(self.map, self._entry_at(slot, entry))[1])
        start = self._entry_at(slot, 0)
        end = start + _HEADER.unpack_from(self.map, slot * _REGION)[1] * _ENTRY.size
        found = self.map.find(key, start, end)
        while found >= 0:
            if (found - start) % _ENTRY.size == 0:  # (a key, not bytes that happen to span two entries)
                return int(_ENTRY.unpack_from(self.map, found)[1])
            found = self.map.find(key, found + 1, end)
        return 0

    @staticmethod
    def _entry_at(slot: int, entry: int) -> int:
        return slot * _REGION + _HEADER.size + entry * _ENTRY.size
