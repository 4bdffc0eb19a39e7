"""The one place that wires everything: config -> store -> intake -> listeners; signals.

SIGHUP, or a change the command line records in the store's change log, reloads the
configuration (a broken one is logged and the old one kept), SIGTERM
and SIGINT stop cleanly: listeners close, messages being stored finish, the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import systemd_notify
from .auth.login_guard import LoginGuard
from .config.load import config_warnings, file_digest, load_config, service_warnings
from .config.model import Config, Endpoint, is_loopback
from .config_state import CONFIGURATION_STATE, ConfigurationState
from .control_request import ANSWER, REQUEST, ControlAnswer, ControlRequest
from .errors import ConfigError, ProstoyMailError
from .fetch.fair import FairAdmission
from .fetch.manager import FetchManager
from .fetch.sent_folder import SentFolderUploader
from .fetch.watcher import FetchContext
from .funnel import MailFunnel
from .instance_lock import StoreLock
from .intake import REPLY_TOKEN_SECRET, Intake
from .listeners import Listener, Listeners, bind
from .logs import setup_logging
from .mail.tokens import TaskTokens
from .metrics import Metrics, serve_metrics
from .outbound.relay import RelayPool
from .outbound.runner import QueueRunner
from .process_limits import raise_open_files_limit
from .provisioning import delete_comment
from .running_config import RunningConfig
from .smtp.admission import LocalCounts
from .smtp.inbound import InboundHandler, protocol_factory
from .smtp.submission import SubmissionHandler, submission_protocol_factory
from .smtp.workers import SmtpWorkers
from .store.sqlite import SqliteStore
from .store.writer import StoreWriter
from .tls_context import server_context

if TYPE_CHECKING:
    from .imapd.server import ImapService

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 30.0
WATCH_CHANGES_EVERY = 0.1  # seconds between looks at the store's change log (a change is live within ~0.1 s)
IMAP_UIDVALIDITY_SECRET = "imap-uidvalidity"


class Daemon:
    def __init__(self, config: Config) -> None:
        self.starting_config = config  # until start() has built the RunningConfig from it
        self.running: RunningConfig | None = None  # the configuration in effect (running_config.py)
        self.metrics = Metrics()
        self.writer: StoreWriter | None = None
        self.intake: Intake | None = None
        self.smtp_handler: InboundHandler | None = None
        self.smtp_workers: SmtpWorkers | None = None  # processes serving inbound SMTP sessions, if any
        self.smtp_counts = LocalCounts()  # SMTP sessions in this process (across reloads), for the limits
        self.listeners = Listeners()  # by name; each address claimed for this daemon alone
        self.metrics_server: tuple[Endpoint, Any] | None = None
        self.stopping = asyncio.Event()
        self.funnel: MailFunnel | None = None  # every message's way into the store
        self.last_task_ref = ""
        self.background: list[asyncio.Task[None]] = []
        self.fetchers: FetchManager | None = None
        self.submission_handler: SubmissionHandler | None = None
        self.outbound: QueueRunner | None = None
        self.sent_uploader = SentFolderUploader(self._gateway_settings)
        self.guard: LoginGuard | None = None
        self.imap: ImapService | None = None
        self.imap_watch: asyncio.Task[None] | None = None
        self.store_lock: StoreLock | None = None
        self.reloading = asyncio.Lock()
        self.reloads = 0  # carried out, applied or refused (recorded for the command line waiting on one)
        self.parsed_organisations: dict[bytes, Config] = {}  # store organisations' settings, by their entries
        self.change_id = 0  # the newest change of the store's change log taken up (the command line waits on it)
        self.changes: SqliteStore | None = None  # a read connection that watches the change log
        self.api_app: Any = None  # the management API's FastAPI app, once [listen] http is opened
        self.api_reader: SqliteStore | None = None
        self.http_listeners: list[Any] = []  # (api.server.HttpListener: their shutdowns are awaited at stop)
        self.api_hub: asyncio.Task[None] | None = None  # the API's events poller
        self.event_hub: Any = None  # (api.events.EventHub: its streams end first when the daemon stops)
        self.webhooks: Any = None  # (api.webhooks.WebhookDeliverer)
        self.webhook_task: asyncio.Task[None] | None = None
        self.webhook_reader: SqliteStore | None = None

    @property
    def config(self) -> Config:
        """The configuration in effect."""
        return self.running.config if self.running is not None else self.starting_config

    @property
    def generation(self) -> int:
        """Of the configuration in effect: 1 at start, one more with every reload applied."""
        return self.running.generation if self.running is not None else 0

    def _gateway_settings(self, email: str) -> Config:
        """The settings of the organisation that connects gateway `email`, in effect."""
        return self.running.gateway_settings(email) if self.running is not None else self.starting_config

    def _in_effect(self) -> RunningConfig:
        assert self.running is not None
        return self.running

    async def start(self) -> None:
        location = self.config.store_location()
        if "://" in location:
            raise ProstoyMailError(f"{self.config.path}: daemon.store: only SQLite stores are supported so far")
        self.store_lock = StoreLock(Path(location))  # before anything is written: one daemon per store
        self.writer = StoreWriter(await asyncio.to_thread(SqliteStore, location), metrics=self.metrics)
        swept = await self.writer.run(lambda store: store.sweep_raw_files())
        if swept:
            log.info("store: removed %d message files that no message refers to (left by a crash)", swept)
        starting = self.starting_config
        parsed = self.parsed_organisations
        running = await self.writer.run(lambda store: RunningConfig.build(starting, store, 1, parsed))
        key = await self.writer.run(lambda store: store.secret(REPLY_TOKEN_SECRET))
        # Every collaborator reads the configuration in effect through one of these readers:
        # a reload swaps self.running, and they see the new one whole from then on.
        self.intake = Intake(self.writer, lambda: self._in_effect().intake, TaskTokens(key))
        self.funnel = funnel = MailFunnel(self.intake, self.writer, self.writer.store.files, self.metrics,
                                          lambda: self.config, lambda: self._in_effect().sending,
                                          self._wake_outbound)
        self.smtp_handler = InboundHandler(lambda: self._in_effect().smtp, funnel.deliver,
                                           self.metrics.count_rejected, spool=self.writer.store.files)
        self.guard = guard = LoginGuard(self._password_hash, lambda: self.config.auth)
        self.submission_handler = SubmissionHandler(lambda: self._in_effect().sending, lambda: self.config.smtp,
                                                    guard, funnel.submit, self.metrics, self._user_org)
        self.outbound = QueueRunner(self.writer, self.intake, lambda: self.config,
                                    RelayPool(starting.daemon.hostname, starting.outbound.timeout),
                                    self.sent_uploader, self.metrics, self._gateway_settings)
        from .api.webhooks import WebhookDeliverer  # (httpx: imported when the daemon starts, not by the CLI)

        # (made before the listeners open: once they do, clients are served while the rest of
        # the start goes on, and the start should then be short)
        self.webhook_reader = SqliteStore(location)
        self.webhook_reader.org_id = None
        self.webhooks = WebhookDeliverer(self.webhook_reader, self.writer, lambda: self.config, self.metrics)
        (await self._open_listeners(running))()
        self.running = running
        for slug, why in running.organisations_refused.items():
            log.error("organisation %s: its settings cannot be applied and are left out: %s", slug, why)
        await self._open_metrics()
        self.outbound.start()
        self.webhook_task = asyncio.create_task(self.webhooks.run(), name="webhooks")
        fair = FairAdmission(funnel.accept_fetched)  # (one organisation's gateways never crowd out another's)
        self.fetchers = FetchManager(FetchContext(asyncio.get_running_loop(), fair, self.writer,
                                                  self.writer.store.files, self.config.fetch, self.metrics))
        self.fetchers.apply(self.config, running.organisations.values())
        log.info("prostoy-mail ready: domain %s, store %s, %s", self.config.daemon.domain, location,
                 self._listening())
        self.changes = await asyncio.to_thread(SqliteStore, location)
        self.change_id = self.changes.latest_change()  # (what was changed before the start is applied)
        # The file changed while this daemon started (a command's edit it may have missed, its
        # change counted above): read it again at once (below).
        stale = file_digest(self.config.path) != self.config.text_sha256
        await self._record_configuration()
        systemd_notify.ready(self.status())  # only now: the store is open and every listener is bound
        # What is loaded by now (modules, configuration, routing table) lives as long as the
        # daemon: out of the garbage collector's sight, full collections stop walking it for
        # every few thousand objects a busy listener allocates.
        gc.freeze()
        self.background = [asyncio.create_task(self._watchdog()), asyncio.create_task(self._status_updates()),
                           asyncio.create_task(self._watch_changes()), asyncio.create_task(self._prune_events())]
        if stale:
            self.background.append(asyncio.create_task(self.reload(cause="a change of the file during the start")))

    def bound_port(self, name: str) -> int:
        """The port a listener is bound to (useful when the configuration says port 0)."""
        if name == "metrics":
            assert self.metrics_server is not None
            return int(self.metrics_server[1].server_port)
        return self.listeners.port(name)

    def _listening(self) -> str:
        return self.listeners.describe()

    def status(self) -> str:
        """The STATUS line systemd shows: what the daemon is doing."""
        routed_today = self.funnel.routed_today if self.funnel is not None else 0
        last = f", last to «{self.last_task_ref}»" if self.last_task_ref else ""
        gateways = self.fetchers.summary() if self.fetchers is not None else "no gateways fetching"
        queued = self.outbound.queued if self.outbound is not None else 0
        spool = f"; {queued} outbound queued" if queued else ""
        return (f"{self._listening()}; {routed_today} messages routed today{last}; {gateways}{spool}; "
                f"configuration generation {self.generation}")

    def _wake_outbound(self) -> None:
        if self.outbound is not None:
            self.outbound.wake()

    async def _open_listeners(self, wanted: RunningConfig) -> Callable[[], None]:
        """The listeners `wanted` asks for, opened (listeners.py; the commit is returned)."""
        metrics = {(self.metrics_server[0].host, self.metrics_server[0].port)} if self.metrics_server else set()
        return await self.listeners.change_to(wanted.config, partial(self._listen, wanted), metrics)

    async def _listen(self, wanted: RunningConfig, name: str, endpoint: Endpoint, settings: object) -> Listener:
        """One listener, opened for the configuration `wanted` (not yet in effect on a reload)."""
        loop = asyncio.get_running_loop()
        config = wanted.config
        hostname = config.daemon.hostname
        if name in ("imap", "imaps"):
            return self._listen_imap(config, name, endpoint, settings)
        if name == "http":
            return await self._listen_http(config, endpoint, settings)
        if name == "smtp" and config.smtp.workers:
            if wanted.smtp.tls is not None:
                server_context(wanted.smtp.tls)  # (a certificate that cannot be loaded: one line, here)
            workers = await self._smtp_workers(wanted)
            sockets = await bind(endpoint.host, endpoint.port)
            close = workers.listen(sockets)
            return Listener(endpoint, int(sockets[0].getsockname()[1]), close, settings)
        if name == "smtp":
            assert self.smtp_handler is not None
            factory = protocol_factory(self.smtp_handler, wanted.smtp, hostname, self.metrics, self.smtp_counts)
            server = await loop.create_server(factory, endpoint.host, endpoint.port, reuse_port=True)
        else:
            assert self.submission_handler is not None
            context = server_context(config.tls)
            implicit = name == "submissions"
            factory = submission_protocol_factory(self.submission_handler, config.smtp, hostname, context,
                                                  implicit_tls=implicit)
            server = await loop.create_server(factory, endpoint.host, endpoint.port, reuse_port=True,
                                              ssl=context if implicit else None)
        return Listener(endpoint, int(server.sockets[0].getsockname()[1]), server.close, settings)

    async def _smtp_workers(self, wanted: RunningConfig) -> SmtpWorkers:
        """The SMTP worker processes, started when a listener first needs them (with the policy of
        `wanted`: on a reload, the workers are told of it only when it is swapped in)."""
        if self.smtp_workers is None:
            assert self.writer is not None and self.funnel is not None
            workers = SmtpWorkers(wanted.config.smtp.workers, wanted.smtp, wanted.config.daemon.hostname,
                                  wanted.generation, self.writer.store.files.folder, self.funnel.deliver, self.metrics)
            await workers.start()
            self.smtp_workers = workers
        return self.smtp_workers

    def _listen_imap(self, config: Config, name: str, endpoint: Endpoint, settings: object) -> Listener:
        """IMAP through Twisted, whose reactor runs on this same event loop."""
        # Imported here: Twisted and pyOpenSSL take a quarter of a second to import, which a
        # daemon without an IMAP listener need not spend at every start.
        from .imapd import hub as imap_hub
        from .imapd import reactor as imap_reactor
        from .imapd.server import ImapService
        from .imapd.tls import tls_options as imap_tls_options
        from .imapd.view import FolderContext

        reactor = imap_reactor.install(asyncio.get_running_loop())
        if self.imap is None:
            assert self.writer is not None and self.guard is not None
            reader = SqliteStore(config.store_location())
            reader.org_id = None  # (mail clients of every organisation log in; each sees its own)
            uidvalidity = int.from_bytes(reader.secret(IMAP_UIDVALIDITY_SECRET)[:4], "big") & 0x7FFFFFFF or 1
            context = FolderContext(reader, self.writer.run, uidvalidity, self._delete_comment)
            file_org = reader.file_organisation_id()
            self.imap = ImapService(lambda: self.config, self.guard, context, self.metrics,
                                    lambda org_id: self._in_effect().config_of(org_id, file_org))
            self.imap_watch = asyncio.create_task(imap_hub.watch(context))
        from twisted.internet.error import CannotListenError

        options = imap_tls_options(config.tls)
        factory = self.imap.factory(options, implicit_tls=name == "imaps")
        try:
            if name == "imaps":
                port = reactor.listenSSL(endpoint.port, factory, options, interface=endpoint.host)
            else:
                port = reactor.listenTCP(endpoint.port, factory, interface=endpoint.host)
        except CannotListenError as exc:  # (not an OSError: what it wraps is)
            error = exc.socketError
            raise error if isinstance(error, OSError) else OSError(str(error)) from None
        return Listener(endpoint, int(port.getHost().port), port.stopListening, settings)

    async def _listen_http(self, config: Config, endpoint: Endpoint, settings: object) -> Listener:
        """The management API (api/): its FastAPI app made once, served on every listener opened
        for it; plain on loopback (the CRM's proxy in front), else with [tls]."""
        # Imported here, as IMAP's: FastAPI and pydantic take a fifth of a second to import.
        from .api.app import build_app
        from .api.context import ApiContext
        from .api.events import EventHub
        from .api.server import HttpListener

        if self.api_app is None:
            assert self.writer is not None and self.guard is not None
            reader = SqliteStore(config.store_location())
            reader.org_id = None  # (each request acts for its own organisation)
            file_org = reader.file_organisation_id()
            self.api_reader = reader
            self.event_hub = hub = EventHub(reader)
            self.writer.on_durable.append(hub.wake)
            self.api_hub = asyncio.create_task(hub.run(), name="api-events")
            self.api_app = build_app(ApiContext(reader, self.writer, self.guard, lambda: self.config,
                                                lambda org_id: self._in_effect().config_of(org_id, file_org),
                                                self._apply_change, hub, self._wake_outbound))
        context = None if is_loopback(endpoint.host) else server_context(config.tls)
        sockets = await bind(endpoint.host, endpoint.port)
        http = await HttpListener.open(self.api_app, sockets, context)
        self.http_listeners.append(http)
        return Listener(endpoint, int(sockets[0].getsockname()[1]), http.close, settings)

    async def _apply_change(self, change: int) -> int:
        """A change the API just recorded, applied now (not at the next look at the change log):
        the API's answer then says it is in effect. The configuration generation in effect."""
        await self.reload(change=change)
        return self.generation

    async def _delete_comment(self, comment_id: int) -> None:
        """A mail client's expunge in a task folder: for the organisation whose task it is (its
        settings say whether its gateway deletes the message on the server too)."""
        assert self.writer is not None
        running = self._in_effect()

        def job(store: SqliteStore) -> None:
            org_id = store.org_of_comment(comment_id)
            with store.acting_for(org_id):
                delete_comment(running.config_of(org_id, store.file_organisation_id()), store, comment_id)

        await self.writer.run(job)

    async def _open_metrics(self) -> None:
        wanted = self.config.listen.metrics
        if self.metrics_server is not None and self.metrics_server[0] != wanted:
            _, old = self.metrics_server
            await asyncio.to_thread(old.shutdown)
            old.server_close()
            self.metrics_server = None
        if wanted is not None and self.metrics_server is None:
            self.metrics_server = (wanted, serve_metrics(wanted.host, wanted.port, self.metrics))

    async def _user_org(self, login: str) -> int | None:
        assert self.writer is not None
        return await self.writer.run(lambda store: store.user_org(login))

    async def _password_hash(self, login: str) -> str | None:
        assert self.writer is not None
        return await self.writer.run(lambda store: store.password_hash(login))

    async def _status_updates(self, every: float = 10.0) -> None:
        """Refresh STATUS now and then (the last task's name is looked up here, not per message)."""
        while True:
            await asyncio.sleep(every)
            await self._refresh_last_task()
            systemd_notify.status(self.status())

    async def _refresh_last_task(self) -> None:
        last_task_id = self.funnel.last_task_id if self.funnel is not None else None
        if last_task_id is not None and self.writer is not None:
            with contextlib.suppress(Exception):  # the task may be gone; STATUS is best effort
                task = await self.writer.run(partial(SqliteStore.get_task, task_id=last_task_id))
                self.last_task_ref = task.ref

    async def _watchdog(self) -> None:
        """WATCHDOG=1 at half of WATCHDOG_USEC, only while the loop and the store writer are healthy.

        This runs on the event loop, so a stuck loop sends nothing; a writer that cannot take
        the store's write lock within the interval (stuck, or the disk hangs) sends nothing
        either, and systemd restarts the daemon.
        """
        interval = systemd_notify.watchdog_interval()
        if interval is None:
            return
        while True:
            assert self.writer is not None
            try:
                await asyncio.wait_for(self.writer.run(lambda store: None), interval)
            except Exception as exc:  # a timeout or a store error: not healthy, no ping
                log.warning("watchdog: the store writer is not answering (%s); not telling systemd we are alive",
                            type(exc).__name__)
            else:
                systemd_notify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _prune_events(self, every: float = 3600.0) -> None:
        """Events older than [api] event_retention go, at the start and every hour, a batch
        of 10,000 at a time (store/events.py: never one an active webhook still owes)."""
        while True:
            cutoff = datetime.fromtimestamp(time.time() - self.config.api.event_retention, UTC)
            before = cutoff.isoformat(timespec="seconds")
            try:
                assert self.writer is not None
                pruned = 0
                while (batch := await self.writer.run(partial(_prune, before=before))) > 0:
                    pruned += batch
                    if batch < 10_000:
                        break
                if pruned:
                    log.info("events: %d older than %s forgotten", pruned, before)
            except Exception as exc:  # (the store failing: the next hour tries again)
                log.warning("events: cannot forget old events: %s", exc)
            await asyncio.sleep(every)

    async def reload(self, change: int | None = None, cause: str = "SIGHUP") -> None:
        """SIGHUP, or a change in the store's change log (`change`: its number): the
        configuration file again, applied all or nothing. A file that does not load, or a
        listener that cannot be opened, leaves everything running as it was; either way the
        outcome is recorded in the store for the command waiting on it. Reloads run one at a
        time (signals coming quickly each start one)."""
        async with self.reloading:
            changed: set[int] | None = None  # the organisations whose settings changed (None: read all again)
            if change is not None:
                if change <= self.change_id:
                    return  # (taken up by a reload that ran meanwhile)
                if self.changes is not None:
                    # Every change recorded by now, in one reload: changes made together (the API's
                    # concurrent requests) are applied together, not one reload each.
                    change = max(change, self.changes.latest_change())
                    changed = self.changes.changed_organisations(self.change_id, change)
                self.change_id = change
            await self._reload(f"change {change} in the store" if change is not None else cause, changed)

    async def _watch_changes(self, every: float = WATCH_CHANGES_EVERY) -> None:
        """Poll the store's change log (one indexed lookup) and reload when a command has
        recorded a change: settings changes are live within a fraction of a second, without a
        signal the command might not be allowed to send."""
        assert self.changes is not None
        while True:
            await asyncio.sleep(every)
            try:
                latest = self.changes.latest_change()
            except Exception as exc:  # (the store failing: try again; the watchdog tells systemd)
                log.warning("cannot read the store's change log: %s", exc)
                continue
            if latest > self.change_id:
                await self.reload(change=latest)

    async def _reload(self, cause: str = "SIGHUP", changed: set[int] | None = None) -> None:
        """The new configuration is built whole beside the running one (rules resolved against the
        store, the listeners' policies), its new listeners opened, and only then swapped in with
        one assignment: before that, nothing the daemon runs has changed."""
        self.reloads += 1
        systemd_notify.reloading()
        running = self._in_effect()
        assert self.writer is not None
        try:
            config = await asyncio.to_thread(load_config, running.config.path)
            wanted = await self.writer.run(
                lambda store: RunningConfig.build(config, store, running.generation + 1, self.parsed_organisations,
                                                  running, changed))
            commit = await self._open_listeners(wanted)
        except (ConfigError, ProstoyMailError) as exc:
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            for problem in problems:
                log.error("reload refused, keeping the running configuration: %s", problem)
            await self._reloaded(refused="; ".join(str(p) for p in problems))
            return
        self.running = wanted  # the swap: from here on every reader sees the new generation
        for slug, why in wanted.organisations_refused.items():
            log.error("organisation %s: its settings cannot be applied and are left out: %s", slug, why)
        if self.smtp_workers is not None:
            self.smtp_workers.apply(wanted.smtp, config.daemon.hostname, wanted.generation)
        if self.outbound is not None:
            self.outbound.wake()  # (its poll interval, say, may have changed)
        if self.fetchers is not None:
            self.fetchers.apply(config, wanted.organisations.values())  # watchers started, stopped or replaced
        commit()  # only now are the listeners that moved or went away closed
        try:
            await self._open_metrics()
        except OSError as exc:
            log.error("reload: listen.metrics: cannot listen on %s: %s", config.listen.metrics, exc.strerror or exc)
        if self.smtp_workers is not None and not await self.smtp_workers.applied_everywhere():
            log.warning("reload: not every SMTP worker has acknowledged configuration generation %d yet",
                        wanted.generation)
        log.info("configuration reloaded (generation %d, on %s): %d mailboxes, %d gateways, %d rules; %s",
                 wanted.generation, cause, len(config.mailboxes), len(config.gateways), len(config.rules),
                 self._listening())
        await self._reloaded()

    async def control(self) -> None:
        """SIGUSR1: carry out the command line's request waiting in the store (control_request.py)."""
        assert self.writer is not None
        try:
            request = ControlRequest.from_json(await self.writer.run(lambda store: store.setting(REQUEST)))
            if request is None:
                return
            cleared = {address: self.guard.unblock(address) if self.guard is not None else 0
                       for address in request.unblock}
            answer = ControlAnswer(request.id, cleared)
            await self.writer.run(lambda store: store.set_setting(ANSWER, answer.to_json()))
        except Exception as exc:  # (the store failing: the command times out and says so)
            log.warning("a request from the command line could not be carried out: %s", exc)

    async def _reloaded(self, refused: str | None = None) -> None:
        """Tell systemd, and record for the command line which file was applied or refused."""
        await self._record_configuration(refused)
        await self._refresh_last_task()
        systemd_notify.ready(self.status())

    async def _record_configuration(self, refused: str | None = None) -> None:
        assert self.writer is not None
        self.metrics.config_generation.set(self.generation)
        left_out = dict(self.running.organisations_refused) if self.running is not None else {}
        state = ConfigurationState(os.getpid(), self.generation, file_digest(self.config.path),
                                   self.config.text_sha256, refused, str(self.config.path), self.reloads,
                                   self.change_id, time.time(), left_out)
        try:
            await self.writer.run(lambda store: store.set_setting(CONFIGURATION_STATE, state.to_json()))
        except Exception as exc:  # (a full disk, say: the daemon runs on; the command line will time out)
            log.warning("could not record the configuration's state in the store: %s", exc)

    async def stop(self) -> None:
        systemd_notify.stopping()
        if self.event_hub is not None:
            self.event_hub.end_all()  # (endless responses: else the HTTP listeners would wait out their grace)
        for task in [*self.background, *([self.imap_watch] if self.imap_watch else [])]:
            task.cancel()
        self.listeners.close_all()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE_SECONDS
        while self._in_data() and loop.time() < deadline:
            await asyncio.sleep(0.05)  # let sessions in DATA send the rest and get their reply
        if self._in_data():
            log.warning("stopping with %d sessions still in DATA after %ss; they get no reply and will retry",
                        self._in_data(), STOP_GRACE_SECONDS)
        if self.smtp_workers is not None:  # (they let their sessions in DATA finish, as above)
            await self.smtp_workers.stop(max(0.0, deadline - loop.time()))
        if self.fetchers is not None:
            await self.fetchers.stop_all()
        if self.outbound is not None:
            await self.outbound.stop()
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server[1].shutdown)
            self.metrics_server[1].server_close()
        for http in self.http_listeners:
            await http.wait_closed()  # (requests in hand finish: up to api.server.GRACE seconds)
        if self.webhook_task is not None:
            self.webhook_task.cancel()  # (a POST in hand is cut: its event is sent again after the restart)
            with contextlib.suppress(asyncio.CancelledError):
                await self.webhook_task
        if self.webhook_reader is not None:
            self.webhook_reader.close()
        if self.api_hub is not None:
            self.api_hub.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.api_hub
        if self.api_reader is not None:
            self.api_reader.close()
        if self.imap is not None:
            self.imap.close_all()
            await asyncio.sleep(0.1)  # let the BYEs go out
            self.imap.context.reader.close()
        if self.changes is not None:
            self.changes.close()
        if self.writer is not None:
            await asyncio.to_thread(self.writer.close)
        self.listeners.release_addresses()
        if self.store_lock is not None:
            self.store_lock.release()
        log.info("prostoy-mail stopped")

    def _in_data(self) -> int:
        handlers = (self.smtp_handler, self.submission_handler)
        return sum(h.in_data for h in handlers if h is not None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(self.control()))
        try:
            await self.start()
            await self.stopping.wait()
        finally:
            await self.stop()


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop where it is installed (faster for many small sessions), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def run(config_path: Path, log_level: str = "info") -> int:
    setup_logging(log_level)
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    for warning in config_warnings(config_path, config) + service_warnings(config_path, config):
        log.warning("%s", warning)
    raise_open_files_limit()
    try:
        _run_loop(Daemon(config).run())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except ProstoyMailError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:  # e.g. a port already in use
        log.error("cannot start: %s", exc)
        return 1
    return 0


def _prune(store: SqliteStore, before: str) -> int:
    return store.prune_events(before)
