"""The spool's worker: delivers queued messages, retries, bounces, and files Sent copies.

Each pass takes the messages that are due, groups them by next hop and sends each group
over one reused connection (the groups in parallel). Every server answer is recorded per
recipient as soon as it is known, so after a crash only a message whose answer had not
yet been recorded is sent again (the one window where a duplicate is possible). Local
recipients (mailboxes of our own domain) go through the intake in the same transaction
that records them as delivered. A recipient refused permanently, or still failing when
the message expires, gets the sender a bounce (DSN) through the intake, in the same
transaction that records the failure; it lands in the message's task as a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from functools import partial

from ..auth.server_credentials import CredentialError, relay_credentials, smtp_credentials
from ..config.model import Config
from ..intake import Inbound, Intake, accept_now
from ..mail.addresses import mailbox_login
from ..mail.compose import FailedRecipient, delivery_status_notification
from ..metrics import Metrics
from ..sending_policy import RELAY_ROUTE
from ..store.ports import OutboundEntry, RecipientState
from ..store.roles import OutboundSpool, StoreJobs
from .relay import HopFailure, NextHop, RelayPool

log = logging.getLogger(__name__)
UploadSent = Callable[[str, bytes, str | None], Awaitable[None]]  # (gateway e-mail, raw, Message-ID)
SENT_FOLDER_ATTEMPTS = 5
BATCH = 200
READ_BUDGET = 8 * 1024 * 1024  # bytes of messages read from the store at a time


class QueueRunner:
    def __init__(self, writer: StoreJobs[OutboundSpool], intake: Intake, config: Callable[[], Config],
                 pool: RelayPool, upload_sent: UploadSent | None = None, metrics: Metrics | None = None,
                 gateway_settings: Callable[[str], Config] | None = None) -> None:
        self.writer = writer
        self.intake = intake
        self.config_in_effect = config  # (as a reload swaps it)
        # the settings of the organisation that connects a gateway (its server, its password)
        self.gateway_settings = gateway_settings or (lambda _email: self.config)
        self.pool = pool
        self.upload_sent = upload_sent
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sent_retry_at: dict[int, float] = {}  # entry id -> when to try its Sent copy again
        self.queued = 0  # messages waiting in the spool, as of the last pass
        self.passes = 0  # passes over the spool finished (each sends what was due)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbound-runner")

    @property
    def config(self) -> Config:
        return self.config_in_effect()

    def wake(self) -> None:
        """Something was queued or changed: look at the spool now."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pool.close()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
                self.passes += 1
                next_due = await self.writer.run(_next_due)
                self.queued = await self.writer.run(_queued)
                if self.metrics is not None:
                    self.metrics.spool.set(self.queued)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbound: a pass over the spool failed; trying again shortly")
                next_due = None
            wait = self.config.outbound.poll_interval
            if next_due is not None:
                wait = max(0.0, min(wait, next_due - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            await self.pool.close_idle()

    async def run_once(self) -> None:
        """One pass: deliver what is due, then file Sent copies."""
        due = await self.writer.run(lambda store: store.due_outbound(time.time(), BATCH))
        by_route: dict[str, list[OutboundEntry]] = defaultdict(list)
        for entry in due:
            by_route[entry.route].append(entry)
        await asyncio.gather(*(self._deliver_route(route, entries) for route, entries in by_route.items()))
        if self.upload_sent is not None:
            now = time.monotonic()
            for entry in await self.writer.run(lambda store: store.sent_folder_due()):
                if self._sent_retry_at.get(entry.id, 0.0) <= now:  # a failed copy waits, doubling
                    await self._file_sent_copy(entry)

    async def _deliver_route(self, route: str, entries: list[OutboundEntry]) -> None:
        """Send one route's messages one after the other over its connection. A message's answers
        are recorded while the next one is being sent (the writer commits them in groups), but
        never more than one message ahead: a crash can then repeat at most the message being sent
        and the one being recorded (the window README "Guarantees" names), not a whole run of
        them (a kill in the crash suite once caught 8 sent and not yet recorded)."""
        recording: list[asyncio.Future[OutboundEntry]] = []
        position = 0
        while position < len(entries):
            raws = await self.writer.run(partial(_read_raws, entries=entries[position:]))
            for entry, raw in zip(entries[position:position + len(raws)], raws, strict=True):
                while len(unrecorded := [f for f in recording if not f.done()]) > 1:
                    # (the one before this one may still be in the writer's hands: no more than it)
                    await asyncio.wait(unrecorded, return_when=asyncio.FIRST_COMPLETED)
                try:
                    recording.append(await self._deliver(entry, raw))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("outbound: message %d could not be handled; it stays queued", entry.id)
            position += len(raws)
        for outcome in await asyncio.gather(*recording, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.error("outbound: recording a delivery failed: %s", outcome)

    async def _deliver(self, entry: OutboundEntry, raw: bytes) -> asyncio.Future[OutboundEntry]:
        """Send to the pending recipients; returns the (running) recording of the answers."""
        if any(r.local for r in entry.pending()):
            entry = await self._deliver_locally(entry, raw)
        remote = [r.address for r in entry.pending() if not r.local]
        if not remote:
            done: asyncio.Future[OutboundEntry] = asyncio.get_running_loop().create_future()
            done.set_result(entry)
            return done
        try:
            hop = self._next_hop(entry.route)
            replies = await self.pool.send(hop, entry.envelope_from, remote, raw)
        except HopFailure as failure:
            replies = {address: failure.reply for address in remote}
            hop_name = ""
        else:
            hop_name = hop.host
        results: dict[str, tuple[RecipientState, str]] = {}
        for address, reply in replies.items():
            state: RecipientState = "delivered" if reply[:1] == "2" else "failed" if reply[:1] == "5" else "pending"
            results[address] = (state, reply)
            log.info("outbound %d: %s -> %s: %s", entry.id, entry.sender, address, reply)
            if self.metrics is not None:
                slug = self.intake.rules().table.slugs.get(entry.org_id, str(entry.org_id))
                self.metrics.outbound.labels(slug, state).inc()
        return asyncio.ensure_future(self.writer.run(lambda store: self._record(store, entry, results, raw, hop_name)))

    async def _deliver_locally(self, entry: OutboundEntry, raw: bytes) -> OutboundEntry:
        local = [r.address for r in entry.pending() if r.local]
        domain = self.config.daemon.domain
        logins = {address: mailbox_login(address.rpartition("@")[0], address.rpartition("@")[2].lower(), domain)
                  for address in local}
        inbound = Inbound(
            raw=raw, source="smtp", scopes=tuple(dict.fromkeys(f"mailbox:{login}" for login in logins.values())),
            rcpt_tos=tuple(local), mail_from=entry.envelope_from, peer=f"submission:{entry.submitted_by or 'cli'}",
            address_tokens=tuple((logins[a], a.split("@")[0].split("+", 1)[1]) for a in local
                                 if "+" in a.split("@")[0]),
        )
        table = self.intake.rules().table

        def job(store: OutboundSpool) -> OutboundEntry:
            accepted = accept_now(store, self.intake.tokens, table, inbound)
            reply = f"250 2.0.0 delivered here as message {accepted.message_db_id}"
            return self._record(store, entry, {address: ("delivered", reply) for address in local}, raw, "")

        return await self.writer.run(job)

    def _record(self, store: OutboundSpool, entry: OutboundEntry, results: dict[str, tuple[RecipientState, str]],
                raw: bytes, hop_name: str) -> OutboundEntry:
        """On the writer thread: record the answers; on expiry fail what is left; bounce what failed."""
        settings = self.config.outbound
        results = dict(results)
        still_pending = [r.address for r in entry.pending() if results.get(r.address, ("pending",))[0] == "pending"]
        errors = [reply for state, reply in results.values() if state == "pending"]
        last_error = errors[-1] if errors else None
        attempted = bool(results)
        if still_pending and time.time() >= entry.expires_at:
            for address in still_pending:
                last = results.get(address, ("pending", last_error or entry.last_error or "no answer"))[1]
                results[address] = ("failed", f"4.4.7 gave up after {entry.attempts + 1} attempts "
                                              f"(message expired); last answer: {last}")
        delay = min(settings.retry_initial * 2 ** entry.attempts, settings.retry_max)
        updated = store.record_outbound(entry.id, results, attempted=attempted,
                                        next_attempt=time.time() + delay * random.uniform(0.9, 1.1),
                                        last_error=last_error)
        failed = [FailedRecipient(address, reply, hop_name) for address, (state, reply) in results.items()
                  if state == "failed"]
        if failed:
            self._bounce(store, updated, raw, failed)
        return updated

    def _bounce(self, store: OutboundSpool, entry: OutboundEntry, raw: bytes, failed: list[FailedRecipient]) -> None:
        """A DSN to the sender, through the intake: it lands in the message's task as a reply."""
        message_id = self.intake.tokens.message_id(entry.task_id or 0, self.config.daemon.hostname)
        original_id = store.message_header_id(entry.message_db_id)
        dsn = delivery_status_notification(
            reporting_host=self.config.daemon.hostname, postmaster=f"MAILER-DAEMON@{self.config.daemon.domain}",
            recipient=entry.sender, original=raw, original_message_id=original_id, failed=failed,
            message_id=message_id)
        source = "smtp" if entry.route == RELAY_ROUTE else entry.route.split(":", 1)[1]
        inbound = Inbound(raw=dsn, source=source, scopes=(entry.scope,), rcpt_tos=(entry.sender,), mail_from="",
                          peer=self.config.daemon.hostname)
        accepted = accept_now(store, self.intake.tokens, self.intake.rules().table, inbound)
        log.warning("outbound %d: %d recipients failed; bounce %d to %s (%s)", entry.id, len(failed),
                    accepted.message_db_id, entry.sender, "; ".join(f"{f.address}: {f.reply}" for f in failed))

    def _next_hop(self, route: str) -> NextHop:
        config = self.config
        try:
            if route == RELAY_ROUTE:
                relay = config.relay
                if relay is None:
                    raise HopFailure("4.3.5 no [relay] is configured for mail of the domain's mailboxes")
                credentials = relay_credentials(relay)
                return NextHop(relay.host, relay.port, relay.security, relay.verify_certificate, relay.ca_file,
                               *(credentials or (None, None)))
            config = self.gateway_settings(route.split(":", 1)[1])
            gateway = config.gateway(route.split(":", 1)[1])
            if gateway is None:
                raise HopFailure(f"4.3.5 gateway {route.split(':', 1)[1]} is no longer configured")
            server = config.server(gateway.server)
            if server is None or server.smtp is None:
                raise HopFailure(f"4.3.5 server {gateway.server} of gateway {gateway.email} has no SMTP endpoint")
            login, password = smtp_credentials(gateway)
            return NextHop(server.smtp.host, server.smtp.port, server.security, server.verify_certificate,
                           server.ca_file, login, password, server.public_only)
        except CredentialError as exc:
            raise HopFailure(f"4.7.0 {route}: {exc}") from None

    async def _file_sent_copy(self, entry: OutboundEntry) -> None:
        assert self.upload_sent is not None
        gateway = entry.route.split(":", 1)[1]
        raw, message_id = await self.writer.run(
            lambda store: (store.raw_message(entry.message_db_id), store.message_header_id(entry.message_db_id)))
        try:
            await self.upload_sent(gateway, raw, message_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = str(exc)
            settings = self.config.outbound
            self._sent_retry_at[entry.id] = time.monotonic() + min(
                settings.retry_initial * 2 ** entry.sent_folder_attempts, settings.retry_max)
            log.warning("outbound %d: copy to the Sent folder of %s failed: %s", entry.id, gateway, error)
            await self.writer.run(lambda store: store.record_sent_folder(entry.id, False, error,
                                                                         SENT_FOLDER_ATTEMPTS))
            return
        await self.writer.run(lambda store: store.record_sent_folder(entry.id, True, None, SENT_FOLDER_ATTEMPTS))
        self._sent_retry_at.pop(entry.id, None)
        log.info("outbound %d: copied to the Sent folder of %s", entry.id, gateway)



def _next_due(store: OutboundSpool) -> float | None:
    return store.next_outbound_due()


def _queued(store: OutboundSpool) -> int:
    return store.queued_outbound()


def _read_raws(store: OutboundSpool, entries: list[OutboundEntry]) -> list[bytes]:
    """The bytes of the first of `entries`, as many as fit READ_BUDGET (at least one)."""
    raws: list[bytes] = []
    size = 0
    for entry in entries:
        if raws and size >= READ_BUDGET:
            break
        raw = store.raw_message(entry.message_db_id)
        raws.append(raw)
        size += len(raw)
    return raws
