"""Webhooks (SQLite), mixed into SqliteStore: an organisation's receivers of its events, each
with its place in the event log."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import AbstractContextManager

from ..errors import NotFound
from .clock import now
from .ports import Webhook


class WebhooksMixin:
    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # SqliteStore's

    def add_webhook(self, org_id: int, url: str, secret: str, types: list[str]) -> Webhook:
        """A new webhook; it gets the events from now on."""
        with self.transaction() as db:
            latest = int(db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])
            cur = db.execute("INSERT INTO webhooks (org_id, url, secret, types, created_at, delivered_through)"
                             " VALUES (?, ?, ?, ?, ?, ?)", (org_id, url, secret, json.dumps(types), now(), latest))
            assert cur.lastrowid is not None
            return self.webhook(org_id, cur.lastrowid)

    def webhook(self, org_id: int, webhook_id: int) -> Webhook:
        row = self.db.execute(_SELECT + " WHERE org_id = ? AND id = ?", (org_id, webhook_id)).fetchone()
        if row is None:
            raise NotFound(f"no webhook {webhook_id}")
        return _webhook(row)

    def list_webhooks(self, org_id: int | None = None) -> list[Webhook]:
        """One organisation's, or (None) every one (the deliverer's)."""
        if org_id is None:
            return [_webhook(r) for r in self.db.execute(_SELECT + " ORDER BY id")]
        return [_webhook(r) for r in self.db.execute(_SELECT + " WHERE org_id = ? ORDER BY id", (org_id,))]

    def change_webhook(self, org_id: int, webhook_id: int, url: str | None, secret: str | None,
                       types: list[str] | None) -> Webhook:
        """A changed URL, secret or types; a failing webhook is tried again now."""
        with self.transaction() as db:
            self.webhook(org_id, webhook_id)
            db.execute("UPDATE webhooks SET url = coalesce(?, url), secret = coalesce(?, secret),"
                       " types = coalesce(?, types), state = 'active', attempts = 0, next_attempt = 0,"
                       " failing_since = NULL WHERE id = ?",
                       (url, secret, None if types is None else json.dumps(types), webhook_id))
            return self.webhook(org_id, webhook_id)

    def remove_webhook(self, org_id: int, webhook_id: int) -> None:
        with self.transaction() as db:
            if db.execute("DELETE FROM webhooks WHERE org_id = ? AND id = ?", (org_id, webhook_id)).rowcount == 0:
                raise NotFound(f"no webhook {webhook_id}")

    def webhook_delivered(self, webhook_id: int, through: int) -> None:
        """The receiver took the events up to `through` (or they were not of its types)."""
        with self.transaction() as db:
            db.execute("UPDATE webhooks SET delivered_through = max(delivered_through, ?), attempts = 0,"
                       " next_attempt = 0, failing_since = NULL, state = 'active', last_error = NULL WHERE id = ?",
                       (through, webhook_id))

    def webhook_failed(self, webhook_id: int, error: str, next_attempt: float, failing_after: float) -> Webhook:
        """A try that failed; the webhook is `failing` once it has failed for `failing_after` seconds."""
        at = time.time()
        with self.transaction() as db:
            db.execute("UPDATE webhooks SET attempts = attempts + 1, next_attempt = ?, last_error = ?,"
                       " failing_since = coalesce(failing_since, ?),"
                       " state = CASE WHEN ? - coalesce(failing_since, ?) >= ? THEN 'failing' ELSE state END"
                       " WHERE id = ?", (next_attempt, error, at, at, at, failing_after, webhook_id))
            row = db.execute(_SELECT + " WHERE id = ?", (webhook_id,)).fetchone()
            return _webhook(row)


_SELECT = ("SELECT id, org_id, url, secret, types, created_at, delivered_through, attempts, next_attempt,"
           " failing_since, state, last_error FROM webhooks")


def _webhook(row: sqlite3.Row) -> Webhook:
    return Webhook(int(row[0]), int(row[1]), str(row[2]), str(row[3]), tuple(json.loads(str(row[4]))), str(row[5]),
                   int(row[6]), int(row[7]), float(row[8]), None if row[9] is None else float(row[9]), str(row[10]),
                   None if row[11] is None else str(row[11]))
