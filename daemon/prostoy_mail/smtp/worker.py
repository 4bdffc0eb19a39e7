"""An SMTP worker process: serves inbound SMTP sessions on the listening sockets the daemon hands it.

    python -m prostoy_mail.smtp.worker CHANNEL_FD HANDOFF_FD COUNTS_FD:SLOTS:SLOT MESSAGE_FOLDER LOG_LEVEL

Why processes: one Python process runs on one core (the interpreter lock), and a 2 KB message
costs ~0.6 ms of SMTP protocol work there plus ~0.7 ms of parsing, routing and storing. The
daemon keeps the store and the routing; its workers speak SMTP (and parse), so the two halves
run on different cores (as Postfix's smtpd processes and its queue manager do).

The worker accepts connections on the listening sockets the daemon hands it, after asking the
connection table the workers share whether the limits allow one more (admission.py). The
session is the same `InboundHandler` + `BoundedSMTP` as in the daemon's own process; only
`deliver` differs: it asks the daemon over the channel, which answers after the commit.
A big message is written to its file in the store's message folder here, as it arrives, and
handed over by name. The worker exits when the daemon's end of the channel closes (the daemon
is gone: nothing can be stored, so nothing is acknowledged), or when told to stop: then it
stops accepting and lets sessions in DATA finish first.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import itertools
import logging
import signal
import socket
import sys
from pathlib import Path

from ..delivery import Delivery
from ..logs import setup_logging
from ..mail.parse import TEXT_INLINE, parse_message
from ..store.raw_files import RawFiles
from .admission import SharedCounts
from .channel import Channel, take_handed
from .inbound import DeliveryFailed, InboundHandler, Policy, session_factory
from .limiter import ConnectionLimiter
from .worker_messages import (
    Applied,
    Connections,
    Failed,
    Handover,
    Ping,
    Pong,
    Ready,
    Rejected,
    Stop,
    Stored,
    Unlisten,
    UsePolicy,
)

log = logging.getLogger(__name__)
TALLY_EVERY = 0.1  # seconds


class ConnectionTally:
    """Connections opened, closed and refused, for the daemon's metrics: sent together at most
    every TALLY_EVERY seconds (a message each would cost this worker and the daemon a wake-up
    for every connection)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.opened = self.closed = 0
        self.refused: collections.Counter[str] = collections.Counter()
        self.due: asyncio.TimerHandle | None = None

    def __call__(self, event: str, detail: str) -> None:
        if event == "opened":
            self.opened += 1
        elif event == "closed":
            self.closed += 1
        else:
            self.refused[detail] += 1
        if self.due is None:
            self.due = asyncio.get_running_loop().call_later(TALLY_EVERY, self.send)

    def send(self) -> None:
        if self.due is not None:
            self.due.cancel()
            self.due = None
        self.channel.send(Connections(self.opened, self.closed, dict(self.refused)))
        self.opened = self.closed = 0
        self.refused.clear()


class Worker:
    def __init__(self, channel: Channel, handoff: socket.socket, counts: SharedCounts, files: RawFiles) -> None:
        self.channel = channel
        self.handoff = handoff
        self.counts = counts
        self.files = files
        self.loop = asyncio.get_running_loop()
        self.requests = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[str]] = {}  # deliveries the daemon has not answered yet
        self.policy: Policy  # the daemon's newest (UsePolicy); the first comes before any session
        self.handler: InboundHandler | None = None
        self.limiter: ConnectionLimiter | None = None  # the protocol factory of the listening sockets
        self.servers: dict[int, list[asyncio.AbstractServer]] = {}  # listener number -> its servers here
        self.unlistened: set[int] = set()  # listeners closed (their sockets may still be on the way)
        self.tally = ConnectionTally(channel)
        self.starting: set[asyncio.Task[None]] = set()  # listeners being set up (a task needs a reference)
        self.done = asyncio.Event()  # stopped, or the daemon has gone

    async def deliver(self, delivery: Delivery) -> str:
        """Hand a message to the daemon; its queue id once committed, else DeliveryFailed."""
        if delivery.spooled is None:  # (a big one is parsed by the daemon, one at a time, in a thread)
            delivery = Delivery(delivery.raw, delivery.mail_from, delivery.recipients, delivery.peer,
                                parsed=parse_message(delivery.raw, delivery.mail_from, text_limit=TEXT_INLINE))
        request = next(self.requests)
        answer: asyncio.Future[str] = self.loop.create_future()
        self.waiting[request] = answer
        try:
            self.channel.send(Handover(request, delivery))
            await self.channel.drain()
            return await answer
        finally:
            self.waiting.pop(request, None)

    def apply(self, policy: Policy, hostname: str) -> None:
        self.policy = policy
        if self.handler is None:
            self.handler = InboundHandler(lambda: self.policy, self.deliver,
                                          lambda reason: self.channel.send(Rejected(reason)), spool=self.files)
        make = session_factory(self.handler, hostname, policy.tls)
        if self.limiter is None:
            self.limiter = ConnectionLimiter(policy.limits, make, counts=self.counts, report=self.tally)
        else:
            self.limiter.limits, self.limiter.make = policy.limits, make

    def take_listeners(self) -> None:
        while (handed := take_handed(self.handoff)) is not None:
            listener, sock = handed
            if listener in self.unlistened:
                sock.close()
            else:
                task = self.loop.create_task(self._listen(listener, sock))
                self.starting.add(task)
                task.add_done_callback(self.starting.discard)

    async def _listen(self, listener: int, sock: socket.socket) -> None:
        assert self.limiter is not None
        server = await self.loop.create_server(self.limiter, sock=sock, backlog=511)
        if listener in self.unlistened:  # (closed while this was starting)
            server.close()
        else:
            self.servers.setdefault(listener, []).append(server)

    def unlisten(self, listener: int) -> None:
        self.unlistened.add(listener)
        for server in self.servers.pop(listener, []):
            server.close()  # (no new connections; the sessions go on)

    async def run(self) -> None:
        first = await self.channel.receive()
        if not isinstance(first, UsePolicy):
            return
        self.apply(first.policy, first.hostname)
        gc.freeze()  # (as the daemon does: what is loaded by now lives as long as the process)
        self.loop.add_reader(self.handoff.fileno(), self.take_listeners)
        self.channel.send(Ready())
        self.channel.send(Applied(first.generation))
        receiving = asyncio.create_task(self._receive())
        await self.done.wait()
        receiving.cancel()

    async def _receive(self) -> None:
        while (message := await self.channel.receive()) is not None:
            match message:
                case Stored(request, queue_id):
                    answer = self.waiting.get(request)
                    if answer is not None and not answer.done():  # (else its session has gone)
                        answer.set_result(queue_id)
                case Failed(request, reply, reason):
                    answer = self.waiting.get(request)
                    if answer is not None and not answer.done():
                        answer.set_exception(DeliveryFailed(reply, reason))
                case Ping():
                    self.channel.send(Pong())  # (answered from this loop: it is not stuck)
                case UsePolicy(policy, hostname, generation):
                    self.apply(policy, hostname)
                    self.channel.send(Applied(generation))
                case Unlisten(listener):
                    self.unlisten(listener)
                case Stop(grace):
                    self.loop.create_task(self._stop(grace))
                case _:
                    log.error("the daemon sent what this worker does not know: %r", type(message).__name__)
        log.info("the daemon has gone; the SMTP worker stops")
        self.done.set()

    async def _stop(self, grace: float) -> None:
        """No new sessions; those in DATA get their reply (for at most `grace` seconds)."""
        self.loop.remove_reader(self.handoff.fileno())
        for listener in list(self.servers):
            self.unlisten(listener)
        assert self.handler is not None
        deadline = self.loop.time() + grace
        while self.handler.in_data and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)  # let the last replies go out
        self.tally.send()
        self.done.set()


async def _main(channel_fd: int, handoff_fd: int, counts: SharedCounts, folder: Path) -> None:
    channel = await Channel.over(socket.socket(fileno=channel_fd))
    handoff = socket.socket(fileno=handoff_fd)
    handoff.setblocking(False)
    await Worker(channel, handoff, counts, RawFiles(folder)).run()


def main(argv: list[str]) -> int:
    channel_fd, handoff_fd, table, folder, level = argv
    counts_fd, slots, slot = map(int, table.split(":"))
    counts = SharedCounts(counts_fd, slots, slot)
    setup_logging(level)
    # Signals are the daemon's: systemd sends SIGTERM to every process of the service, a terminal
    # SIGINT to the whole group; the daemon tells its workers when to stop (after sessions in DATA).
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_main(int(channel_fd), int(handoff_fd), counts, Path(folder)))
    else:
        uvloop.run(_main(int(channel_fd), int(handoff_fd), counts, Path(folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
