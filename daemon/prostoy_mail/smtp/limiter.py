"""Connection admission for the SMTP listeners: a connection over a limit (in total, per client
address; counted across all SMTP workers, see admission.py) gets 421 before any session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING

from ..config.model import SmtpLimits
from .admission import ConnectionCounts, LocalCounts

if TYPE_CHECKING:  # (an SMTP worker process does without prometheus-client)
    from ..metrics import Metrics

log = logging.getLogger(__name__)


class Refuse(asyncio.Protocol):
    """Answers a connection over a limit with 421 and closes it."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio.WriteTransport: no isinstance() here
        transport.write(self.reply.encode() + b"\r\n")  # type: ignore[attr-defined]
        transport.close()


class ConnectionLimiter:
    """The protocol factory of a listener: bounds connections in total and per client address.

    `counts` holds the open connections (this process's, or those of every SMTP worker);
    `report(event, detail)` hears of each connection "opened", "closed" or "refused" (with the
    limit): by default into `metrics`, in a worker over its channel to the daemon's."""

    def __init__(self, limits: SmtpLimits, make: Callable[[Callable[[], None]], asyncio.BaseProtocol],
                 metrics: Metrics | None = None, name: str = "smtp", counts: ConnectionCounts | None = None,
                 report: Callable[[str, str], None] | None = None) -> None:
        self.limits = limits
        self.make = make
        self.counts = counts if counts is not None else LocalCounts()
        self.report = report if report is not None else partial(count_connection, metrics, name)

    def __call__(self) -> asyncio.BaseProtocol:
        return _PeerProbe(self)

    def open(self, ip: str) -> asyncio.BaseProtocol:
        refusal = self.admit(ip)
        if refusal is not None:
            return Refuse(refusal)
        return self.make(partial(self.release, ip))

    def admit(self, ip: str) -> str | None:
        """None when a connection from `ip` may open (it is counted until `release`), else the
        421 reply that refuses it."""
        refused = self.counts.take(ip, self.limits)
        if refused is not None:
            if refused == "per_address_limit":
                log.info("%s: refused, already %d connections from this address", ip,
                         self.limits.max_connections_per_ip)
            self.report("refused", refused)
            return _REFUSALS[refused]
        self.report("opened", "")
        return None

    def release(self, ip: str) -> None:
        """A connection `admit` counted has closed."""
        self.counts.give_back(ip)
        self.report("closed", "")


_REFUSALS = {"total_limit": "421 4.3.2 Too many connections, try again later",
             "per_address_limit": "421 4.7.0 Too many connections from your address, try again later"}


def count_connection(metrics: Metrics | None, listener: str, event: str, detail: str) -> None:
    """A connection event into the metrics."""
    count_connections(metrics, listener, int(event == "opened"), int(event == "closed"),
                      {detail: 1} if event == "refused" else {})


def count_connections(metrics: Metrics | None, listener: str, opened: int, closed: int,
                      refused: Mapping[str, int]) -> None:
    """Connections opened, closed and refused (by the limit) into the metrics; an SMTP worker's
    come to the daemon in tallies."""
    if metrics is None:
        return
    if opened:
        metrics.connections.labels(listener).inc(opened)
    if opened != closed:
        metrics.sessions.inc(opened - closed)
    for limit, count in refused.items():
        metrics.connections_refused.labels(limit).inc(count)


class _PeerProbe(asyncio.Protocol):
    """Learns the client's address, then hands the connection to the real protocol.

    asyncio's protocol factory is called before the peer is known; this thin first
    protocol chooses between the SMTP session and a 421 once it is.
    """

    def __init__(self, limiter: ConnectionLimiter) -> None:
        self.limiter = limiter
        self.inner: asyncio.BaseProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self.inner = self.limiter.open(ip)
        transport.set_protocol(self.inner)
        self.inner.connection_made(transport)
