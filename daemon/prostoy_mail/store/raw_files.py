"""Raw messages too big for the database, kept as files beside it, each written once.

A 5 MB message stored in SQLite is written twice (into the WAL, then into the database at the
checkpoint) and synced twice; as a file it is written and synced once, and by the thread that
received it, while the store's writer commits other messages. The file is durable (fsync of
the file, then of its folder) before the row that names it is committed, so a crash leaves at
worst a file that no row names: `sweep()` removes those once they are old enough that no
transaction can still be about to name them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..mail.compact import reduce_by_fields

EXTERNAL_AT = 1024 * 1024  # bytes from which a raw message is kept as a file
_SUFFIX = ".eml"


@dataclass(frozen=True, slots=True)
class SpooledRaw:
    """A message written to its file while it arrived, never whole in memory."""

    name: str  # the file's name in the store's RawFiles
    size: int
    sha256: str
    head: bytes  # its first bytes: the headers and enough of the body for the comment's text

    __reduce__ = reduce_by_fields  # (pickled by SMTP workers for every message)


class SpoolWriter:
    """One file being written as a message arrives; `finish()` makes it durable."""

    def __init__(self, files: RawFiles, head_size: int) -> None:
        files.ensure_folder()
        self.files = files
        self.name = secrets.token_hex(16) + _SUFFIX
        self._fd: int | None = os.open(files.folder / self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._head_size = head_size
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        if len(self._head) < self._head_size:
            self._head += data[: self._head_size - len(self._head)]
        self._hash.update(data)
        self.size += len(data)
        with memoryview(data) as view:
            written = 0
            while written < len(view):
                written += os.write(self._fd, view[written:])

    def finish(self) -> SpooledRaw:
        """Sync the file and its name (blocking: call it off the event loop)."""
        assert self._fd is not None
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None
        _sync_folder(self.files.folder)
        return SpooledRaw(self.name, self.size, self._hash.hexdigest(), bytes(self._head))

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        (self.files.folder / self.name).unlink(missing_ok=True)


class RawFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def beside(cls, store_path: Path) -> RawFiles:
        """The folder of a store's message files: `store.db.messages` next to `store.db`."""
        return cls(store_path.with_name(store_path.name + ".messages"))

    def ensure_folder(self) -> None:
        if not self.folder.is_dir():
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _sync_folder(self.folder.parent)

    def spool(self, head_size: int) -> SpoolWriter:
        """A new file to write a message into as it arrives."""
        return SpoolWriter(self, head_size)

    def write(self, raw: bytes, head_size: int = 0) -> SpooledRaw:
        """Write `raw` to a new file, durably, for the row that will refer to it."""
        writer = self.spool(head_size)
        try:
            writer.write(raw)
            return writer.finish()
        except BaseException:
            writer.discard()
            raise

    def read(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def open(self, name: str) -> BinaryIO:
        """The file, to read a line at a time."""
        return self._path(name).open("rb")

    def remove(self, name: str) -> None:
        """A file no row names (a refused or rewritten message)."""
        self._path(name).unlink(missing_ok=True)

    def _path(self, name: str) -> Path:
        if os.sep in name or not name.endswith(_SUFFIX):  # only ever a name this class made
            raise ValueError(f"not a message file name: {name!r}")
        return self.folder / name

    def sweep(self, referenced: Iterable[str], older_than: float) -> int:
        """Remove files no row refers to and older than `older_than` seconds; how many."""
        if not self.folder.is_dir():
            return 0
        keep = set(referenced)
        limit = time.time() - older_than
        removed = 0
        for path in self.folder.glob("*" + _SUFFIX):
            if path.name not in keep and path.stat().st_mtime < limit:
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
