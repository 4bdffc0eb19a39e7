"""The API benchmarks' organisation and its owner: "acme" in the store, owned by "boss"."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prostoy_mail.store.sqlite import SqliteStore

OWNER, PASSWORD = "boss", "boss-pw"


def add_acme(store: SqliteStore) -> int:
    """Organisation "acme" and its owner; its id (the store acting for it is the caller's)."""
    from prostoy_mail.auth.password_hashes import hash_password

    acme = store.add_organisation("acme", "Acme").id
    with store.acting_for(acme):
        store.add_user(OWNER, "Boss", hash_password(PASSWORD), is_owner=True)
    return acme


def owner_token(api: str) -> str:
    """A session of acme's owner: `api` is the daemon's http://HOST:PORT/api/v1."""
    request = urllib.request.Request(f"{api}/sessions", method="POST", headers={"content-type": "application/json"},
                                     data=json.dumps({"login": OWNER, "password": PASSWORD}).encode())
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(json.load(answer)["token"])
