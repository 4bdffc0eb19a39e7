"""Events to the CRM as they happen: a server-sent-events stream per organisation.

Events are rows of the store, written with their cause (store/events.py). One poller (the
hub) reads the new ones, one indexed query for all streams, and hands each to the streams of
its organisation: as soon as the daemon's store writer has a batch on disk (`wake`), and
every EVERY seconds for what other processes write. A stream starts after `Last-Event-ID` (a client that reconnects
misses nothing: what it has not had is read from the store first) or, without one, at the
newest event. A client too slow to take what comes (its queue of QUEUE events full) is
disconnected; it comes back with its Last-Event-ID and reads the rest from the store: memory
never grows with a slow reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProstoyMailError
from ..store.ports import Event
from ..store.roles import EventReader
from ..views import comment_json, entry_json

log = logging.getLogger(__name__)
QUEUE = 1000  # events waiting for one stream before it is cut off
EVERY = 0.02  # seconds between the hub's looks at the store (one indexed query: 50 a second cost nothing)
RENDERED = 2000  # events kept rendered: each is rendered once, not once per stream (1,000 streams: 1,000 reads)
KEEPALIVE = 15.0  # seconds of silence before a comment line (proxies close idle streams)


@dataclass(eq=False)
class Subscriber:
    org_id: int
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    overflowed: bool = False
    ended: bool = False  # the daemon is stopping (or the listener closing): the stream ends now

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True  # (its stream ends; the client resumes from the store)

    def end(self) -> None:
        self.ended = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)  # (wakes it; a full queue: it ends at its next look)


class EventHub:
    def __init__(self, reader: EventReader) -> None:
        self.reader = reader
        self.latest = reader.latest_event_id()
        self.subscribers: dict[int, set[Subscriber]] = {}
        self._rendered: OrderedDict[int, str] = OrderedDict()
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Look at the store now (the store writer has committed a batch)."""
        self._woken.set()

    def text(self, event: Event, slug: str) -> str:
        """The event as SSE text, rendered once for every stream that sends it."""
        text = self._rendered.get(event.id)
        if text is None:
            text = self._rendered[event.id] = sse(self.reader, event, slug)
            while len(self._rendered) > RENDERED:
                self._rendered.popitem(last=False)
        return text

    def subscribe(self, org_id: int) -> Subscriber:
        subscriber = Subscriber(org_id)
        self.subscribers.setdefault(org_id, set()).add(subscriber)
        return subscriber

    def end_all(self) -> None:
        """End every stream now (the daemon stops): their clients reconnect, with Last-Event-ID."""
        for group in self.subscribers.values():
            for subscriber in group:
                subscriber.end()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        group = self.subscribers.get(subscriber.org_id)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self.subscribers[subscriber.org_id]

    async def run(self, every: float = EVERY) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await self._woken.wait()
            self._woken.clear()
            try:
                events = self.reader.events_after(self.latest)
            except Exception as exc:  # (the store failing: try again; nothing is lost, it is all in the store)
                log.warning("events: cannot read the store: %s", exc)
                continue
            for event in events:
                self.latest = event.id
                for subscriber in self.subscribers.get(event.org_id, ()):
                    subscriber.offer(event)


def render(reader: EventReader, event: Event, slug: str) -> dict[str, Any]:
    """An event as the CRM gets it: id, type, organisation, created_at and the object (a
    comment as `task comments --json` shows it, an outbound message as `queue list --json`)."""
    body: dict[str, Any] | None = event.data
    try:
        if event.type == "comment.created" and event.object_id is not None:
            body = comment_json(reader.get_comment(event.object_id))
        elif event.type == "outbound.state" and event.object_id is not None:
            body = entry_json(reader.get_outbound(event.object_id))
    except ProstoyMailError:  # (gone since: its organisation removed it)
        body = None
    return {"id": event.id, "type": event.type, "organisation": slug, "created_at": event.created_at, "object": body}


def sse(reader: EventReader, event: Event, slug: str) -> str:
    data = json.dumps(render(reader, event, slug), ensure_ascii=False)
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


async def stream(hub: EventHub, org_id: int, slug: str, after: int | None,
                 allow: Callable[[Event], bool] | None = None) -> AsyncIterator[str]:
    """The organisation's events after `after` (None: from now on), as SSE text; `allow`: which
    of them this client may hear (an employee: those of what they see)."""
    subscriber = hub.subscribe(org_id)  # (before reading the store: nothing falls between the two)
    try:
        last = hub.latest if after is None else after
        while True:  # what the store has that the client has not
            backlog = hub.reader.events_after(last, org_id, 500)
            for event in backlog:
                last = event.id
                if allow is None or allow(event):
                    yield hub.text(event, slug)
            if len(backlog) < 500:
                break
        yield ": live\n\n"
        while not subscriber.overflowed and not subscriber.ended:
            try:
                async with asyncio.timeout(KEEPALIVE):  # (not wait_for: that made a task per event and stream)
                    coming = await subscriber.queue.get()
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if coming is None:  # (ended)
                return
            if coming.id > last:
                last = coming.id
                if allow is None or allow(coming):
                    yield hub.text(coming, slug)
        if subscriber.overflowed:
            log.info("events: a stream of organisation %s fell %d events behind and was cut off", slug, QUEUE)
    finally:
        hub.unsubscribe(subscriber)
