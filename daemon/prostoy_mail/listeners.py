"""The daemon's listening sockets, by name (smtp, submission, submissions, imap, imaps): opened,
reopened when their own settings change, closed; each address claimed for this daemon alone.

How a listener of each protocol is opened is the daemon's (it wires the handlers); what is
opened, when, and how a change is applied all or nothing is here.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from .config.model import Config, Endpoint
from .errors import ProstoyMailError
from .instance_lock import AddressLocks


@dataclass
class Listener:
    endpoint: Endpoint
    port: int
    close: Callable[[], object]
    settings: object  # what the listener was opened with; a change means reopening it


OpenOne = Callable[[str, Endpoint, object], Awaitable[Listener]]  # (name, endpoint, settings)


def listener_settings(name: str, endpoint: Endpoint, config: Config) -> object:
    """What a listener is opened with: when it changes, the listener is reopened (only then).
    The IMAP listeners read everything else from the running configuration."""
    if name in ("imap", "imaps", "http"):
        return (endpoint, config.tls)
    return (endpoint, config.smtp, config.daemon.hostname, config.tls)


def addresses(config: Config) -> set[tuple[str, int]]:
    """Every fixed address the configuration listens on (the metrics' too)."""
    return {(e.host, e.port) for e in (*dict(config.listen.items()).values(), config.listen.metrics)
            if e is not None}


class Listeners:
    def __init__(self) -> None:
        self.open: dict[str, Listener] = {}
        self.locks = AddressLocks()  # this machine's listening addresses, ours alone

    def port(self, name: str) -> int:
        return self.open[name].port

    def describe(self) -> str:
        return ", ".join(f"{name} {listener.endpoint}" for name, listener in self.open.items()) or "no listeners"

    async def change_to(self, config: Config, open_one: OpenOne,
                        also_running: AbstractSet[tuple[str, int]] = frozenset()) -> Callable[[], None]:
        """Open what `config` asks for: a listener that is new, or whose own settings changed.
        Nothing running is closed here: that is the commit returned, to be called once everything
        else of the change has worked. If one listener cannot be opened, those opened before it are
        closed again and ProstoyMailError names it (the running ones go on). `also_running`: other
        addresses this daemon holds (the metrics listener's).

        A new socket is bound (SO_REUSEPORT) before the old one closes, so no connection is
        refused in between; open sessions go on with the limits they started with.
        """
        wanted = dict(config.listen.items())
        opened: dict[str, Listener] = {}
        try:
            for name, endpoint in wanted.items():
                settings = listener_settings(name, endpoint, config)
                old = self.open.get(name)
                if old is not None and old.settings == settings:
                    continue
                self.locks.claim(name, endpoint.host, endpoint.port)
                try:
                    opened[name] = await open_one(name, endpoint, settings)
                except OSError as exc:  # (Twisted's CannotListenError is turned into one by the daemon)
                    raise ProstoyMailError(f"listen.{name}: cannot listen on {endpoint}: "
                                           f"{exc.strerror or exc}") from None
            if config.listen.metrics is not None:
                self.locks.claim("metrics", config.listen.metrics.host, config.listen.metrics.port)
        except BaseException:
            for listener in opened.values():
                listener.close()
            running = {(listener.endpoint.host, listener.endpoint.port) for listener in self.open.values()}
            self.locks.keep_only(running | set(also_running))  # (what this attempt claimed anew is let go)
            raise

        def commit() -> None:
            for name in list(self.open):
                if name not in wanted or name in opened:
                    self.open.pop(name).close()
            self.open.update(opened)
            self.locks.keep_only(addresses(config))

        return commit

    def close_all(self) -> None:
        for listener in self.open.values():
            listener.close()
        self.open.clear()

    def release_addresses(self) -> None:
        self.locks.release_all()


async def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for `host:port` (every address the name has), as create_server would
    bind them (SO_REUSEADDR; SO_REUSEPORT, so a new socket can be bound before the old closes)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(511)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
