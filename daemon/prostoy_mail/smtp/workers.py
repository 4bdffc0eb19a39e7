"""The daemon's side of its SMTP worker processes (see worker.py for why they exist).

The daemon binds the SMTP listening sockets and hands every worker a copy; the workers accept
connections on them themselves, so a connection goes straight to a worker, with no hop through
the daemon (as with Postfix's smtpd processes). The connection limits hold for all workers
together through a table they share (admission.py). Messages come back over the channel and go
into the one intake; the worker answers 250 only once the daemon has said the commit is done.
A worker that dies, or stops answering pings, is replaced in its slot; its sessions are lost
(their clients were told nothing and send again).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..child_process import module_command
from ..delivery import Delivery
from ..errors import ProstoyMailError
from ..metrics import Metrics
from .admission import SharedCounts
from .channel import Channel, hand_off
from .inbound import Deliver, Policy
from .limiter import count_connections
from .replies import store_failure_reply
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
START_TIMEOUT = 30.0
RESPAWN_DELAY = 1.0
PING_EVERY = 5.0  # seconds between the daemon's pings of each worker
SILENT_LIMIT = 30.0  # seconds a worker may go without a word before it is taken for hung and killed


@dataclass(eq=False)
class _Worker:
    number: int
    slot: int  # its region of the shared connection table (a replacement takes the same one)
    process: asyncio.subprocess.Process
    channel: Channel
    handoff: socket.socket  # the listening sockets go to it over this
    ready: asyncio.Future[None]
    sessions: int = 0  # its open sessions, as it has reported them
    reader: asyncio.Task[None] | None = None  # reads what it says (and replaces it when it has gone)
    last_heard: float = 0.0  # the loop's time of its last message (its loop answers pings)
    generation: int = 0  # of the policy it has said it applies
    pongs: int = 0  # pings it has answered


class SmtpWorkers:
    def __init__(self, count: int, policy: Policy, hostname: str, generation: int, folder: Path,
                 deliver: Deliver, metrics: Metrics | None = None) -> None:
        self.count = count
        self.policy = policy
        self.hostname = hostname
        self.folder = folder
        self.deliver = deliver
        self.metrics = metrics
        self.workers: list[_Worker] = []
        self.numbers = itertools.count(1)
        self.counts = SharedCounts.create(count)  # every worker's connections, for the limits
        self.listening: dict[int, list[socket.socket]] = {}  # listener number -> its sockets
        self.listener_numbers = itertools.count(1)
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.watching: asyncio.Task[None] | None = None
        self.generation = generation  # the daemon's configuration generation of the newest policy
        self.applied = asyncio.Condition()  # notified when a worker reports a generation

    async def start(self) -> None:
        workers = await asyncio.gather(*(self._spawn(slot) for slot in range(self.count)))
        self.workers.extend(workers)
        try:
            await asyncio.wait_for(asyncio.gather(*(w.ready for w in workers)), START_TIMEOUT)
        except (TimeoutError, ProstoyMailError) as exc:
            await self.stop(0)
            raise ProstoyMailError(f"the SMTP worker processes did not start: {exc}") from exc
        self.watching = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """Ping every worker; kill one that has said nothing for SILENT_LIMIT seconds (its loop is
        stuck: its sessions would hang for good). It is then replaced like one that died."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            await asyncio.sleep(PING_EVERY)
            for worker in list(self.workers):
                if not worker.ready.done() or worker.process.returncode is not None:
                    continue
                if loop.time() - worker.last_heard > SILENT_LIMIT:
                    log.error("smtp worker %d (pid %d) has not answered for %.0f s; killing it", worker.number,
                              worker.process.pid, loop.time() - worker.last_heard)
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
                else:
                    worker.channel.send(Ping())

    async def _spawn(self, slot: int) -> _Worker:
        loop = asyncio.get_running_loop()
        channel_ours, channel_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        handoff_ours, handoff_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        handoff_ours.setblocking(False)
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        argv, env = module_command("prostoy_mail.smtp.worker", str(channel_theirs.fileno()),
                                   str(handoff_theirs.fileno()), f"{self.counts.fd}:{self.count}:{slot}",
                                   str(self.folder), str(level))
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, pass_fds=(channel_theirs.fileno(), handoff_theirs.fileno(), self.counts.fd), env=env,
                stdin=asyncio.subprocess.DEVNULL)
        finally:
            channel_theirs.close()
            handoff_theirs.close()
        worker = _Worker(next(self.numbers), slot, process, await Channel.over(channel_ours), handoff_ours,
                         loop.create_future())
        worker.channel.send(UsePolicy(self.policy, self.hostname, self.generation))
        worker.reader = asyncio.create_task(self._listen_to(worker))
        return worker

    # --- listening ----------------------------------------------------------------------

    def listen(self, sockets: list[socket.socket]) -> Callable[[], None]:
        """Have every worker (and every one started later) accept on `sockets`; returns what
        stops that (the workers close their copies; sessions already open go on)."""
        listener = next(self.listener_numbers)
        self.listening[listener] = sockets
        for worker in self.workers:
            if worker.ready.done() and worker.ready.exception() is None:
                self._hand_listener(worker, listener, sockets)

        def close() -> None:
            for worker in self.workers:
                worker.channel.send(Unlisten(listener))
            for sock in self.listening.pop(listener, []):
                sock.close()

        return close

    def _hand_listener(self, worker: _Worker, listener: int, sockets: list[socket.socket]) -> None:
        for sock in sockets:
            try:
                hand_off(worker.handoff, listener, sock)
            except OSError as exc:  # it has gone (and will be replaced, and given them then)
                log.warning("smtp worker %d does not take its listening sockets: %s", worker.number, exc)
                return

    # --- what workers say ----------------------------------------------------------------

    async def _listen_to(self, worker: _Worker) -> None:
        loop = asyncio.get_running_loop()
        while (message := await worker.channel.receive()) is not None:
            worker.last_heard = loop.time()
            match message:
                case Handover(request, delivery):
                    task = asyncio.create_task(self._deliver(worker, request, delivery))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                case Connections(opened, closed, refused):
                    self._tally(worker, opened, closed, refused)
                case Rejected(reason):
                    if self.metrics is not None:
                        self.metrics.count_rejected(reason)
                case Applied(generation):
                    worker.generation = generation
                    async with self.applied:
                        self.applied.notify_all()
                case Ready():
                    if not worker.ready.done():
                        worker.ready.set_result(None)
                        for listener, sockets in self.listening.items():
                            self._hand_listener(worker, listener, sockets)
                case Pong():
                    worker.pongs += 1  # (being heard from is the point)
                case _:
                    log.error("smtp worker %d said what the daemon does not know: %r", worker.number,
                              type(message).__name__)
        await self._gone(worker)

    async def _deliver(self, worker: _Worker, request: int, delivery: Delivery) -> None:
        try:
            worker.channel.send(Stored(request, await self.deliver(delivery)))
        except Exception as exc:
            worker.channel.send(Failed(request, *store_failure_reply(exc, delivery.peer, "storing")))

    def _tally(self, worker: _Worker, opened: int, closed: int, refused: dict[str, int]) -> None:
        worker.sessions += opened - closed
        count_connections(self.metrics, "smtp", opened, closed, refused)

    async def _gone(self, worker: _Worker) -> None:
        """A worker's channel closed: it exited (or is about to). Its sessions are gone."""
        code = await worker.process.wait()
        self.counts.clear(worker.slot)
        self._tally(worker, 0, worker.sessions, {})  # its sessions went with it
        worker.channel.close()
        worker.handoff.close()
        if not worker.ready.done():
            worker.ready.set_exception(ProstoyMailError(f"SMTP worker {worker.number} exited with {code}"))
        if worker in self.workers:
            self.workers.remove(worker)
        if self.stopping:
            return
        log.error("smtp worker %d (pid %d) exited with %s; starting another", worker.number,
                  worker.process.pid, code)
        while True:
            await asyncio.sleep(RESPAWN_DELAY)
            if self.stopping:
                return
            try:
                self.workers.append(await self._spawn(worker.slot))
                return
            except OSError as exc:
                log.error("cannot start an smtp worker: %s; trying again", exc)

    # --- reload and stop -----------------------------------------------------------------

    def apply(self, policy: Policy, hostname: str, generation: int) -> None:
        """The policy of the daemon's configuration `generation`, for every worker (and those
        started later); each acknowledges it (applied_everywhere)."""
        self.policy, self.hostname, self.generation = policy, hostname, generation
        for worker in self.workers:
            worker.channel.send(UsePolicy(policy, hostname, generation))

    async def applied_everywhere(self, timeout: float = 10.0) -> bool:
        """Whether every running worker has said it applies the newest policy (within `timeout`);
        a worker that is starting gets it first thing, before its Ready."""
        async def everyone() -> None:
            async with self.applied:
                await self.applied.wait_for(
                    lambda: all(w.generation >= self.generation for w in self.workers if w.ready.done()))

        try:
            await asyncio.wait_for(everyone(), timeout)
            return True
        except TimeoutError:
            return False

    async def stop(self, grace: float) -> None:
        """Workers take no new sessions; sessions in DATA finish (at most `grace` seconds)."""
        self.stopping = True
        if self.watching is not None:
            self.watching.cancel()
        workers = list(self.workers)
        for worker in workers:
            worker.channel.send(Stop(grace))
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), grace + 5)
            except TimeoutError:
                log.warning("smtp worker %d did not stop; killing it", worker.number)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
            if worker.reader is not None:
                await worker.reader
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.counts.close()
