"""Password logins for SMTP submission (and the IMAP server): verified off the loop, throttled.

Argon2 costs tens of milliseconds of CPU by design, so it runs in threads, a few at a
time. Failed logins are counted per client address, never per user: after a few failures
each further attempt from that address waits longer, and past the limit the address is
refused for a while; the user can still log in from anywhere else. An unknown user costs
the same verification as a wrong password, and gets the same answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from .config.model import AuthSettings
from .passwords import hash_password, verify_password

log = logging.getLogger(__name__)
MAX_TRACKED_ADDRESSES = 100_000


class Outcome(Enum):
    OK = "ok"
    FAILED = "failed"  # wrong login or password (which one is never told)
    BLOCKED = "blocked"  # too many failures from this address: not checked at all


@dataclass
class _Failures:
    count: int
    first: float
    blocked_until: float = 0.0


class LoginGuard:
    def __init__(self, lookup: Callable[[str], Awaitable[str | None]], settings: AuthSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lookup = lookup  # login -> its password hash (None: no such user, or no password)
        self.settings = settings
        self.clock = clock
        self._failures: dict[str, _Failures] = {}
        self._checks = asyncio.Semaphore(settings.max_parallel_checks)
        self._dummy_hash: str | None = None

    def blocked_for(self, address: str) -> float:
        """Seconds this client address is still refused (0: it may try)."""
        record = self._failures.get(address)
        if record is None:
            return 0.0
        return max(0.0, record.blocked_until - self.clock())

    async def check(self, address: str, login: str, password: str) -> Outcome:
        if self.blocked_for(address):
            return Outcome.BLOCKED
        delay = self._delay(address)
        if delay:
            await asyncio.sleep(delay)
        ok = await self._verify(login, password)
        if ok:
            self._failures.pop(address, None)
            return Outcome.OK
        return self._failed(address, login)

    def _delay(self, address: str) -> float:
        record = self._current(address)
        if record is None or record.count < self.settings.delay_after:
            return 0.0
        return float(min(2 ** (record.count - self.settings.delay_after), self.settings.max_delay))

    def _current(self, address: str) -> _Failures | None:
        record = self._failures.get(address)
        if record is not None and self.clock() - record.first > self.settings.failure_window \
                and record.blocked_until <= self.clock():
            del self._failures[address]
            return None
        return record

    def _failed(self, address: str, login: str) -> Outcome:
        now = self.clock()
        record = self._current(address)
        if record is None:
            if len(self._failures) >= MAX_TRACKED_ADDRESSES:
                self._forget_old(now)
            record = self._failures[address] = _Failures(0, now)
        record.count += 1
        log.info("failed login for %r from %s (%d in a row)", login, address, record.count)
        if record.count >= self.settings.max_failures:
            record.blocked_until = now + self.settings.block_time
            log.warning("%s: %d failed logins; refusing logins from this address for %ss", address, record.count,
                        self.settings.block_time)
            return Outcome.BLOCKED
        return Outcome.FAILED

    def _forget_old(self, now: float) -> None:
        for address in [a for a, r in self._failures.items()
                        if now - r.first > self.settings.failure_window and r.blocked_until <= now]:
            del self._failures[address]

    async def _verify(self, login: str, password: str) -> bool:
        stored = await self.lookup(login) if login else None
        async with self._checks:
            if stored is None:  # the same work as a real check: the answer's timing tells nothing
                if self._dummy_hash is None:
                    self._dummy_hash = await asyncio.to_thread(hash_password, "not a password")
                await asyncio.to_thread(verify_password, self._dummy_hash, password)
                return False
            return await asyncio.to_thread(verify_password, stored, password)
