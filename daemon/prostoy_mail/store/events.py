"""Events (SQLite), mixed into SqliteStore: written in the transaction of their cause, read in
order by id (the API's stream and webhooks).

Whose an event is: the organisation whose task holds the comment, whose gateway it is, whose
outbound message. Types: comment.created, gateway.state, message.quarantined, outbound.state.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .clock import now
from .ports import Event

# the organisation of a task, of a gateway (by its task), for the INSERT ... SELECT below
ORG_OF_TASK = "SELECT p.org_id FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.id = ?"
ORG_OF_GATEWAY = ("SELECT p.org_id FROM tasks t JOIN projects p ON p.id = t.project_id"
                  " WHERE t.source_key = 'gateway:' || ?")
ORG_OF_OUTBOUND = "SELECT org_id FROM outbound WHERE id = ?"


class EventsMixin:
    db: sqlite3.Connection

    def _add_event(self, org_of: str, key: object, kind: str, object_id: int | None,
                   data: dict[str, Any] | None = None) -> None:
        """Within the transaction of its cause. `org_of`: a query of the organisation (its column
        `org_id`, by `key`); an event of no organisation (a gateway no task holds yet) is not
        written. (One statement, the organisation looked up once: it runs for every comment.)"""
        self.db.execute(
            f"INSERT INTO events (org_id, type, object_id, data, created_at) SELECT org_id, ?, ?, ?, ? FROM ({org_of})",
            (kind, object_id, None if data is None else json.dumps(data, ensure_ascii=False), now(), key))

    def latest_event_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def events_after(self, after: int, org_id: int | None = None, limit: int = 1000) -> list[Event]:
        """Events with an id above `after`, oldest first: of one organisation, or of all."""
        where, args = ("id > ?", [after]) if org_id is None else ("org_id = ? AND id > ?", [org_id, after])
        rows = self.db.execute(f"SELECT id, org_id, type, object_id, data, created_at FROM events WHERE {where}"
                               " ORDER BY id LIMIT ?", (*args, limit))
        return [Event(int(r[0]), int(r[1]), str(r[2]), r[3], None if r[4] is None else json.loads(r[4]), str(r[5]))
                for r in rows]

    def prune_events(self, before: str, limit: int = 10_000) -> int:
        """Forget at most `limit` of the events created before `before` (ISO 8601), oldest first;
        how many. Never the newest event (ids are never given again: they are the streams' and
        the webhooks' places), nor one an active webhook has yet to deliver. Called again while
        it returns `limit` (short transactions: the writer serves others in between)."""
        cursor = self.db.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at < ?"
            " AND id < (SELECT max(id) FROM events)"
            " AND id <= coalesce((SELECT min(delivered_through) FROM webhooks WHERE state = 'active'), id)"
            " ORDER BY id LIMIT ?)", (before, limit))
        return int(cursor.rowcount)
