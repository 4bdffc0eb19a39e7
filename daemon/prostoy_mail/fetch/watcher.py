"""One watcher per gateway: a thread that keeps a mailbox and the task store in step.

IMAP: connect, catch up on everything above the last UID taken (for the current UIDVALIDITY),
then IDLE, and catch up again on every wake (and when IDLE is renewed); without IDLE, poll.
Every message goes through the intake; only after its transaction has committed is anything
changed on the server (mark read, delete), and such changes stay recorded as pending until
done, so a crash at any point neither loses nor duplicates mail. Failures back off
exponentially with jitter and are recorded for `gateway list`.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import imaplib
import logging
import poplib
import random
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TypeVar

from ..config.model import FetchSettings, Gateway, Server
from ..intake import Accepted, Fetch, Inbound
from ..mail.mime_scan import parse_big
from ..metrics import Metrics
from ..store.ports import FetchedKey, StoreUnavailable
from ..store.raw_files import EXTERNAL_AT, RawFiles
from ..store.roles import BlockingStoreJobs, FetchLedger
from .errors import FetchError
from .imap import FETCH_BATCH, FETCH_BATCH_BYTES, MAX_MESSAGE_SIZE, TIMEOUT, ImapConnection, TlsSettings
from .pop3 import Pop3Connection
from .secrets import gateway_password

log = logging.getLogger(__name__)
T = TypeVar("T")


PIPELINE_DEPTH = 3  # batches between download and commit: downloading, parsing, storing


@dataclass(frozen=True, slots=True)
class FetchContext:
    """What watchers need from the daemon: its loop, the intake and the store's writer."""

    loop: asyncio.AbstractEventLoop
    # the intake, batched, for an organisation's gateway (fair.FairAdmission: by its slug)
    accept: Callable[[str, list[Inbound]], Awaitable[list[Accepted | Exception]]]
    writer: BlockingStoreJobs[FetchLedger]  # (called from the watchers' threads)
    files: RawFiles  # the store's message files: a big fetched message is written there first
    settings: FetchSettings
    metrics: Metrics | None = None
    max_message_size: int = MAX_MESSAGE_SIZE  # [smtp] max_message_size: bigger mail is not fetched


def tls_of(server: Server, timeout: float = TIMEOUT, max_message_size: int = MAX_MESSAGE_SIZE) -> TlsSettings:
    return TlsSettings(server.fetch_security, server.verify_certificate,
                       str(server.ca_file) if server.ca_file else None, timeout, max_message_size, server.public_only)


class Watcher:
    """What every watcher does: its thread, the intake and store calls, failures and backoff."""

    polls = False  # True: one session per check, then wait poll_interval (POP3)

    def __init__(self, gateway: Gateway, server: Server, context: FetchContext, organisation: str = "main") -> None:
        self.gateway = gateway
        self.server = server
        self.context = context
        self.organisation = organisation  # its slug (the metrics' label)
        self.scope = f"gateway:{gateway.email}"
        self.stopping = threading.Event()
        self.connection: ImapConnection | Pop3Connection | None = None
        self.attempts: dict[FetchedKey, int] = {}
        self.checks = 0  # whole checks of the mailbox that went well (each ends with record_success)
        self.thread = threading.Thread(target=self._run, name=f"fetch {gateway.email}", daemon=True)
        self._preparer: concurrent.futures.ThreadPoolExecutor

    # --- from the event loop --------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        connection = self.connection
        if connection is not None:
            connection.abort()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    # --- on the watcher's thread ----------------------------------------------------------

    def _store(self, job: Callable[[FetchLedger], T]) -> T:
        """A job on the store's writer, waited for here (not through the event loop)."""
        return self.context.writer.run_blocking(job)

    def _run(self) -> None:
        # Parsing and writing big messages' files happen on a second thread, so that this one
        # downloads the next batch meanwhile; one thread keeps the batches in order.
        with concurrent.futures.ThreadPoolExecutor(1, f"prepare {self.gateway.email}") as self._preparer:
            self._run_sessions()

    def _run_sessions(self) -> None:
        email = self.gateway.email
        settled = False  # (a session ended well: a POP3 poll's next session is no new connection)
        step = ""  # (the step of the last failure)
        while not self.stopping.is_set():
            try:
                # The first session, or one after a failure: `connecting` until the mailbox is read;
                # not after the store itself failed (that write would fail too, and slow the retries).
                if not settled and step != "store":
                    self._store(lambda s: s.record_connecting(email))
                self._session()
                settled = True
                if self.polls:
                    self.stopping.wait(self.context.settings.poll_interval)
                continue
            except FetchError as exc:
                step, reason = exc.step, str(exc)
            except StoreUnavailable as exc:  # (the watcher's own records, e.g. of a check that went well)
                step, reason = "store", f"the store is not available ({exc}); pausing"
            except (imaplib.IMAP4.abort, OSError) as exc:
                step, reason = "connection", f"connection: {exc}"
            except (imaplib.IMAP4.error, poplib.error_proto) as exc:
                step, reason = "protocol", f"protocol: {exc}"
            except Exception as exc:
                log.exception("gateway %s: unexpected failure", email)
                step, reason = "internal", f"internal: {exc!r}"
            if self.stopping.is_set():
                break
            settled = False
            settings = self.context.settings
            try:
                state = self._store(lambda s: s.gateway_state(email))
            except Exception:  # the store itself is failing: still back off
                state = None
            failures = (state.failures if state is not None else 0) + 1
            delay = min(settings.backoff_max, settings.backoff_initial * 2 ** (failures - 1))
            delay *= random.uniform(0.5, 1.5)  # jitter: gateways on one server do not retry in step
            next_attempt = (datetime.now(UTC) + timedelta(seconds=delay)).isoformat(timespec="seconds")
            with contextlib.suppress(Exception):
                self._store(partial(_record_failure, gateway=email, error=reason, next_attempt=next_attempt,
                                    step=step))
            log.warning("gateway %s: %s failed (%s); attempt %d, next in %.0f s", email, step, reason, failures, delay)
            if self.context.metrics is not None:
                self.context.metrics.fetch_errors.labels(self.organisation, step).inc()
            self.stopping.wait(delay)

    def _session(self) -> None:
        raise NotImplementedError

    def _tls(self) -> TlsSettings:
        return tls_of(self.server, self.context.settings.timeout, self.context.max_message_size)

    def _accept(self, key: FetchedKey, raw: bytes, position: int | None = None, dedupe: bool = False
                ) -> Accepted | None:
        """Through the intake; None when it failed and the message was quarantined instead."""
        return self._accept_many([(key, raw, position)], dedupe)[0]

    def _accept_many(self, items: Sequence[tuple[FetchedKey, bytes, int | None]], dedupe: bool = False
                     ) -> list[Accepted | None]:
        """Hand several messages to the intake at once, so the store commits them together (one
        fsync for the lot); each is still stored exactly once and answered on its own."""
        return self._collect(self._submit(items, dedupe))

    def _submit(self, items: Sequence[tuple[FetchedKey, bytes, int | None]], dedupe: bool = False) -> _InFlight:
        """Hand a batch to the preparing thread, which passes it on to the intake; at once."""
        batch = list(items)
        return _InFlight(batch, self._preparer.submit(self._prepare_and_accept, batch, dedupe), time.monotonic())

    def _prepare_and_accept(self, items: list[tuple[FetchedKey, bytes, int | None]], dedupe: bool
                            ) -> concurrent.futures.Future[list[Accepted | Exception]]:
        """Parse here, not on the store's writer thread (parsing was a third of its time per
        fetched message), and write a big message to its file here: once, instead of twice
        through SQLite's WAL. A file that cannot be written fails the batch with the OSError,
        which pauses fetching like any store failure. Returns without waiting for the commit,
        so the next batch is parsed while the store writes this one."""
        gateway = self.gateway
        inbounds = [Inbound(raw=raw, source=gateway.email, scopes=(self.scope,), peer=self.server.name,
                            fetch=Fetch(key, gateway.keep_on_server, gateway.mark_read, position, dedupe),
                            parsed=parse_big(raw),
                            spooled=self.context.files.write(raw) if len(raw) >= EXTERNAL_AT else None)
                    for key, raw, position in items]
        return asyncio.run_coroutine_threadsafe(_awaited(self.context.accept(self.organisation, inbounds)),
                                                self.context.loop)

    def _collect(self, batch: _InFlight, *after: _InFlight) -> list[Accepted | None]:
        """Wait for a submitted batch. On a failure that asks to back off, wait for the batches
        submitted after it too, then move the position back to the failed message, so that
        nothing committed later can leave it behind."""
        results: list[Accepted | None] = []
        failure: FetchError | None = None
        retry_from: FetchedKey | None = None
        try:
            outcomes: list[Accepted | Exception] = batch.outcomes()
        except Exception as job_failure:  # the whole job failed (e.g. the commit): every message failed
            outcomes = [job_failure] * len(batch.items)
        for (key, raw, position), outcome in zip(batch.items, outcomes, strict=True):
            if isinstance(outcome, Accepted):
                results.append(outcome)
                self.attempts.pop(key, None)
            else:
                results.append(None)
                try:
                    self._failed(key, raw, outcome)  # quarantines, or asks to back off
                except FetchError as backoff:
                    failure = failure or backoff
                    if position is not None and retry_from is None:
                        retry_from = key
        metrics = self.context.metrics
        if metrics is not None:
            metrics.fetch_seconds.observe(time.monotonic() - batch.started)
            metrics.fetched.labels(self.organisation).inc(sum(1 for r in results if r is not None and not r.duplicate))
        if failure is not None:
            for later in after:
                with contextlib.suppress(Exception):  # committed or not, it is retried from the position
                    later.outcomes()
            if retry_from is not None:  # later messages may have moved the position past this one: back
                start = int(retry_from.uid) - 1
                self._store(lambda s: s.set_position(retry_from.gateway, retry_from.folder, start))
            raise failure
        return results

    def _failed(self, key: FetchedKey, raw: bytes, exc: Exception) -> None:
        if isinstance(exc, StoreUnavailable):  # the disk is full or the store is failing: pause, quarantine nothing
            raise FetchError("store", f"the store is not available ({exc}); pausing")
        attempts = self.attempts.get(key, 0) + 1
        self.attempts[key] = attempts
        limit = self.context.settings.max_attempts
        if attempts < limit:
            log.warning("gateway %s: %s could not be stored (attempt %d of %d): %s", key.gateway, key.uid,
                        attempts, limit, exc)
            raise FetchError("store", f"{key.uid}: {exc}")  # back off, then try again
        log.error("gateway %s: %s could not be stored after %d attempts: quarantined (%s)", key.gateway,
                  key.uid, attempts, exc)
        uid = int(key.uid) if key.uid.isdigit() and key.folder != "pop3" else None
        reason = f"{type(exc).__name__}: {exc}"
        self._store(lambda s: _quarantine(s, key, raw, reason, attempts, uid))
        self.attempts.pop(key, None)


class ImapWatcher(Watcher):
    def _session(self) -> None:
        gateway, endpoint = self.gateway, self.server.imap
        assert endpoint is not None
        password = gateway_password(gateway)
        connection = ImapConnection.open(endpoint, self._tls(), gateway.login,
                                         password)
        self.connection = connection
        try:
            if self.stopping.is_set():
                return
            selected = connection.select("INBOX")
            folder = f"INBOX/{selected.uidvalidity}"
            state = self._store(lambda s: s.gateway_state(gateway.email))
            if state is None or state.folder is None:
                self._first_import(connection, folder, selected.uidnext)
            elif state.folder != folder:
                log.warning("gateway %s: UIDVALIDITY changed (%s -> %s); matching the mailbox again",
                            gateway.email, state.folder, folder)
                self._store(lambda s: s.set_position(gateway.email, folder, 0))
                self._import(connection, folder, connection.all_uids(), dedupe=True)
            log.info("gateway %s: connected to %s (%s), watching INBOX", gateway.email, endpoint,
                     "IDLE" if connection.can_idle else "polling")
            settings = self.context.settings
            steady = False
            while not self.stopping.is_set():
                self._apply_pending(connection, folder)
                position = self._store(lambda s: s.gateway_state(gateway.email))
                last_uid = position.last_uid if position is not None else 0
                self._import(connection, folder, connection.uids_above(last_uid))
                self._store(partial(_record_success, gateway=gateway.email, steady=steady))
                self.checks += 1
                if connection.can_idle:
                    connection.idle(settings.idle_renew, self.stopping)
                else:
                    self.stopping.wait(settings.poll_interval)
                steady = True  # a whole cycle went well
        finally:
            self.connection = None
            connection.close()

    def _first_import(self, connection: ImapConnection, folder: str, uidnext: int | None) -> None:
        """A new gateway takes mail that arrives from now on; older mail only since `import_since`."""
        email = self.gateway.email
        if self.gateway.import_since is not None:
            uids = connection.uids_since(self.gateway.import_since)
            log.info("gateway %s: first import of %d messages since %s", email, len(uids), self.gateway.import_since)
            self._store(lambda s: s.set_position(email, folder, 0))
            self._import(connection, folder, uids)
            return
        last = uidnext - 1 if uidnext else max(connection.all_uids(), default=0)
        log.info("gateway %s: first connection; mail from now on is imported (older mail: set import_since)", email)
        self._store(lambda s: s.set_position(email, folder, last))

    def _import(self, connection: ImapConnection, folder: str, uids: Sequence[int], dedupe: bool = False) -> None:
        """Fetch and store in a pipeline: while batches are parsed and stored, the next ones are
        downloaded (at most PIPELINE_DEPTH batches held in memory at once)."""
        gateway = self.gateway
        batch: list[tuple[FetchedKey, bytes, int | None]] = []
        in_flight: collections.deque[_InFlight] = collections.deque()
        for uid, raw in connection.fetch(uids):
            if self.stopping.is_set():
                break
            batch.append((FetchedKey(gateway.email, folder, str(uid)), raw, uid))
            if len(batch) < FETCH_BATCH and sum(len(r) for _, r, _ in batch) < FETCH_BATCH_BYTES:
                continue
            in_flight.append(self._submit(batch, dedupe))
            batch = []
            while len(in_flight) >= PIPELINE_DEPTH:
                self._finish(connection, in_flight.popleft(), *in_flight)
        if batch:
            in_flight.append(self._submit(batch, dedupe))
        while in_flight:
            self._finish(connection, in_flight.popleft(), *in_flight)

    def _finish(self, connection: ImapConnection, batch: _InFlight, *after: _InFlight) -> None:
        """Once a batch is committed, the server changes its messages call for."""
        seen: list[tuple[FetchedKey, int]] = []
        deleted: list[tuple[FetchedKey, int]] = []
        for (key, _, uid), accepted in zip(batch.items, self._collect(batch, *after), strict=True):
            if accepted is None or uid is None:
                continue
            if accepted.server_action == "seen":
                seen.append((key, uid))
            elif accepted.server_action == "delete":
                deleted.append((key, uid))
        self._server_changes(connection, seen, deleted)

    def _server_changes(self, connection: ImapConnection, seen: list[tuple[FetchedKey, int]],
                        deleted: list[tuple[FetchedKey, int]]) -> None:
        """Mark read / delete on the server what is committed in the store, then note it done."""
        if seen:
            connection.mark_seen([uid for _, uid in seen])
        if deleted:
            connection.delete([uid for _, uid in deleted])
        done = [key for key, _ in (*seen, *deleted)]
        if done:
            self._store(lambda s: s.actions_done(done))

    def _apply_pending(self, connection: ImapConnection, folder: str) -> None:
        """Server changes left over from before a crash, or asked for since (a comment deleted)."""
        pending = self._store(lambda s: s.pending_actions(self.gateway.email))
        if not pending:
            return
        here = [(key, action) for key, action in pending if key.folder == folder]
        gone = [key for key, _ in pending if key.folder != folder]
        if gone:  # an old UIDVALIDITY: those UIDs mean nothing on the server any more
            log.warning("gateway %s: %d pending server changes are for an old UIDVALIDITY; dropped",
                        self.gateway.email, len(gone))
            self._store(lambda s: s.actions_done(gone))
        self._server_changes(connection, [(k, int(k.uid)) for k, a in here if a == "seen"],
                             [(k, int(k.uid)) for k, a in here if a == "delete"])


class Pop3Watcher(Watcher):
    """POP3 has no IDLE and a session sees a snapshot: one session per check, every poll_interval."""

    polls = True
    folder = "pop3"

    def _session(self) -> None:
        gateway, endpoint = self.gateway, self.server.pop3
        assert endpoint is not None
        connection = Pop3Connection.open(endpoint, self._tls(), gateway.login,
                                         gateway_password(gateway))
        self.connection = connection
        try:
            listing = connection.uidl()
            by_uid = {uid: number for number, uid in listing.items()}
            email, folder = gateway.email, self.folder
            state = self._store(lambda s: s.gateway_state(email))
            if state is None or state.folder is None:
                self._first_import(connection, listing)
            known = self._store(lambda s: s.fetched_uids(email, folder))
            deleted: list[FetchedKey] = []
            for key, action in self._store(lambda s: s.pending_actions(email)):
                if action == "delete" and key.uid in by_uid:
                    connection.delete(by_uid[key.uid])
                deleted.append(key)  # "seen" has no meaning in POP3; a vanished message needs nothing
            for number, uid in sorted(listing.items()):
                if self.stopping.is_set() or uid in known:
                    continue
                key = FetchedKey(email, folder, uid)
                accepted = self._accept(key, connection.retrieve(number))
                if accepted is None:
                    continue
                if accepted.server_action == "delete":
                    connection.delete(number)
                if accepted.server_action:
                    deleted.append(key)
            connection.quit()  # the deletions happen now; until here they stay pending in the store
            if deleted:
                self._store(lambda s: s.actions_done(deleted))
            self._store(lambda s: s.record_success(email, steady=True))
            self.checks += 1
        finally:
            self.connection = None
            connection.close()

    def _first_import(self, connection: Pop3Connection, listing: dict[int, str]) -> None:
        """What is there now counts as old mail: taken only when it is newer than `import_since`."""
        email, since = self.gateway.email, self.gateway.import_since
        old: list[str] = []
        for number, uid in sorted(listing.items()):
            if since is not None and _date_of(connection.headers(number)) >= since:
                continue  # imported by the session below
            old.append(uid)
        self._store(lambda s: s.mark_old(email, self.folder, old))
        log.info("gateway %s: first connection; %d messages already there are left out%s", email, len(old),
                 f" (older than {since})" if since else " (older mail: set import_since)")


def _date_of(headers: bytes) -> date:
    from email.parser import BytesHeaderParser
    from email.utils import parsedate_to_datetime

    value = BytesHeaderParser().parsebytes(headers).get("Date", "")
    try:
        return parsedate_to_datetime(str(value)).date()
    except (TypeError, ValueError, IndexError):
        return date.max  # no usable date: take it rather than lose it


@dataclass
class _InFlight:
    """A batch handed to the intake, not yet known to be committed."""

    items: list[tuple[FetchedKey, bytes, int | None]]
    # prepared (parsed, files written) -> handed to the intake -> committed
    future: concurrent.futures.Future[concurrent.futures.Future[list[Accepted | Exception]]]
    started: float

    def outcomes(self) -> list[Accepted | Exception]:
        """Wait until the batch is committed; each message's Accepted or why it failed."""
        return self.future.result().result()


def _record_failure(store: FetchLedger, gateway: str, error: str, next_attempt: str, step: str) -> int:
    return store.record_failure(gateway, error, next_attempt, step)


def _record_success(store: FetchLedger, gateway: str, steady: bool) -> None:
    store.record_success(gateway, steady=steady)


def _quarantine(store: FetchLedger, key: FetchedKey, raw: bytes, reason: str, attempts: int, uid: int | None) -> None:
    store.quarantine(key, raw, reason, attempts)
    if uid is not None:
        store.advance_position(key.gateway, key.folder, uid)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
