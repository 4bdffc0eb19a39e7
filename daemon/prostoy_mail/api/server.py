"""Serving the API on the daemon's loop: uvicorn's HTTP protocol on a socket the daemon bound.

`uvicorn.Server.serve()` would take SIGINT and SIGTERM for itself (it installs handlers with
signal.signal and re-raises them at its end): the daemon's own handlers would stop working. So
the daemon uses the three steps serve() is made of, which are public: startup() on our
sockets, main_loop() (it keeps the Date header current and ends when asked), shutdown() (stop
accepting, let requests in hand finish); and, as serve() does first, `server.lifespan` set
from `config.lifespan_class`. tests/unit/test_library_internals.py checks they are still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)
GRACE = 10  # seconds requests in hand may take to finish when the listener closes


class HttpListener:
    def __init__(self, server: uvicorn.Server, sockets: list[socket.socket], ticker: asyncio.Task[None]) -> None:
        self.server = server
        self.sockets = sockets
        self.ticker = ticker
        self.closing: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, app: FastAPI, sockets: list[socket.socket], context: ssl.SSLContext | None) -> HttpListener:
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, server_header=False,
                                timeout_graceful_shutdown=GRACE, h11_max_incomplete_event_size=64 * 1024)
        config.load()
        config.ssl = context  # (ours: [tls], as the other listeners have it)
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)  # (what serve() sets before startup(): "off" here)
        await server.startup(sockets=sockets)
        return cls(server, sockets, asyncio.create_task(server.main_loop(), name="http-ticker"))

    def close(self) -> None:
        """Stop accepting now; requests in hand finish in the background (up to GRACE seconds)."""
        if self.closing is None:
            self.closing = asyncio.create_task(self._shutdown(), name="http-shutdown")

    async def _shutdown(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.ticker
        await self.server.shutdown(sockets=self.sockets)

    async def wait_closed(self) -> None:
        if self.closing is not None:
            await self.closing
