"""Tasks that `new_task` rules open, and who takes part in them (SQLite), mixed into SqliteStore.

A conversation is a task of kind "conversation": the rule and the message that opened it
(one task per message and rule: the same message delivered again joins it), its first
sender, and the addresses that take part (that sender, and whom mail from the task went to).
A later message continues the conversation only when it refers to a message stored in the
task *and* comes from a participant (intake's find_conversation).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from .clock import now

MAX_TITLE_TRIES = 1000  # "Title (2)" ... : a project with a thousand tasks of one title gets "Title #<id>"


class ConversationsMixin:
    db: sqlite3.Connection

    def open_conversation(self, rule: str, opened_by: str, sender: str, project_id: int, title: str,
                          assignee: str | None) -> int:
        """A new task in the project, its title unique there ("Title (2)" when taken), recorded
        as opened by `rule` for the message `opened_by`. Within the caller's transaction (the
        one storing the message: no task is ever left without its first comment)."""
        unique = self._free_title(project_id, title)
        assignee_id = None
        if assignee is not None:
            row = self.db.execute("SELECT id FROM users WHERE login = ?", (assignee,)).fetchone()
            assignee_id = int(row[0]) if row is not None else None  # (removed since the rule was loaded)
        created = now()
        cur = self.db.execute("INSERT INTO tasks (project_id, title, assignee_id, kind, created_at)"
                              " VALUES (?, ?, ?, 'conversation', ?)", (project_id, unique, assignee_id, created))
        assert cur.lastrowid is not None
        task_id = cur.lastrowid
        self.db.execute("INSERT INTO conversations (task_id, rule, opened_by, sender, opened_at)"
                        " VALUES (?, ?, ?, ?, ?)", (task_id, rule, opened_by, sender.lower(), created))
        if sender:
            self.add_participants(task_id, [sender])
        return task_id

    def _free_title(self, project_id: int, title: str) -> str:
        taken = {str(r[0]) for r in self.db.execute(
            "SELECT title FROM tasks WHERE project_id = ? AND (title = ? OR title LIKE ? ESCAPE '\\')",
            (project_id, title, _like_prefix(title) + " (%)"))}
        if title not in taken:
            return title
        for number in range(2, MAX_TITLE_TRIES):
            candidate = f"{title} ({number})"
            if candidate not in taken:
                return candidate
        return f"{title} #{len(taken) + 1}"

    def conversation_opened_by(self, rule: str, opened_by: str) -> int | None:
        """The task `rule` opened for the message `opened_by`, if it did."""
        row = self.db.execute("SELECT task_id FROM conversations WHERE rule = ? AND opened_by = ?",
                              (rule, opened_by)).fetchone()
        return None if row is None else int(row[0])

    def conversations_opened_for(self, sender: str, since: str) -> int:
        """How many tasks were opened for mail from `sender` since `since` (an ISO time)."""
        row = self.db.execute("SELECT count(*) FROM conversations WHERE sender = ? AND opened_at >= ?",
                              (sender.lower(), since)).fetchone()
        return int(row[0])

    def conversation_in_thread(self, message_ids: Sequence[str], sender: str) -> int | None:
        """The conversation in which the first of `message_ids` that is stored there is a live
        comment, when `sender` takes part in it; None otherwise."""
        address = sender.lower()
        for message_id in message_ids:
            row = self.db.execute(
                "SELECT c.task_id FROM messages m JOIN comments c ON c.message_id = m.id"
                " JOIN conversation_participants p ON p.task_id = c.task_id AND p.address = ?"
                " WHERE m.message_id = ? AND c.deleted_at IS NULL ORDER BY c.id LIMIT 1",
                (address, message_id)).fetchone()
            if row is not None:
                return int(row[0])
        return None

    def add_participants(self, task_id: int, addresses: Iterable[str]) -> None:
        """These addresses take part in the task's conversation (nothing, for other tasks)."""
        for address in {a.lower() for a in addresses if a}:
            self.db.execute("INSERT OR IGNORE INTO conversation_participants (task_id, address)"
                            " SELECT ?, ? WHERE EXISTS (SELECT 1 FROM conversations WHERE task_id = ?)",
                            (task_id, address, task_id))


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
