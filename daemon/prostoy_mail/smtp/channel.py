"""The daemon and an SMTP worker process talk over two UNIX socket pairs.

- the channel (a stream): length-prefixed pickles both ways, one message each: the
  dataclasses of worker_messages.py.
- the hand-off (datagrams): the SMTP listening sockets (SCM_RIGHTS), each with the number of
  its listener, from the daemon to every worker, which accepts connections on them.

Pickle is safe here: both ends are this program, and the sockets are a private pair.
"""

from __future__ import annotations

import asyncio
import collections
import pickle
import socket
import struct

_LENGTH = struct.Struct("!I")
_NUMBER = struct.Struct("!Q")


class Channel(asyncio.BufferedProtocol):
    """One end of the channel. Frames are read straight into a buffer (a big one, a whole
    message from a worker, into a buffer of its own size) and unpickled from there: an
    asyncio stream copied each 100 KB message three more times."""

    BUFFER = 256 * 1024

    def __init__(self) -> None:
        self.buffer = bytearray(self.BUFFER)
        self.start = self.end = 0  # the unread bytes: buffer[start:end]
        self.big: bytearray | None = None  # a frame bigger than the buffer, being filled
        self.big_filled = 0
        self.messages: collections.deque[object | None] = collections.deque()  # None: the end
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.writable: asyncio.Event = asyncio.Event()
        self.writable.set()

    @classmethod
    async def over(cls, sock: socket.socket) -> Channel:
        _transport, channel = await asyncio.get_running_loop().connect_accepted_socket(cls, sock)
        return channel

    # --- sending ---------------------------------------------------------------------------

    def send(self, message: object) -> None:
        """Queue a message (never blocks; a closed channel drops it: its reader sees the end)."""
        if self.transport is None or self.transport.is_closing():
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.transport.writelines((_LENGTH.pack(len(data)), data))

    async def drain(self) -> None:
        """Wait while the other end is behind in reading (a worker sends whole messages)."""
        await self.writable.wait()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # --- receiving -------------------------------------------------------------------------

    async def receive(self) -> object | None:
        """The next message, or None when the other end has gone."""
        while not self.messages:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        message = self.messages.popleft()
        if message is None:
            self.messages.append(None)  # (the end stays the end)
        return message

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # (uvloop's is not an asyncio.Transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.big is not None:
            return memoryview(self.big)[self.big_filled:]
        if self.start and len(self.buffer) - self.end < self.BUFFER // 4:  # move the unread bytes to the front
            self.buffer[: self.end - self.start] = self.buffer[self.start: self.end]
            self.start, self.end = 0, self.end - self.start
        return memoryview(self.buffer)[self.end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self.big is not None:
            self.big_filled += nbytes
            if self.big_filled == len(self.big):
                self._arrived(pickle.loads(self.big))
                self.big = None
            return
        self.end += nbytes
        buffer = self.buffer
        while self.end - self.start >= _LENGTH.size:
            length = _LENGTH.unpack_from(buffer, self.start)[0]
            body = self.start + _LENGTH.size
            if self.end - body >= length:
                with memoryview(buffer)[body: body + length] as frame:
                    self._arrived(pickle.loads(frame))
                self.start = body + length
                continue
            if length > len(buffer) - _LENGTH.size:  # too big for the buffer: a buffer of its own
                self.big = bytearray(length)
                self.big_filled = self.end - body
                self.big[: self.big_filled] = buffer[body: self.end]
                self.start = self.end = 0
            break
        if self.start == self.end:
            self.start = self.end = 0

    def _arrived(self, message: object | None) -> None:
        self.messages.append(message)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def eof_received(self) -> bool:
        self._arrived(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._arrived(None)
        self.writable.set()


def hand_off(handoff: socket.socket, number: int, sock: socket.socket) -> None:
    """Pass a socket, with its number, to the process at the other end of `handoff` (raises
    OSError, e.g. BlockingIOError when it is not taking them)."""
    socket.send_fds(handoff, [_NUMBER.pack(number)], [sock.fileno()])


def take_handed(handoff: socket.socket) -> tuple[int, socket.socket] | None:
    """The next socket handed over, with its number; None when there is none waiting now."""
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(handoff, _NUMBER.size, 1)
        except (BlockingIOError, InterruptedError):
            return None
        if not data:
            return None
        if fds and len(data) == _NUMBER.size:
            sock = socket.socket(fileno=fds[0])
            sock.setblocking(False)
            return _NUMBER.unpack(data)[0], sock
        for fd in fds:  # malformed: never from our daemon; do not leak the descriptor
            socket.close(fd)
