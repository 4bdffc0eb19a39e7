"""What the IMAP server reads and writes (SQLite), mixed into SqliteStore.

A folder is a domain mailbox (`mailbox:<login>`: its UIDs are message ids), a task
(`task:<id>`: its UIDs are comment ids) or a user's Sent folder (`sent:<login>`: the messages
they submitted; UIDs are message ids). Both only grow, so UIDs are stable and ascending
under one UIDVALIDITY per store. Flags are each user's own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager

from .clock import now
from .ports import FolderItem


def _folder_parts(folder: str) -> tuple[str, str]:
    kind, _, key = folder.partition(":")
    return kind, key


class ImapViewsMixin:
    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # SqliteStore's

    def add_to_mailbox(self, login: str, message_db_id: int) -> None:
        """Within the transaction that stores the message."""
        self.db.execute("INSERT OR IGNORE INTO mailbox_messages (mailbox, message_id) VALUES (?, ?)",
                        (login, message_db_id))

    _ITEM = "m.id, m.size, m.received_at, m.subject, m.from_addr, m.to_addrs, m.cc_addrs, m.date"

    _SENT = ("FROM outbound o JOIN messages m ON m.id = o.message_id WHERE o.submitted_by = ? AND NOT EXISTS"
             " (SELECT 1 FROM imap_flags f JOIN users u ON u.id = f.user_id WHERE u.login = o.submitted_by"
             " AND f.folder = 'sent:' || o.submitted_by AND f.uid = m.id AND f.flags LIKE '%$Expunged%')")

    def folder_items(self, folder: str, above_uid: int = 0) -> list[FolderItem]:
        kind, key = _folder_parts(folder)
        if kind == "sent":  # what the user submitted; a message they expunged here stays out (their flag)
            rows = self.db.execute(f"SELECT m.id AS uid, {self._ITEM} {self._SENT} AND m.id > ? ORDER BY m.id",
                                   (key, above_uid))
        elif kind == "mailbox":
            rows = self.db.execute(
                f"SELECT mm.message_id AS uid, {self._ITEM} FROM mailbox_messages mm JOIN messages m"
                " ON m.id = mm.message_id WHERE mm.mailbox = ? AND mm.deleted_at IS NULL AND mm.message_id > ?"
                " ORDER BY mm.message_id", (key, above_uid))
        else:
            rows = self.db.execute(
                f"SELECT c.id AS uid, {self._ITEM} FROM comments c JOIN messages m ON m.id = c.message_id"
                " WHERE c.task_id = ? AND c.deleted_at IS NULL AND c.id > ? ORDER BY c.id", (int(key), above_uid))
        return [FolderItem(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows]

    def folder_uidnext(self, folder: str) -> int:
        """One more than the highest UID ever in the folder (expunged ones count)."""
        kind, key = _folder_parts(folder)
        if kind == "sent":
            row = self.db.execute("SELECT max(message_id) FROM outbound WHERE submitted_by = ?", (key,)).fetchone()
        elif kind == "mailbox":
            row = self.db.execute("SELECT max(message_id) FROM mailbox_messages WHERE mailbox = ?", (key,)).fetchone()
        else:
            row = self.db.execute("SELECT max(id) FROM comments WHERE task_id = ?", (int(key),)).fetchone()
        return int(row[0] or 0) + 1

    def folder_uids(self, folder: str) -> list[int]:
        kind, key = _folder_parts(folder)
        if kind == "sent":
            return [item.uid for item in self.folder_items(folder)]
        if kind == "mailbox":
            rows = self.db.execute("SELECT message_id FROM mailbox_messages WHERE mailbox = ? AND deleted_at IS NULL"
                                   " ORDER BY message_id", (key,))
        else:
            rows = self.db.execute("SELECT id FROM comments WHERE task_id = ? AND deleted_at IS NULL ORDER BY id",
                                   (int(key),))
        return [int(r[0]) for r in rows]

    def user_flags(self, user_id: int, folder: str) -> dict[int, set[str]]:
        rows = self.db.execute("SELECT uid, flags FROM imap_flags WHERE user_id = ? AND folder = ?", (user_id, folder))
        return {int(r[0]): set(r[1].split()) for r in rows}

    def set_user_flags(self, user_id: int, folder: str, flags: Mapping[int, set[str]]) -> None:
        self.db.executemany(
            "INSERT INTO imap_flags (user_id, folder, uid, flags) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id, folder, uid) DO UPDATE SET flags = excluded.flags",
            [(user_id, folder, uid, " ".join(sorted(f))) for uid, f in flags.items()])

    def submitted_message(self, login: str, message_id: str) -> int | None:
        """The message `login` submitted with this Message-ID (its UID in their Sent folder)."""
        row = self.db.execute("SELECT m.id FROM outbound o JOIN messages m ON m.id = o.message_id"
                              " WHERE o.submitted_by = ? AND m.message_id = ? ORDER BY m.id DESC LIMIT 1",
                              (login, message_id)).fetchone()
        return None if row is None else int(row[0])

    def latest_ids(self) -> tuple[int, int]:
        """The highest mailbox message id and comment id: when they change, folders got mail."""
        mailbox = self.db.execute("SELECT max(message_id) FROM mailbox_messages").fetchone()[0]
        comment = self.db.execute("SELECT max(id) FROM comments").fetchone()[0]
        return int(mailbox or 0), int(comment or 0)

    def remove_from_mailbox(self, login: str, message_db_ids: Sequence[int]) -> None:
        self.db.executemany("UPDATE mailbox_messages SET deleted_at = ? WHERE mailbox = ? AND message_id = ?"
                            " AND deleted_at IS NULL", [(now(), login, m) for m in message_db_ids])
