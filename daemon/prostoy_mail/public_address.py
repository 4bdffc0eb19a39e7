"""Only public addresses for the servers an organisation in the store names.

A hosted organisation types a host and port into its settings; the daemon connects there and
shows the server's answers ("Test"). Left open, that lets a customer probe the provider's own
network: the daemon's API on loopback, the store's PostgreSQL, a cloud's metadata address.
So the name is resolved first and every address it resolves to must be global (not
loopback, private, link-local, shared, reserved or multicast), unless the provider allows it
(`[fetch] private_servers`, e.g. a test bed on loopback). The connection then goes to the
name as usual (TLS checks the name); a DNS answer that changes between the check and the
connect is the one gap left, as in most such guards.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket


class PrivateAddress(Exception):
    """The host resolves to an address organisations' servers may not have."""


def _refusal(host: str, addresses: list[str]) -> str | None:
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # (an IPv6 zone id)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global:
            return f"{host} is at {address}, a private or reserved address: organisations' servers must be public"
    return None


def check_public(host: str, port: int) -> None:
    """Raise PrivateAddress when `host` resolves to a non-public address; socket.gaierror when
    it does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    refusal = _refusal(host, [str(info[4][0]) for info in infos])
    if refusal is not None:
        raise PrivateAddress(refusal)


async def check_public_async(host: str, port: int) -> None:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    refusal = _refusal(host, [str(info[4][0]) for info in infos])
    if refusal is not None:
        raise PrivateAddress(refusal)
