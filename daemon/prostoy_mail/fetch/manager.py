"""The watchers of all gateways: started, stopped and replaced as the configuration changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import replace

from ..config.model import Config, Gateway, Server
from .watcher import FetchContext, ImapWatcher, Pop3Watcher, Watcher

log = logging.getLogger(__name__)


class FetchManager:
    def __init__(self, context: FetchContext) -> None:
        self.context = context
        self.watchers: dict[str, tuple[Gateway, Server, Watcher]] = {}
        self.organisations: dict[str, str] = {}  # gateway address -> its organisation's slug

    def apply(self, config: Config, organisations: Iterable[Config] = ()) -> None:
        """Start, stop or replace watchers so that each fetching gateway (the file's, and those of
        the `organisations` in the store, each with its own servers) has one; others go on
        undisturbed. A gateway's address is one organisation's (provisioning.Owners)."""
        self.context = replace(self.context, settings=config.fetch, max_message_size=config.smtp.max_message_size)
        wanted: dict[str, tuple[Gateway, Server]] = {}
        self.organisations = {}
        for settings in (config, *organisations):
            for gateway in settings.gateways:
                server = settings.server(gateway.server)
                if not gateway.forwarding or server is None:
                    continue
                wanted[gateway.email] = (gateway, server)
                self.organisations[gateway.email] = settings.organisation.slug
        for email, (gateway, server, watcher) in list(self.watchers.items()):
            if wanted.get(email) != (gateway, server):
                watcher.stop()  # it finishes the message in hand; the store keeps everything once
                del self.watchers[email]
                log.info("gateway %s: watcher stopped (%s)", email, "changed" if email in wanted else "removed")
        for email, (gateway, server) in wanted.items():
            if email not in self.watchers:
                kind = ImapWatcher if gateway.protocol == "imap" else Pop3Watcher
                started = kind(gateway, server, self.context, self.organisations[email])
                self.watchers[email] = (gateway, server, started)
                started.start()

    def checks(self, email: str) -> int:
        """How many checks of the gateway's mailbox its watcher has finished (0: none running)."""
        running = self.watchers.get(email)
        return running[2].checks if running is not None else 0

    def summary(self) -> str:
        if not self.watchers:
            return "no gateways fetching"
        connected = sum(1 for _, _, w in self.watchers.values() if w.connection is not None)
        if self.context.metrics is not None:
            self.context.metrics.gateways.labels("connected").set(connected)
            self.context.metrics.gateways.labels("waiting").set(len(self.watchers) - connected)
        return f"{len(self.watchers)} gateways fetching, {connected} connected"

    async def stop_all(self, timeout: float = 30.0) -> None:
        watchers = [w for _, _, w in self.watchers.values()]
        self.watchers.clear()
        for watcher in watchers:
            watcher.stop()

        def join_all() -> None:
            for watcher in watchers:
                watcher.join(timeout)

        await asyncio.to_thread(join_all)  # they may be waiting on this loop: never join on it
