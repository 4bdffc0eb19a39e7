"""The outbound spool (SQLite), mixed into SqliteStore.

A submitted message is one `outbound` row (its bytes are a `messages` row, also shown as
the outgoing comment) and one `outbound_recipients` row per recipient. The runner records
each server's answer per recipient as soon as it has it; an entry is finished when no
recipient is pending: `sent` when all were delivered, else `failed` (and a bounce was made
in the same transaction).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ..errors import NotFound, ProstoyMailError
from .clock import now
from .events import ORG_OF_OUTBOUND
from .ports import OutboundEntry, OutboundRecipient, RecipientState


class OutboundQueueMixin:
    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # SqliteStore's

    def _scoped(self, column: str) -> tuple[str, tuple[int, ...]]:
        raise NotImplementedError  # SqliteStore's

    def _add_event(self, org_of: str, key: object, kind: str, object_id: int | None,
                   data: dict[str, Any] | None = None) -> None:
        raise NotImplementedError  # EventsMixin's

    def enqueue_outbound(self, *, message_db_id: int, task_id: int | None, sender: str, envelope_from: str,
                         route: str, scope: str, submitted_by: str, recipients: Sequence[tuple[str, bool]],
                         max_queue_time: float, upload_sent: bool, org_id: int) -> int:
        """Within the transaction that stores the message."""
        started = time.time()
        cur = self.db.execute(
            "INSERT INTO outbound (message_id, task_id, sender, envelope_from, route, scope, submitted_by,"
            " created_at, expires_at, next_attempt, sent_folder, org_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message_db_id, task_id, sender, envelope_from, route, scope, submitted_by, now(),
             started + max_queue_time, started, "waiting" if upload_sent else "", org_id),
        )
        assert cur.lastrowid is not None
        self.db.executemany(
            "INSERT OR IGNORE INTO outbound_recipients (outbound_id, address, local) VALUES (?, ?, ?)",
            [(cur.lastrowid, address, int(local)) for address, local in recipients])
        return cur.lastrowid

    def get_outbound(self, entry_id: int) -> OutboundEntry:
        """One of the organisation's messages (the command line's: scoped)."""
        where, args = self._scoped("org_id")
        row = self.db.execute(f"SELECT * FROM outbound WHERE id = ? AND {where}", (entry_id, *args)).fetchone()
        if row is None:
            raise NotFound(f"no message {entry_id} in the outbound queue")
        return self._entry(row)

    def _any_outbound(self, entry_id: int) -> OutboundEntry:
        """Any organisation's message: the runner's (it sends for all of them)."""
        return self._entry(self.db.execute("SELECT * FROM outbound WHERE id = ?", (entry_id,)).fetchone())

    def list_outbound(self, include_finished: bool = False) -> list[OutboundEntry]:
        scope, args = self._scoped("org_id")
        where = "" if include_finished else " AND (state = 'queued' OR sent_folder = 'pending')"
        return [self._entry(r) for r in self.db.execute(f"SELECT * FROM outbound WHERE {scope}{where} ORDER BY id",
                                                        args)]

    def due_outbound(self, at: float, limit: int = 100) -> list[OutboundEntry]:
        """What is due, taken in turns by organisation (each one's oldest first, then each one's
        second, ...): one organisation's thousands of queued messages never keep another's
        waiting behind them for whole passes (fair queueing)."""
        rows = self.db.execute(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY org_id ORDER BY next_attempt, id) AS turn"
            " FROM outbound WHERE state = 'queued' AND next_attempt <= ?) ORDER BY turn, next_attempt, id LIMIT ?",
            (at, limit)).fetchall()
        return [self._entry(r) for r in rows]

    def queued_outbound(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbound WHERE state = 'queued'").fetchone()[0])

    def next_outbound_due(self) -> float | None:
        row = self.db.execute("SELECT min(next_attempt) FROM outbound WHERE state = 'queued'").fetchone()
        return None if row[0] is None else float(row[0])

    def record_outbound(self, entry_id: int, results: Mapping[str, tuple[RecipientState, str]], *,
                        attempted: bool, next_attempt: float | None = None,
                        last_error: str | None = None) -> OutboundEntry:
        """Each recipient's new state and the answer it got; finishes the entry when none is pending."""
        stamp = now()
        self.db.executemany(
            "UPDATE outbound_recipients SET state = ?, reply = ?, updated_at = ?"
            " WHERE outbound_id = ? AND address = ? AND state = 'pending'",
            [(state, reply, stamp, entry_id, address) for address, (state, reply) in results.items()])
        states = {r[0] for r in self.db.execute(
            "SELECT state FROM outbound_recipients WHERE outbound_id = ?", (entry_id,))}
        if "pending" in states:
            self.db.execute(
                "UPDATE outbound SET attempts = attempts + ?, next_attempt = coalesce(?, next_attempt),"
                " last_error = coalesce(?, last_error) WHERE id = ?",
                (int(attempted), next_attempt, last_error, entry_id))
        else:
            final = "sent" if states <= {"delivered"} else "failed"
            self.db.execute(
                "UPDATE outbound SET attempts = attempts + ?, state = ?, last_error = coalesce(?, last_error),"
                " sent_folder = CASE WHEN sent_folder = 'waiting' THEN ? ELSE sent_folder END WHERE id = ?",
                (int(attempted), final, last_error, "pending" if "delivered" in states else "", entry_id))
            self._add_event(ORG_OF_OUTBOUND, entry_id, "outbound.state", entry_id, {"state": final})
        return self._any_outbound(entry_id)

    def retry_outbound(self, entry_id: int | None = None) -> int:
        """Try queued messages (one, or all) now; a failed Sent-folder copy is tried again too."""
        at = time.time()
        scope, scope_args = self._scoped("org_id")
        where, args = (f" AND {scope}", scope_args) if entry_id is None else (" AND id = ?", (entry_id,))
        if entry_id is not None:
            entry = self.get_outbound(entry_id)
            if entry.state != "queued" and entry.sent_folder != "failed":
                raise ProstoyMailError(f"message {entry_id} is {entry.state}: there is nothing to retry")
        with self.transaction() as db:
            count = db.execute(f"UPDATE outbound SET next_attempt = ? WHERE state = 'queued'{where}",
                               (at, *args)).rowcount
            count += db.execute(f"UPDATE outbound SET sent_folder = 'pending', sent_folder_attempts = 0"
                                f" WHERE sent_folder = 'failed'{where}", args).rowcount
        return count

    def drop_outbound(self, entry_id: int) -> OutboundEntry:
        """Stop sending a queued message: no further tries, no bounce."""
        entry = self.get_outbound(entry_id)
        if entry.state != "queued":
            raise ProstoyMailError(f"message {entry_id} is {entry.state}, not queued")
        with self.transaction() as db:
            db.execute("UPDATE outbound_recipients SET state = 'dropped', updated_at = ?"
                       " WHERE outbound_id = ? AND state = 'pending'", (now(), entry_id))
            db.execute("UPDATE outbound SET state = 'dropped', sent_folder = CASE WHEN sent_folder = 'waiting'"
                       " THEN '' ELSE sent_folder END WHERE id = ?", (entry_id,))
            self._add_event(ORG_OF_OUTBOUND, entry_id, "outbound.state", entry_id, {"state": "dropped"})
        return self.get_outbound(entry_id)

    def sent_folder_due(self, limit: int = 50) -> list[OutboundEntry]:
        rows = self.db.execute("SELECT * FROM outbound WHERE sent_folder = 'pending' ORDER BY id LIMIT ?",
                               (limit,)).fetchall()
        return [self._entry(r) for r in rows]

    def record_sent_folder(self, entry_id: int, done: bool, error: str | None, max_attempts: int) -> None:
        if done:
            self.db.execute("UPDATE outbound SET sent_folder = 'done' WHERE id = ?", (entry_id,))
            return
        self.db.execute(
            "UPDATE outbound SET sent_folder_attempts = sent_folder_attempts + 1, last_error = ?,"
            " sent_folder = CASE WHEN sent_folder_attempts + 1 >= ? THEN 'failed' ELSE sent_folder END"
            " WHERE id = ?", (f"Sent folder: {error}", max_attempts, entry_id))

    def _entry(self, row: sqlite3.Row) -> OutboundEntry:
        recipients = tuple(
            OutboundRecipient(r["address"], bool(r["local"]), r["state"], r["reply"])
            for r in self.db.execute("SELECT address, local, state, reply FROM outbound_recipients"
                                     " WHERE outbound_id = ? ORDER BY rowid", (row["id"],)))
        return OutboundEntry(
            id=row["id"], message_db_id=row["message_id"], task_id=row["task_id"], sender=row["sender"],
            envelope_from=row["envelope_from"], route=row["route"], scope=row["scope"],
            submitted_by=row["submitted_by"], created_at=row["created_at"], expires_at=row["expires_at"],
            next_attempt=row["next_attempt"], attempts=row["attempts"], last_error=row["last_error"],
            state=row["state"], sent_folder=row["sent_folder"], recipients=recipients,
            sent_folder_attempts=row["sent_folder_attempts"], org_id=row["org_id"],
        )
