"""DATA of a big message streamed into its file as it arrives, never whole in memory.

BoundedSMTP reads DATA into memory while it is small (most mail); past SPOOL_AT bytes it
hands over to a DataSpool, which dot-unstuffs, measures lines and size, hashes and writes
each chunk to the store's file for the message, keeping only a few bytes between chunks.
Aiosmtpd (and our in-memory reader) would hold the whole message, and then copies of it:
a 30 MiB message grew the daemon by 93 MiB.
"""

from __future__ import annotations

import asyncio

from ..store.raw_files import RawFiles, SpooledRaw, SpoolWriter
from .replies import store_failure_reply

SPOOL_AT = 1024 * 1024  # bytes of DATA kept in memory before the rest goes to a file
HEAD_SIZE = 1024 * 1024 + 64 * 1024  # what is kept in memory for parsing: headers and the body's start
_END_OF_DATA = b"\r\n.\r\n"


class DataSpool:
    """The stuffed DATA stream from some point on; `feed()` each chunk until `end` is set."""

    def __init__(self, files: RawFiles, size_limit: int, line_limit: int) -> None:
        self.problem: str | None = None  # the reply for a broken limit or a failed write: then nothing more is kept
        try:
            self.writer: SpoolWriter | None = files.spool(HEAD_SIZE)
        except OSError as exc:
            self.writer = None
            self._failed_write(exc)
        self.files_folder = files.folder
        self.size_limit = size_limit
        self.line_limit = line_limit
        self.pending = bytearray()  # stuffed bytes not yet written (the end marker may start here)
        self.context = b"\r\n"  # the two stuffed bytes before `pending` (a "." after CRLF is stuffing)
        self.stuffed_size = 0  # as aiosmtpd counts the size: the bytes as sent
        self.line = 0  # length of the line in progress
        self.clean = True  # CRLF only, no bare CR or LF
        self.rest = b""  # what followed the end marker (pipelined commands)
        self.ended = False

    def feed(self, chunk: bytes) -> None:
        search_from = max(0, len(self.pending) - 4)
        self.pending += chunk
        end = self.pending.find(_END_OF_DATA, search_from)
        if end >= 0:
            self.rest = bytes(self.pending[end + len(_END_OF_DATA):])
            self._emit(bytes(self.pending[: end + 2]))  # the message ends with its last CRLF
            self.pending.clear()
            self.ended = True
            return
        keep = 4 if not self.pending.endswith(b"\r", 0, len(self.pending) - 4) else 5  # never split a CRLF
        if len(self.pending) > keep:
            region = bytes(self.pending[:-keep])
            del self.pending[:-keep]
            self._emit(region)

    def _emit(self, region: bytes) -> None:
        if not region:
            return
        if self.problem is None:
            self._measure(region)
        context = self.context
        self.context = (context + region)[-2:]
        if self.problem is not None or self.writer is None:
            return
        self.clean = self.clean and _clean(region)
        try:
            self.writer.write((context + region).replace(b"\r\n.", b"\r\n")[len(context):])
        except OSError as exc:  # the rest of DATA is still read (and dropped), then this is the reply
            self._failed_write(exc)

    def _failed_write(self, exc: OSError) -> None:
        reply, _reason = store_failure_reply(exc, "a big message's file", "storing")  # 452 when the disk is full
        self._fail(reply)  # (answered once the rest of DATA has been read)

    def _measure(self, region: bytes) -> None:
        """The first limit broken, in the order the bytes came (checked a chunk at a time).
        A region never ends between the CR and LF of a CRLF (feed() holds a CR back)."""
        pieces = region.split(b"\r\n")
        first = self.line + len(pieces[0])  # it continues the line in progress
        self.line = first if len(pieces) == 1 else len(pieces[-1])  # the new line in progress
        longest = max(first, max(map(len, pieces[1:]), default=0))  # (a line in progress counts already)
        self.stuffed_size += len(region)
        if longest + 2 > self.line_limit:
            self._fail("500 Line too long (see RFC5321 4.5.3.1.6)")
        elif self.size_limit and self.stuffed_size > self.size_limit:
            self._fail("552 Error: Too much mail data")

    def _fail(self, reply: str) -> None:
        self.problem = reply
        if self.writer is not None:
            self.writer.discard()
            self.writer = None

    async def finish(self) -> SpooledRaw | None:
        """The message's file, durable (synced off the event loop); None if a limit was broken."""
        if self.writer is None:
            return None
        writer, self.writer = self.writer, None
        try:
            return await asyncio.to_thread(writer.finish)
        except OSError as exc:  # (its last write or the sync)
            writer.discard()
            self._failed_write(exc)
            return None
        except BaseException:
            writer.discard()
            raise

    def discard(self) -> None:
        """The session ended before the data did: no file is left."""
        if self.writer is not None:
            self.writer.discard()
            self.writer = None


def _clean(region: bytes) -> bool:
    pairs = region.count(b"\r\n")
    return region.count(b"\r") == pairs and region.count(b"\n") == pairs
