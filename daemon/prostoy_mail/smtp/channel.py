"""The daemon and an SMTP worker process talk over two UNIX socket pairs.

- the channel (a stream): length-prefixed pickles both ways. Worker -> daemon: `("ready",)`,
  `("deliver", request, Delivery)`, `("closed", connection)`, `("rejected", reason)`, `("pong",)`.
  Daemon -> worker: `("policy", Policy, hostname)`, `("stored", request, queue_id)` or
  `("failed", request, reply, reason)`, `("ping",)`, `("stop", grace_seconds)`.
- the hand-off (datagrams): each accepted client connection's socket (SCM_RIGHTS), with the
  connection's number, from the daemon to the worker that will serve it.

Pickle is safe here: both ends are this program, and the sockets are a private pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import socket
import struct
from typing import Any

_LENGTH = struct.Struct("!I")
_CONNECTION = struct.Struct("!Q")


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def over(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    def send(self, *message: Any) -> None:
        """Queue a message (never blocks; a closed channel drops it: its reader sees the end)."""
        if self.writer.is_closing():
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.writelines((_LENGTH.pack(len(data)), data))

    async def drain(self) -> None:
        """Wait while the other end is behind in reading (a worker sends whole messages)."""
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def receive(self) -> tuple[Any, ...] | None:
        """The next message, or None when the other end has gone."""
        try:
            length = _LENGTH.unpack(await self.reader.readexactly(_LENGTH.size))[0]
            message: tuple[Any, ...] = pickle.loads(await self.reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return message

    def close(self) -> None:
        self.writer.close()


def hand_off(handoff: socket.socket, connection: int, client: socket.socket) -> None:
    """Pass an accepted client socket to the worker at the other end of `handoff` (raises
    OSError, e.g. BlockingIOError when the worker is not taking them)."""
    socket.send_fds(handoff, [_CONNECTION.pack(connection)], [client.fileno()])


def take_handed(handoff: socket.socket) -> tuple[int, socket.socket] | None:
    """The next client socket handed over, or None when there is none waiting now."""
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(handoff, _CONNECTION.size, 1)
        except (BlockingIOError, InterruptedError):
            return None
        if not data:
            return None
        if fds and len(data) == _CONNECTION.size:
            client = socket.socket(fileno=fds[0])
            client.setblocking(False)
            return _CONNECTION.unpack(data)[0], client
        for fd in fds:  # malformed: never from our daemon; do not leak the descriptor
            socket.close(fd)
