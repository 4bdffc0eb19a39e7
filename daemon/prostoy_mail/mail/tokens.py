"""Signed task tokens: how a reply finds the task its original was sent from.

Mail sent from task 42 gets the Message-ID `<pm.42.NONCE.SIG@hostname>` and, from a domain
mailbox, the reply address `login+t42.SIG@domain`. SIG is an HMAC-SHA256 under a key kept
in the store, so a task cannot be guessed or forged; a task number in a subject is never
trusted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_MESSAGE_ID = re.compile(r"^pm\.(\d{1,12})\.([a-z2-7]{8,16})\.([a-z2-7]{16})@", re.IGNORECASE)
_ADDRESS_TOKEN = re.compile(r"^t(\d{1,12})\.([a-z2-7]{12})$", re.IGNORECASE)


def _sign(key: bytes, text: str, length: int) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:length]


@dataclass(frozen=True, slots=True)
class TaskTokens:
    key: bytes

    def message_id(self, task_id: int, hostname: str) -> str:
        """A new Message-ID (without brackets) for mail sent from `task_id`."""
        nonce = base64.b32encode(secrets.token_bytes(10)).decode().lower()[:16]
        return f"pm.{task_id}.{nonce}.{_sign(self.key, f'mid:{task_id}.{nonce}', 16)}@{hostname}"

    def task_of_message_id(self, message_id: str) -> int | None:
        match = _MESSAGE_ID.match(message_id)
        if match is None:
            return None
        task_id, nonce, sig = int(match[1]), match[2].lower(), match[3].lower()
        expected = _sign(self.key, f"mid:{task_id}.{nonce}", 16)
        return task_id if hmac.compare_digest(sig, expected) else None

    def reply_address(self, login: str, task_id: int, domain: str) -> str:
        """`login+t<task>.<sig>@domain`; a login on an own domain (`sales@acme.example`) keeps
        its domain. The signature covers the whole login: a token of one domain's mailbox is no
        good on another's."""
        local, at, own = login.partition("@")
        return f"{local}+t{task_id}.{_sign(self.key, f'addr:{login}:{task_id}', 12)}@{own if at else domain}"

    def task_of_address_token(self, login: str, token: str) -> int | None:
        """The task of the `+token` part of a domain address, if the signature holds."""
        match = _ADDRESS_TOKEN.match(token)
        if match is None:
            return None
        task_id = int(match[1])
        expected = _sign(self.key, f"addr:{login.lower()}:{task_id}", 12)
        return task_id if hmac.compare_digest(match[2].lower(), expected) else None
