"""The daemon's configuration for tests, from one place.

A test names only what it needs (`config_text(listen={...}, smtp={"workers": 0},
mailboxes=["sales"])`); every file starts from the same [daemon], and values are written by
tomli-w, so quoting is never pasted by hand. Tables are always written with headers
(`[[mailboxes]]`, never inline arrays), so a test may append more TOML text after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tomli_w

DOMAIN = "example.test"
HOSTNAME = "mx.example.test"
LOOPBACK_ANY_PORT = "127.0.0.1:0"
# Gateways that notice change quickly and retry soon: what fetching tests want.
QUICK_FETCH: Mapping[str, Any] = {"idle_renew": 1, "poll_interval": 1, "backoff_initial": 0.2, "backoff_max": 1}

Entry = str | Mapping[str, Any]  # a mailbox's login alone, or the whole entry


def config_text(*, domain: str = DOMAIN, store: str = "store.db", hostname: str | None = HOSTNAME,
                daemon: Mapping[str, Any] | None = None, listen: Mapping[str, str] | None = None,
                mailboxes: Sequence[Entry] = (), servers: Sequence[Mapping[str, Any]] = (),
                gateways: Sequence[Mapping[str, Any]] = (), rules: Sequence[Mapping[str, Any]] = (),
                **tables: Mapping[str, Any]) -> str:
    """A whole configuration file's text. `listen` defaults to SMTP on any free loopback port
    ({} for no listener at all); `tables` are the other sections by name (smtp, fetch, tls,
    auth, outbound, relay, ...)."""
    head = {"domain": domain, "store": store, **({"hostname": hostname} if hostname else {}), **(daemon or {})}
    parts = [_table("[daemon]", head)]
    listening = {"smtp": LOOPBACK_ANY_PORT} if listen is None else listen
    if listening:
        parts.append(_table("[listen]", listening))
    parts.extend(_table(f"[{name}]", values) for name, values in tables.items())
    for name, entries in (("servers", servers), ("mailboxes", mailboxes), ("gateways", gateways), ("rules", rules)):
        parts.extend(_table(f"[[{name}]]", {"login": e} if isinstance(e, str) else e) for e in entries)
    return "\n".join(parts)


def _table(header: str, values: Mapping[str, Any]) -> str:
    return header + "\n" + "".join(tomli_w.dumps({key: value}) for key, value in values.items())
