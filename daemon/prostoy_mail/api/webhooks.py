"""Delivering events to organisations' webhooks: POSTed in order, at least once.

Each webhook has its place in the event log. The deliverer looks every EVERY seconds for
webhooks that are due, and sends each its next events one by one (in order: the next is sent
only when the one before was taken), moving its place on in the store only after a 2xx: a
crash repeats an event (the receiver deduplicates by `X-Prostoy-Event-Id`), never skips one.
A failed try waits [api] webhook_retry_initial (5 s), doubling up to webhook_retry_max (an
hour), with jitter; after webhook_failing_after (24 h) of failures the webhook is marked
failing (the API and the metrics show it) and is still tried, at the longest interval.

Each POST: the event's JSON (as the stream has it), `X-Prostoy-Event-Id`,
`X-Prostoy-Timestamp` (unix seconds) and `X-Prostoy-Signature: sha256=HEX`, the HMAC-SHA256
under the webhook's secret of "TIMESTAMP.BODY" (the receiver checks it, and the timestamp's age).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from ..config.model import Config
from ..metrics import Metrics
from ..public_address import PrivateAddress, check_public_async
from ..store.ports import Event, Webhook
from ..store.roles import StoreJobs, WebhookStore
from .events import render

log = logging.getLogger(__name__)
EVERY = 0.2  # seconds between looks for due webhooks (and new events)
TIMEOUT = 10.0  # seconds a receiver has for one POST
BATCH = 100  # events read at a time for one webhook
PROGRESS = 10  # events POSTed between two records of a webhook's place (a crash sends these again)
PARALLEL = 50  # webhooks posted to at once


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                                hashlib.sha256).hexdigest()


class WebhookDeliverer:
    def __init__(self, reader: WebhookStore, writer: StoreJobs[WebhookStore], config: Callable[[], Config],
                 metrics: Metrics | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.config = config
        self.metrics = metrics
        self.client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False,
                                        headers={"User-Agent": "prostoy-mail webhooks"})
        self.parallel = asyncio.Semaphore(PARALLEL)
        self.passes = 0

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.deliver_due()
                except Exception:  # (the store failing: next time; nothing is lost, the places are in the store)
                    log.exception("webhooks: a pass failed")
                self.passes += 1
                await asyncio.sleep(EVERY)
        finally:
            await self.client.aclose()

    async def deliver_due(self) -> None:
        hooks = self.reader.list_webhooks()
        if self.metrics is not None:
            self.metrics.webhooks_failing.set(sum(1 for h in hooks if h.state == "failing"))
        due = [h for h in hooks if h.next_attempt <= time.time()]
        if due:
            slugs = self.reader.organisation_slugs()
            await asyncio.gather(*(self._deliver(hook, slugs.get(hook.org_id, "")) for hook in due))

    async def _deliver(self, hook: Webhook, slug: str) -> None:
        async with self.parallel:
            through = recorded = hook.delivered_through
            try:
                for number, event in enumerate(self.reader.events_after(through, hook.org_id, BATCH), 1):
                    if not hook.types or event.type in hook.types:
                        await self._post(hook, slug, event)
                    through = event.id
                    if number % PROGRESS == 0:
                        await self._progress(hook, recorded, through)
                        recorded = through
            except _Failed as failed:
                await self._progress(hook, recorded, through)
                await self._failed(hook, slug, str(failed))
                return
            await self._progress(hook, recorded, through)

    async def _progress(self, hook: Webhook, recorded: int, through: int) -> None:
        if through > recorded:
            await self.writer.run(lambda store: store.webhook_delivered(hook.id, through))

    async def _post(self, hook: Webhook, slug: str, event: Event) -> None:
        if not self.config().fetch.private_servers:  # (a customer's URL must not reach the provider's network)
            host = urlsplit(hook.url).hostname or ""
            try:
                await check_public_async(host, 443)
            except (PrivateAddress, OSError) as exc:
                raise _Failed(str(exc)) from None
        body = json.dumps(render(self.reader, event, slug), ensure_ascii=False).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Prostoy-Event-Id": str(event.id),
                   "X-Prostoy-Event-Type": event.type, "X-Prostoy-Timestamp": timestamp,
                   "X-Prostoy-Signature": signature(hook.secret, timestamp, body)}
        try:
            answer = await self.client.post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _Failed(f"{type(exc).__name__}: {exc}") from None
        if not 200 <= answer.status_code < 300:
            raise _Failed(f"HTTP {answer.status_code}")
        if self.metrics is not None:
            self.metrics.webhooks.labels(slug, "delivered").inc()

    async def _failed(self, hook: Webhook, slug: str, error: str) -> None:
        settings = self.config().api
        delay = min(settings.webhook_retry_max, settings.webhook_retry_initial * 2 ** min(hook.attempts, 30))
        delay *= random.uniform(0.5, 1.5)  # (receivers that failed together are not retried together)
        failing_after = settings.webhook_failing_after
        changed = await self.writer.run(
            lambda store: store.webhook_failed(hook.id, error, time.time() + delay, failing_after))
        if self.metrics is not None:
            self.metrics.webhooks.labels(slug, "failed").inc()
        log.warning("webhook %d of %s: %s; try %d, next in %.0f s%s", hook.id, slug, error, changed.attempts, delay,
                    " (failing)" if changed.state == "failing" else "")


class _Failed(Exception):
    """A POST that did not get a 2xx (or could not be made)."""
