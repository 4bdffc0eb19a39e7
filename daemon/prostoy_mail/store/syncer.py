"""The daemon's side of the process that makes the store's commits durable (sync_process.py).

The store's writer thread commits a batch (the WAL frames written, not yet synced) and asks
for a sync by the batch's number; the sync process syncs the WAL file (once for every number
waiting) and answers with the highest number it covered, and the error if the sync failed.
The daemon's event loop reads the answer and only then tells the batches' callers.

Why a process and not a thread of the daemon: a thread back from fdatasync must take the
interpreter lock again before it can tell anyone, and in a busy daemon (its event loop and
the writer thread) that wait was longer than the sync itself: 1.47 ms median against 0.61 ms
for the same sync from another process (2 KB mail at 10 SMTP sessions, measured). This
process holds nothing anybody waits for. fdatasync acts on the file, not on a descriptor, so
it flushes the frames the daemon wrote.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any

from ..child_process import module_command
from .sync_process import ANSWER, REQUEST, sync

log = logging.getLogger(__name__)
RESTART_DELAY = 1.0  # seconds before another try when the sync process cannot be started
Committed = list[tuple[Any, tuple[bool, Any]]]  # (job, (ok, result or exception)) of one batch


class SyncProcess:
    """The daemon's side. `committed()` (from the writer thread) hands over a batch whose
    commit is written; once the sync process says the WAL is synced past it, `answer` gets it
    on the event loop that made this object (or its outcomes turned into the sync's error)."""

    def __init__(self, wal: str, answer: Callable[[Committed], None]) -> None:
        self.wal = wal
        self.answer = answer
        self.loop = asyncio.get_running_loop()
        self.lock = threading.Lock()  # the batch numbers, the waiting batches and the request pipe
        self.waiting: collections.deque[tuple[int, Committed]] = collections.deque()
        self.number = 0  # the last batch committed
        self.received = b""
        self.closed = False
        self._start()

    def _start(self) -> None:
        requests_theirs, requests = os.pipe()
        answers, answers_theirs = os.pipe()
        argv, env = module_command("prostoy_mail.store.sync_process", self.wal, str(requests_theirs),
                                   str(answers_theirs))
        try:
            self.process = subprocess.Popen(argv, env=env, pass_fds=(requests_theirs, answers_theirs),
                                            stdin=subprocess.DEVNULL)
        except BaseException:
            os.close(requests)
            os.close(answers)
            raise
        finally:
            os.close(requests_theirs)
            os.close(answers_theirs)
        self.requests, self.answers = requests, answers  # (only now: a failed start leaves no stale numbers)
        os.set_blocking(answers, False)
        self.loop.add_reader(answers, self._read_answers)

    def committed(self, batch: Committed) -> None:
        with self.lock:
            self.number += 1
            self.waiting.append((self.number, batch))
            with contextlib.suppress(OSError):  # it has gone: it is replaced and asked again
                os.write(self.requests, REQUEST.pack(self.number))

    def _read_answers(self) -> None:
        try:
            data = os.read(self.answers, 4096)
        except BlockingIOError:
            return
        if not data:
            self._replace()
            return
        self.received += data
        while len(self.received) >= ANSWER.size:
            number, error = ANSWER.unpack_from(self.received)
            self.received = self.received[ANSWER.size:]
            self._answer_up_to(number, error)

    def _answer_up_to(self, number: int, error: int) -> None:
        synced: Committed = []
        with self.lock:
            while self.waiting and self.waiting[0][0] <= number:
                synced.extend(self.waiting.popleft()[1])
        if error:  # committed, but not known to be on disk: nobody is told it is
            failure = OSError(error, os.strerror(error))
            log.error("store: syncing %s failed: %s", self.wal, failure)
            synced = [(job, (False, failure)) for job, _ in synced]
        if synced:
            self.answer(synced)

    def _replace(self) -> None:
        """The sync process has gone (killed?): another one syncs what is waiting."""
        self._stop_reading()
        code = self.process.wait()
        if not self.closed:
            log.error("store: the sync process exited with %s; starting another", code)
            self._restart()

    def _restart(self) -> None:
        if self.closed:
            return
        with self.lock:
            os.close(self.requests)
            try:
                self._start()
            except OSError as exc:
                log.error("store: cannot start the sync process: %s; trying again", exc)
                self.requests = os.open(os.devnull, os.O_WRONLY)  # (meanwhile requests go nowhere)
                self.loop.call_later(RESTART_DELAY, self._restart)
                return
            if self.waiting:
                os.write(self.requests, REQUEST.pack(self.number))

    def close(self) -> None:
        """After the writer's last batch (from any thread): what is still waiting is synced
        here and answered on the loop; the process stops."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            last = [job for _, batch in self.waiting for job in batch]
            self.waiting.clear()
            os.close(self.requests)  # (the process sees the end and exits)
        if last:
            try:
                sync(self.wal)
            except OSError as exc:
                log.error("store: syncing %s failed: %s", self.wal, exc)
                last = [(job, (False, exc)) for job, _ in last]
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        try:
            self.loop.call_soon_threadsafe(self._last_answers, last)
        except RuntimeError:  # its loop has closed: nobody waits for answers, nothing reads the pipe
            if self.answers >= 0:
                os.close(self.answers)
                self.answers = -1

    def _last_answers(self, last: Committed) -> None:
        self._stop_reading()
        if last:
            self.answer(last)

    def _stop_reading(self) -> None:
        if self.answers >= 0:
            self.loop.remove_reader(self.answers)
            os.close(self.answers)
            self.answers = -1
