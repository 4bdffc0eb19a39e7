"""Password logins for SMTP submission (and the IMAP server): verified off the loop, throttled.

Argon2 costs tens of milliseconds of CPU by design, so it runs in threads, a few at a
time. Failed logins are counted per client address *and* login: after a few failures each
further attempt for that pair waits longer, and past the limit that login is refused from
that address for a while. Failures for logins that are not known users are counted per
address alone, and block the address for such logins only. So one person mistyping, or
somebody guessing one user's password, behind an office NAT never locks out the others
with correct passwords there; the user can still log in from anywhere else; and spraying
made-up logins from one address is cut off. An unknown user costs the same verification as
a wrong password, and gets the same answer. `prostoy-mail auth unblock ADDRESS` forgets an
address's failures in the running daemon.

A password verified once is recognised again for `[auth] verified_cache_seconds` without
Argon2: what is kept is an HMAC of it under a key made at start and never written anywhere,
by the stored hash (a changed password is a new hash: nothing old matches). Only successes
are kept, so every wrong guess still costs a full verification. Checks of the same password
against the same hash at the same moment share one verification: after a restart, a hundred
mail-client sessions of one user logging in at once cost one Argon2, not a hundred queued
behind [auth] max_parallel_checks (measured: 9.4 s until 100 IMAP clients were idling).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from ..config.model import AuthSettings
from .password_hashes import hash_password, verify_password

log = logging.getLogger(__name__)
MAX_TRACKED = 100_000  # address-and-login records kept at most (old ones are forgotten first)
MAX_VERIFIED = 100_000  # passwords recognised without Argon2, at most (the oldest go first)
UNKNOWN = ""  # the login part of the record counting an address's failures for unknown logins


class Outcome(Enum):
    OK = "ok"
    FAILED = "failed"  # wrong login or password (which one is never told)
    BLOCKED = "blocked"  # too many failures from this address for this login: not checked at all


@dataclass
class _Failures:
    count: int
    first: float
    blocked_until: float = 0.0


class LoginGuard:
    def __init__(self, lookup: Callable[[str], Awaitable[str | None]], settings: Callable[[], AuthSettings],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lookup = lookup  # login -> its password hash (None: no such user, or no password)
        self.settings_in_effect = settings  # ([auth] in effect, as a reload swaps it)
        self.clock = clock
        self._failures: dict[tuple[str, str], _Failures] = {}  # (address, login or UNKNOWN)
        # (sized once, at start: a reload does not resize it)
        self._checks = asyncio.Semaphore(settings().max_parallel_checks)
        self._dummy_hash: str | None = None
        self._key = secrets.token_bytes(32)  # (this process's only: the cache is worthless outside it)
        self._verified: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # stored hash -> (HMAC, until)
        self._in_flight: dict[tuple[str, bytes], asyncio.Future[bool]] = {}  # (stored hash, HMAC) -> its check

    @property
    def settings(self) -> AuthSettings:
        return self.settings_in_effect()

    def blocked_for(self, address: str, login: str = UNKNOWN) -> float:
        """Seconds this login (UNKNOWN: made-up logins) is still refused from this address (0: it may try)."""
        record = self._failures.get((address, login.casefold()))
        if record is None:
            return 0.0
        return max(0.0, record.blocked_until - self.clock())

    def unblock(self, address: str) -> int:
        """Forget every failure counted for this client address; how many records there were."""
        keys = [key for key in self._failures if key[0] == address]
        for key in keys:
            del self._failures[key]
        if keys:
            log.warning("%s: failed logins forgotten (auth unblock): %d records", address, len(keys))
        return len(keys)

    async def check(self, address: str, login: str, password: str) -> Outcome:
        stored = await self.lookup(login) if login else None
        key = (address, login.casefold() if stored is not None else UNKNOWN)
        record = self._current(key)
        if record is not None and record.blocked_until > self.clock():
            return Outcome.BLOCKED
        delay = self._delay(record)
        if delay:
            await asyncio.sleep(delay)
        if await self._verify(stored, password):
            self._failures.pop(key, None)
            return Outcome.OK
        return self._failed(key, login)

    def _delay(self, record: _Failures | None) -> float:
        if record is None or record.count < self.settings.delay_after:
            return 0.0
        return float(min(2 ** (record.count - self.settings.delay_after), self.settings.max_delay))

    def _current(self, key: tuple[str, str]) -> _Failures | None:
        record = self._failures.get(key)
        if record is not None and self.clock() - record.first > self.settings.failure_window \
                and record.blocked_until <= self.clock():
            del self._failures[key]
            return None
        return record

    def _failed(self, key: tuple[str, str], login: str) -> Outcome:
        now = self.clock()
        record = self._current(key)
        if record is None:
            if len(self._failures) >= MAX_TRACKED:
                self._forget_old(now)
            record = self._failures[key] = _Failures(0, now)
        record.count += 1
        address, known = key[0], key[1] != UNKNOWN
        log.info("failed login for %r from %s (%d in a row%s)", login, address, record.count,
                 "" if known else " for unknown logins")
        if record.count >= self.settings.max_failures:
            record.blocked_until = now + self.settings.block_time
            log.warning("%s: %d failed logins %s; refused for %ss", address, record.count,
                        f"for {login!r}" if known else "for unknown logins", self.settings.block_time)
            return Outcome.BLOCKED
        return Outcome.FAILED

    def _forget_old(self, now: float) -> None:
        for key in [k for k, r in self._failures.items()
                    if now - r.first > self.settings.failure_window and r.blocked_until <= now]:
            del self._failures[key]

    async def _verify(self, stored: str | None, password: str) -> bool:
        if stored is not None and self._recognised(stored, password):
            return True
        if stored is None:
            return await self._argon2(stored, password)
        key = (stored, self._mac(password))
        shared = self._in_flight.get(key)
        if shared is not None:  # (the same check is running: its answer is this one's)
            return await asyncio.shield(shared)
        check = self._in_flight[key] = asyncio.ensure_future(self._argon2(stored, password))
        try:
            ok = await asyncio.shield(check)  # (one caller giving up does not cancel the others' check)
        finally:
            if check.done():
                self._in_flight.pop(key, None)
            else:
                check.add_done_callback(lambda _: self._in_flight.pop(key, None))
        if ok and stored is not None and self.settings.verified_cache_seconds > 0:
            self._verified[stored] = (self._mac(password), self.clock() + self.settings.verified_cache_seconds)
            self._verified.move_to_end(stored)
            while len(self._verified) > MAX_VERIFIED:
                self._verified.popitem(last=False)
        return ok

    def _mac(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def _recognised(self, stored: str, password: str) -> bool:
        """The same password as verified against this very hash not long ago."""
        entry = self._verified.get(stored)
        if entry is None:
            return False
        mac, until = entry
        if until <= self.clock() or self.settings.verified_cache_seconds <= 0:
            del self._verified[stored]
            return False
        return hmac.compare_digest(mac, self._mac(password))

    async def _argon2(self, stored: str | None, password: str) -> bool:
        async with self._checks:
            if stored is None:  # the same work as a real check: the answer's timing tells nothing
                if self._dummy_hash is None:
                    self._dummy_hash = await asyncio.to_thread(hash_password, "not a password")
                await asyncio.to_thread(verify_password, self._dummy_hash, password)
                return False
            return await asyncio.to_thread(verify_password, stored, password)
