"""What the store keeps for fetching from gateways (SQLite), mixed into SqliteStore.

- `fetched`: every message fetched, by gateway + folder (IMAP: INBOX and UIDVALIDITY) + UID
  (or POP3 UIDL), written in the same transaction as the message: a message is imported at
  most once. Its `server_action` (mark read, delete) is done on the server only after that
  commit, and stays pending until done, also across a crash.
- `gateway_state`: each gateway's position (the last UID taken) and health.
- `quarantine`: messages that could not be stored after several attempts, kept raw.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ..errors import NotFound
from .clock import now
from .events import ORG_OF_GATEWAY
from .ports import FetchedKey, GatewayState, QuarantinedMessage, ServerAction


class FetchStateMixin:
    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # SqliteStore's

    def _add_event(self, org_of: str, key: object, kind: str, object_id: int | None,
                   data: dict[str, Any] | None = None) -> None:
        raise NotImplementedError  # EventsMixin's

    def _scoped(self, column: str) -> tuple[str, tuple[int, ...]]:
        raise NotImplementedError  # SqliteStore's

    def fetched_among(self, keys: Sequence[FetchedKey]) -> set[FetchedKey]:
        """Which of these were fetched (and stored, or deliberately skipped) before."""
        found: set[FetchedKey] = set()
        by_folder: dict[tuple[str, str], list[str]] = {}
        for key in keys:
            by_folder.setdefault((key.gateway, key.folder), []).append(key.uid)
        for (gateway, folder), uids in by_folder.items():
            for start in range(0, len(uids), 500):  # (SQLite's limit on parameters)
                chunk = uids[start:start + 500]
                rows = self.db.execute(f"SELECT uid FROM fetched WHERE gateway = ? AND folder = ? AND uid IN"
                                       f" ({', '.join('?' * len(chunk))})", (gateway, folder, *chunk))
                found.update(FetchedKey(gateway, folder, uid) for (uid,) in rows)
        return found

    def record_fetched(self, key: FetchedKey, message_db_id: int | None, action: ServerAction) -> None:
        """Within the transaction that stores the message."""
        self.db.execute(
            "INSERT INTO fetched (gateway, folder, uid, message_id, server_action, action_done, fetched_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key.gateway, key.folder, key.uid, message_db_id, action, int(not action), now()),
        )

    def fetched_uids(self, gateway: str, folder: str) -> set[str]:
        rows = self.db.execute("SELECT uid FROM fetched WHERE gateway = ? AND folder = ?", (gateway, folder))
        return {uid for (uid,) in rows}

    def mark_old(self, gateway: str, folder: str, uids: Sequence[str]) -> None:
        """A new gateway's mail that was there before it: known, never imported (POP3 has no UIDNEXT)."""
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO fetched (gateway, folder, uid, message_id, fetched_at)"
                           " VALUES (?, ?, ?, NULL, ?)", [(gateway, folder, uid, now()) for uid in uids])
            self._ensure_state(gateway)
            db.execute("UPDATE gateway_state SET folder = ? WHERE gateway = ?", (folder, gateway))

    def message_with_hash(self, source: str, sha256: str) -> int | None:
        row = self.db.execute("SELECT id FROM messages WHERE source = ? AND sha256 = ? LIMIT 1",
                              (source, sha256)).fetchone()
        return None if row is None else int(row[0])

    def pending_actions(self, gateway: str) -> list[tuple[FetchedKey, ServerAction]]:
        rows = self.db.execute("SELECT folder, uid, server_action FROM fetched"
                               " WHERE gateway = ? AND action_done = 0 ORDER BY folder, uid", (gateway,))
        return [(FetchedKey(gateway, folder, uid), action) for folder, uid, action in rows]

    def actions_done(self, keys: Sequence[FetchedKey]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE fetched SET action_done = 1 WHERE gateway = ? AND folder = ? AND uid = ?",
                           [(k.gateway, k.folder, k.uid) for k in keys])

    def schedule_server_delete(self, message_db_id: int) -> list[FetchedKey]:
        """Mark the fetched copies of a message for deletion on their servers (comment deleted)."""
        with self.transaction() as db:
            rows = db.execute("SELECT gateway, folder, uid FROM fetched WHERE message_id = ?",
                              (message_db_id,)).fetchall()
            db.execute("UPDATE fetched SET server_action = 'delete', action_done = 0 WHERE message_id = ?",
                       (message_db_id,))
        return [FetchedKey(*row) for row in rows]

    def fetched_keys(self, message_db_id: int) -> list[FetchedKey]:
        rows = self.db.execute("SELECT gateway, folder, uid FROM fetched WHERE message_id = ?", (message_db_id,))
        return [FetchedKey(*row) for row in rows]

    # --- position and health ------------------------------------------------------------

    def gateway_state(self, gateway: str) -> GatewayState | None:
        row = self.db.execute("SELECT gateway, folder, last_uid, last_success, last_error, last_error_at,"
                              " next_attempt, failures, state, failed_step FROM gateway_state WHERE gateway = ?",
                              (gateway,)).fetchone()
        return None if row is None else GatewayState(*row)

    def _ensure_state(self, gateway: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO gateway_state (gateway) VALUES (?)", (gateway,))

    def set_position(self, gateway: str, folder: str, last_uid: int) -> None:
        with self.transaction() as db:
            self._ensure_state(gateway)
            db.execute("UPDATE gateway_state SET folder = ?, last_uid = ? WHERE gateway = ?",
                       (folder, last_uid, gateway))

    def advance_position(self, gateway: str, folder: str, uid: int) -> None:
        """Within a transaction: the last UID taken moves forward, never back."""
        self._ensure_state(gateway)
        self.db.execute("UPDATE gateway_state SET last_uid = max(last_uid, ?) WHERE gateway = ? AND folder = ?",
                        (uid, gateway, folder))

    def record_success(self, gateway: str, *, steady: bool = False) -> None:
        """The mailbox was read. `steady`: a whole cycle (an IDLE, a poll) went well, so the
        failure count starts again; a server that fails a moment after each login keeps backing off."""
        with self.transaction() as db:
            self._ensure_state(gateway)
            self._new_state(gateway, "idle", None, None)
            db.execute("UPDATE gateway_state SET last_success = ?, next_attempt = NULL WHERE gateway = ?",
                       (now(), gateway))
            if steady:
                db.execute("UPDATE gateway_state SET failures = 0 WHERE gateway = ?", (gateway,))

    def record_connecting(self, gateway: str) -> None:
        """A session is being opened (the first, or again after a failure): `connecting` until
        the mailbox has been read (idle) or the attempt fails (error, auth_failed)."""
        with self.transaction():
            self._ensure_state(gateway)
            self._new_state(gateway, "connecting", None, None)

    def record_failure(self, gateway: str, error: str, next_attempt: str, step: str = "connection") -> int:
        """Note a failure (at `step`: dns, connect, tls, login, ...); returns how many in a row."""
        with self.transaction() as db:
            self._ensure_state(gateway)
            self._new_state(gateway, "auth_failed" if step in ("login", "password") else "error", step, error)
            db.execute("UPDATE gateway_state SET last_error = ?, last_error_at = ?, next_attempt = ?,"
                       " failures = failures + 1 WHERE gateway = ?", (error, now(), next_attempt, gateway))
            return int(db.execute("SELECT failures FROM gateway_state WHERE gateway = ?", (gateway,)).fetchone()[0])

    def _new_state(self, gateway: str, state: str, step: str | None, error: str | None) -> None:
        """The gateway's state, and an event when it is not the one it had (or its failure moved
        to another step)."""
        row = self.db.execute("SELECT state, failed_step FROM gateway_state WHERE gateway = ?", (gateway,)).fetchone()
        if row is not None and (row[0], row[1]) == (state, step):
            return
        self.db.execute("UPDATE gateway_state SET state = ?, failed_step = ? WHERE gateway = ?", (state, step, gateway))
        self._add_event(ORG_OF_GATEWAY, gateway, "gateway.state", None,
                        {"gateway": gateway, "state": state, "step": step, "error": error})

    # --- quarantine -----------------------------------------------------------------------

    def quarantine(self, key: FetchedKey, raw: bytes, error: str, attempts: int) -> int:
        """Keep a message that could not be stored; it counts as taken so the mailbox goes on."""
        with self.transaction() as db:
            cur = db.execute(  # (whose: the organisation whose task holds the gateway's mail)
                "INSERT INTO quarantine (gateway, folder, uid, raw, error, attempts, created_at, org_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, coalesce((SELECT p.org_id FROM tasks t JOIN projects p"
                " ON p.id = t.project_id WHERE t.source_key = 'gateway:' || ?), 0))"
                " ON CONFLICT (gateway, folder, uid) DO UPDATE"
                " SET error = excluded.error, attempts = excluded.attempts",
                (key.gateway, key.folder, key.uid, raw, error, attempts, now(), key.gateway),
            )
            self.record_fetched(key, None, "")
            assert cur.lastrowid is not None
            self._add_event(ORG_OF_GATEWAY, key.gateway, "message.quarantined", None,
                            {"id": cur.lastrowid, "gateway": key.gateway, "folder": key.folder, "uid": key.uid,
                             "error": error, "attempts": attempts, "size": len(raw)})
            return cur.lastrowid

    def list_quarantine(self) -> list[QuarantinedMessage]:
        where, args = self._scoped("org_id")
        return list(_quarantined(self.db.execute(
            "SELECT id, gateway, folder, uid, length(raw), error, attempts, created_at FROM quarantine"
            f" WHERE {where} ORDER BY id", args)))

    def quarantined_raw(self, quarantine_id: int) -> tuple[QuarantinedMessage, bytes]:
        where, args = self._scoped("org_id")
        row = self.db.execute("SELECT id, gateway, folder, uid, length(raw), error, attempts, created_at, raw"
                              f" FROM quarantine WHERE id = ? AND {where}", (quarantine_id, *args)).fetchone()
        if row is None:
            raise NotFound(f"nothing in quarantine with id {quarantine_id}")
        return next(_quarantined([row[:8]])), bytes(row[8])

    def release_quarantined(self, quarantine_id: int, message_db_id: int) -> None:
        """Within a transaction: the message is stored now; its fetched row points to it."""
        row = self.db.execute("SELECT gateway, folder, uid FROM quarantine WHERE id = ?", (quarantine_id,)).fetchone()
        if row is None:
            raise NotFound(f"nothing in quarantine with id {quarantine_id}")
        self.db.execute("UPDATE fetched SET message_id = ? WHERE gateway = ? AND folder = ? AND uid = ?",
                        (message_db_id, *row))
        self.db.execute("DELETE FROM quarantine WHERE id = ?", (quarantine_id,))

    def drop_quarantined(self, quarantine_id: int) -> None:
        with self.transaction() as db:
            where, args = self._scoped("org_id")
            if db.execute(f"DELETE FROM quarantine WHERE id = ? AND {where}", (quarantine_id, *args)).rowcount == 0:
                raise NotFound(f"nothing in quarantine with id {quarantine_id}")


def _quarantined(rows: Iterator[tuple[object, ...]] | list[tuple[object, ...]]) -> Iterator[QuarantinedMessage]:
    for row in rows:
        yield QuarantinedMessage(*row)  # type: ignore[arg-type]
