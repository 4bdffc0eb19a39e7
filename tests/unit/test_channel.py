"""The daemon <-> SMTP worker channel: frames arrive whole and in order however the bytes are cut."""

from __future__ import annotations

import asyncio
import pickle
import random
import socket
import struct

import pytest

from prostoy_mail.delivery import Delivery
from prostoy_mail.smtp.channel import Channel
from prostoy_mail.smtp.worker_messages import Connections, Handover


def frame(message: tuple[object, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("!I", len(data)) + data


@pytest.mark.parametrize("seed", range(6))
async def test_messages_arrive_whole_and_in_order_however_the_bytes_are_cut(seed: int) -> None:
    await _cut_and_receive(seed)


def test_the_same_on_uvloop() -> None:
    """The daemon and its workers run on uvloop, whose transports fill the buffer themselves."""
    uvloop = pytest.importorskip("uvloop")
    for seed in range(3):
        uvloop.run(_cut_and_receive(seed))


async def _cut_and_receive(seed: int) -> None:
    rng = random.Random(seed)
    # small ones, ones near and over the receive buffer (a buffer of their own), a 1 MiB message
    sizes = [rng.choice([0, 1, 100, 2_000, 60_000, Channel.BUFFER - 10, Channel.BUFFER + 10, 1 << 20])
             for _ in range(40)]
    messages = [("deliver", number, rng.randbytes(size)) for number, size in enumerate(sizes)]
    wire = b"".join(frame(m) for m in messages)
    ours, theirs = socket.socketpair()
    channel = await Channel.over(ours)
    loop = asyncio.get_running_loop()
    theirs.setblocking(False)

    async def write_in_pieces() -> None:
        position = 0
        while position < len(wire):
            piece = rng.choice([1, 3, 4, 5, 700, 65_536, 300_000])
            await loop.sock_sendall(theirs, wire[position: position + piece])
            position += piece
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        theirs.close()

    writer = asyncio.create_task(write_in_pieces())
    received = []
    while (message := await channel.receive()) is not None:
        received.append(message)
    await writer
    assert received == messages
    assert await channel.receive() is None  # the end stays the end
    channel.close()


async def test_what_one_end_sends_the_other_receives() -> None:
    a, b = socket.socketpair()
    left, right = await Channel.over(a), await Channel.over(b)
    big = bytes(range(256)) * 2_000
    delivery = Delivery(big, "a@b.ru", (), "127.0.0.1:5")
    left.send(Handover(1, delivery))
    left.send(Connections(2, 1, {"per_ip": 3}))
    await left.drain()
    assert await right.receive() == Handover(1, delivery)
    assert await right.receive() == Connections(2, 1, {"per_ip": 3})
    left.close()
    assert await right.receive() is None
    right.close()
