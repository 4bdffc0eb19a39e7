"""The SQLite task store: WAL, synchronous=FULL, one connection used by one thread at a time.

In the daemon the connection lives on the store's writer thread (`writer.py`), so the
event loop never waits on the disk; the command line uses it directly.
"""

from __future__ import annotations

import errno
import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from ..errors import Conflict, Invalid, NotFound, ProstoyMailError
from ..mail.parse import TEXT_INLINE, parse_message
from .clock import now
from .conversations import ConversationsMixin
from .events import ORG_OF_TASK, EventsMixin
from .fetch_state import FetchStateMixin
from .imap_views import ImapViewsMixin
from .organisations import OrganisationsMixin
from .outbound_queue import OutboundQueueMixin
from .ports import (
    PERSONAL_PROJECT,
    Attachment,
    Comment,
    CommentTarget,
    MessageRecord,
    Project,
    StoredMessage,
    StoreFull,
    StoreUnavailable,
    Task,
    TaskKind,
    User,
)
from .raw_files import RawFiles
from .schema import MIGRATIONS, REBUILDS, SCHEMA_VERSION
from .webhooks import WebhooksMixin


class StoreError(ProstoyMailError):
    """The store cannot be opened or used."""


_UNAVAILABLE = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
                sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM}


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF  # the primary code of an extended one


def is_disk_full(exc: BaseException) -> bool:
    """The store's disk (or its size limit) is full: SMTP says 452 4.3.1."""
    if isinstance(exc, OSError):  # writing a message file (raw_files.py)
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, sqlite3.Error) and _code(exc) == sqlite3.SQLITE_FULL


_E = TypeVar("_E", bound=BaseException)


def store_error(exc: _E) -> _E | StoreUnavailable:
    """The store's own exception for what SQLite or the disk raised (StoreFull, StoreUnavailable),
    with the original as its cause; anything else as it is."""
    if isinstance(exc, StoreUnavailable):
        return exc
    if is_disk_full(exc):
        error: StoreUnavailable = StoreFull(f"the store's disk is full ({exc})")
    elif is_store_unavailable(exc):
        error = StoreUnavailable(f"the store is failing ({exc})")
    else:
        return exc
    error.__cause__ = exc
    return error


def is_store_unavailable(exc: BaseException) -> bool:
    """The store as a whole is failing (disk full, I/O, locked, read-only), not this one message:
    wait and retry everything; never quarantine a message for it. A message file that cannot
    be written or read is the store's disk failing too."""
    return isinstance(exc, OSError) or (isinstance(exc, sqlite3.Error) and _code(exc) in _UNAVAILABLE)


# (EventsMixin first: the others declare its _add_event for their type checking only)
class SqliteStore(EventsMixin, FetchStateMixin, OutboundQueueMixin, ImapViewsMixin, ConversationsMixin,
                  OrganisationsMixin, WebhooksMixin):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.files = RawFiles.beside(self.path)
        self._savepoints = 0
        # The organisation this connection works for (users, projects, tasks and comments are
        # scoped to it): the one the configuration file declares unless a command says --org.
        # None: every organisation (the daemon, which works by ids and signed tokens).
        self.org_id: int | None = 1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a commit is on disk before we answer 250
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=10000")
            self._migrate()
            self.org_id = self.file_organisation_id()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the store's folder: {exc}") from None

    # --- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: the store has schema version {version}, newer than this "
                f"prostoy-mail understands ({SCHEMA_VERSION}); upgrade prostoy-mail"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            rebuild = number in REBUILDS
            if rebuild:
                self.db.execute("PRAGMA foreign_keys=OFF")  # (a no-op inside a transaction: before it)
            try:
                with self.transaction():
                    for statement in _statements(MIGRATIONS[number - 1]):
                        self.db.execute(statement)
                    if rebuild and self.db.execute("PRAGMA foreign_key_check").fetchone() is not None:
                        raise StoreError(f"{self.path}: migration {number} would break references; not applied")
                    self.db.execute(f"PRAGMA user_version = {number}")
            finally:
                if rebuild:
                    self.db.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        self.db.close()

    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def own_error(self, exc: Exception) -> Exception:
        return store_error(exc)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction; inside another one (e.g. a group commit), a savepoint of it."""
        if self.db.in_transaction:
            # Named by depth, not uniquely: the same few statements stay in sqlite3's cache of
            # prepared statements instead of being compiled for every message.
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            self.db.execute(f"SAVEPOINT {name}")
            try:
                yield self.db
            except BaseException:
                self.db.execute(f"ROLLBACK TO {name}")
                self.db.execute(f"RELEASE {name}")
                raise
            finally:
                self._savepoints -= 1
            self.db.execute(f"RELEASE {name}")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- users --------------------------------------------------------------------------------

    # --- the organisation a connection works for ------------------------------------------

    def _org(self) -> int:
        """The organisation new rows belong to (every organisation's connection: the file's)."""
        return self.org_id if self.org_id is not None else self.file_organisation_id()

    def _scoped(self, column: str) -> tuple[str, tuple[int, ...]]:
        """A WHERE condition limiting `column` (an org_id) to this connection's organisation."""
        return ("1", ()) if self.org_id is None else (f"{column} = ?", (self.org_id,))

    @contextmanager
    def acting_for(self, org_id: int | None) -> Iterator[None]:
        """Work for `org_id` inside the block (on the writer's thread: one job at a time)."""
        before, self.org_id = self.org_id, org_id
        try:
            yield
        finally:
            self.org_id = before

    # --- users --------------------------------------------------------------------------------

    def add_user(self, login: str, name: str, password_hash: str | None, is_owner: bool) -> User:
        with self.transaction() as db:
            org_id = self._org()
            taken = db.execute("SELECT org_id FROM users WHERE login = ?", (login,)).fetchone()
            if taken is not None and int(taken[0]) == org_id:
                raise Conflict(f'user "{login}" already exists')
            if taken is not None:
                raise Invalid(f'the login "{login}" is taken (logins are unique across the installation)')
            if is_owner and (owner := self._owner_login()) is not None:
                raise Conflict(f'the organisation already has an owner: "{owner}"')
            cur = db.execute(
                "INSERT INTO users (org_id, login, name, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                (org_id, login, name, password_hash, now()),
            )
            user_id = cur.lastrowid
            if is_owner:
                db.execute("UPDATE organisations SET owner_id = ? WHERE id = ?", (user_id, org_id))
            project_id = self._project_id(PERSONAL_PROJECT, create=True)
            db.execute(
                "INSERT INTO tasks (project_id, title, assignee_id, kind, source_key, created_at)"
                " VALUES (?, ?, ?, 'personal', ?, ?)",
                (project_id, name or login, user_id, f"personal:{login}", now()),
            )
        return self.get_user(login)

    def _owner_login(self) -> str | None:
        row = self.db.execute(
            "SELECT u.login FROM organisations o JOIN users u ON u.id = o.owner_id WHERE o.id = ?", (self._org(),)
        ).fetchone()
        return None if row is None else str(row[0])

    _USER_SELECT = """
        SELECT u.id, u.login, u.name, u.password_hash IS NOT NULL AS has_password,
               (o.owner_id = u.id) AS is_owner, t.id AS personal_task_id, u.org_id
        FROM users u JOIN organisations o ON o.id = u.org_id
        LEFT JOIN tasks t ON t.source_key = 'personal:' || u.login
    """

    def find_user(self, login: str) -> User | None:
        where, args = self._scoped("u.org_id")
        row = self.db.execute(self._USER_SELECT + f" WHERE u.login = ? AND {where}", (login, *args)).fetchone()
        return None if row is None else _user(row)

    def get_user(self, login: str) -> User:
        user = self.find_user(login)
        if user is None:
            raise NotFound(f'no user "{login}"')
        return user

    # --- the management API's sessions (tokens kept as their SHA-256) ---------------------------

    def add_session(self, user_id: int, token_sha256: str, lifetime: float) -> float:
        """A new session for the user; when it expires (unix time). Expired ones go meanwhile."""
        at = time.time()
        with self.transaction() as db:
            db.execute("DELETE FROM api_sessions WHERE expires_at <= ?", (at,))
            db.execute("INSERT INTO api_sessions (token_sha256, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                       (token_sha256, user_id, at, at + lifetime))
        return at + lifetime

    def session_user(self, token_sha256: str) -> User | None:
        """The user of a session that has not expired nor been revoked (any organisation's)."""
        row = self.db.execute(self._USER_SELECT + " JOIN api_sessions s ON s.user_id = u.id"
                              " WHERE s.token_sha256 = ? AND s.expires_at > ?", (token_sha256, time.time())).fetchone()
        return None if row is None else _user(row)

    def remove_session(self, token_sha256: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM api_sessions WHERE token_sha256 = ?", (token_sha256,)).rowcount > 0

    def list_users(self) -> list[User]:
        where, args = self._scoped("u.org_id")
        return [_user(r) for r in self.db.execute(self._USER_SELECT + f" WHERE {where} ORDER BY u.login", args)]

    def set_password(self, login: str, password_hash: str | None) -> None:
        with self.transaction() as db:
            user = self.get_user(login)
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user.id))
            db.execute("DELETE FROM api_sessions WHERE user_id = ?", (user.id,))  # (a new password ends them)

    def user_by_login(self, login: str) -> User | None:
        """The user with this login in any organisation (logins are unique across them)."""
        row = self.db.execute(self._USER_SELECT + " WHERE u.login = ?", (login,)).fetchone()
        return None if row is None else _user(row)

    def user_org(self, login: str) -> int | None:
        """The organisation of the user with this login (logins are unique across organisations)."""
        row = self.db.execute("SELECT org_id FROM users WHERE login = ?", (login,)).fetchone()
        return None if row is None else int(row[0])

    def password_hash(self, login: str) -> str | None:
        row = self.db.execute("SELECT password_hash FROM users WHERE login = ?", (login,)).fetchone()
        return None if row is None else row[0]

    def remove_user(self, login: str) -> None:
        with self.transaction() as db:
            user = self.get_user(login)
            if user.is_owner:
                raise Conflict(f'"{login}" is the organisation\'s owner and cannot be removed')
            # The personal task stays (its mail is history), unassigned by ON DELETE SET NULL.
            db.execute("DELETE FROM users WHERE id = ?", (user.id,))

    # --- projects and tasks ----------------------------------------------------------------

    def _project_id(self, name: str, *, create: bool = False) -> int:
        org_id = self._org()
        row = self.db.execute("SELECT id FROM projects WHERE org_id = ? AND name = ?", (org_id, name)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            raise NotFound(f'no project "{name}"')
        cur = self.db.execute("INSERT INTO projects (org_id, name) VALUES (?, ?)", (org_id, name))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def add_project(self, name: str) -> Project:
        if not name.strip() or "/" in name:
            raise ProstoyMailError(f'"{name}" is not a project name (it must not be empty or hold "/")')
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM projects WHERE org_id = ? AND name = ?", (self._org(), name)).fetchone():
                raise Conflict(f'project "{name}" already exists')
            return Project(self._project_id(name, create=True), name)

    def find_project(self, name: str) -> Project | None:
        row = self.db.execute("SELECT id, name FROM projects WHERE org_id = ? AND name = ?",
                              (self._org(), name)).fetchone()
        return None if row is None else Project(int(row[0]), str(row[1]))

    def list_projects(self) -> list[Project]:
        where, args = self._scoped("org_id")
        return [Project(r["id"], r["name"])
                for r in self.db.execute(f"SELECT id, name FROM projects WHERE {where} ORDER BY name", args)]

    def _user_id(self, login: str | None) -> int | None:
        return None if login is None else self.get_user(login).id

    def add_task(self, project: str, title: str, assignee: str | None = None,
                 kind: TaskKind = "plain", source_key: str | None = None) -> Task:
        if not title.strip():
            raise ProstoyMailError("a task needs a title")
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO tasks (project_id, title, assignee_id, kind, source_key, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self._project_id(project), title, self._user_id(assignee), kind, source_key, now()),
            )
            assert cur.lastrowid is not None
            return self.get_task(cur.lastrowid)

    def ensure_source_task(self, source_key: str, kind: TaskKind, project: str, title: str,
                           assignee: str | None) -> Task:
        """The task that holds a mailbox's or gateway's mail: created once, then kept.

        Its assignee follows the mailbox's owner. A removed and re-added mailbox finds its
        old task again, with all its mail.
        """
        with self.transaction() as db:
            existing = self.task_for_source(source_key)
            if existing is not None and self.org_id is not None and self.org_of_task(existing.id) != self.org_id:
                raise Conflict(f"{source_key}: its task belongs to another organisation")
            assignee_id = self._user_id(assignee)
            if existing is None:
                db.execute(
                    "INSERT INTO tasks (project_id, title, assignee_id, kind, source_key, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (self._project_id(project, create=True), title, assignee_id, kind, source_key, now()),
                )
            elif assignee is not None and existing.assignee != assignee:
                db.execute("UPDATE tasks SET assignee_id = ? WHERE id = ?", (assignee_id, existing.id))
        task = self.task_for_source(source_key)
        assert task is not None
        return task

    _TASK_SELECT = """
        SELECT t.id, p.name AS project, t.title, u.login AS assignee, t.kind, t.source_key, v.rule AS opened_by_rule
        FROM tasks t JOIN projects p ON p.id = t.project_id LEFT JOIN users u ON u.id = t.assignee_id
        LEFT JOIN conversations v ON v.task_id = t.id
    """

    def task_for_source(self, source_key: str) -> Task | None:
        row = self.db.execute(self._TASK_SELECT + " WHERE t.source_key = ?", (source_key,)).fetchone()
        return None if row is None else _task(row)

    def get_task(self, task_id: int) -> Task:
        where, args = self._scoped("p.org_id")
        row = self.db.execute(self._TASK_SELECT + f" WHERE t.id = ? AND {where}", (task_id, *args)).fetchone()
        if row is None:
            raise NotFound(f"no task {task_id}")
        return _task(row)

    def resolve_task(self, ref: str) -> Task:
        """A task by id ("42") or by "Project/Title" (the title may itself hold "/")."""
        ref = ref.strip()
        if ref.isdigit():
            return self.get_task(int(ref))
        project, sep, title = ref.partition("/")
        if not sep:
            raise NotFound(f'"{ref}" is not a task: give its id or "Project/Title"')
        where, args = self._scoped("p.org_id")
        rows = self.db.execute(self._TASK_SELECT + f" WHERE p.name = ? AND t.title = ? AND {where} ORDER BY t.id",
                               (project, title, *args)).fetchall()
        if not rows:
            raise NotFound(f'no task "{ref}"')
        if len(rows) > 1:
            ids = ", ".join(str(r["id"]) for r in rows)
            raise Conflict(f'"{ref}" names several tasks ({ids}); give the id instead')
        return _task(rows[0])

    def list_tasks(self, org_id: int | None = None) -> list[Task]:
        """This connection's organisation's tasks (or those of `org_id`: a mail client's user's)."""
        where, args = ("p.org_id = ?", (org_id,)) if org_id is not None else self._scoped("p.org_id")
        return [_task(r) for r in self.db.execute(self._TASK_SELECT + f" WHERE {where} ORDER BY t.id", args)]

    def assign_task(self, task_id: int, login: str | None) -> None:
        with self.transaction() as db:
            self.get_task(task_id)
            db.execute("UPDATE tasks SET assignee_id = ? WHERE id = ?", (self._user_id(login), task_id))

    # --- messages and comments ------------------------------------------------------------

    def store_message(self, record: MessageRecord, targets: Sequence[CommentTarget]) -> StoredMessage:
        """Store the raw message once and its comments, in one transaction."""
        with self.transaction():
            message_db_id = self.insert_message(record)
            comment_ids = self.insert_comments(message_db_id, targets)
        return StoredMessage(message_db_id, comment_ids)

    def insert_message(self, record: MessageRecord) -> int:
        """Within a transaction the caller holds."""
        cur = self.db.execute(
            "INSERT INTO messages (direction, source, received_at, sha256, size, raw, message_id,"
            " subject, from_addr, from_name, to_addrs, cc_addrs, date, text, attachments, bounce,"
            " auto_reply, mail_from, rcpt_tos, peer, raw_file, text_from_raw)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.direction, record.source, now(), record.sha256 or hashlib.sha256(record.raw).hexdigest(),
                len(record.raw) if record.size is None else record.size, b"" if record.raw_file else record.raw,
                record.message_id, record.subject,
                record.from_addr,
                record.from_name, json.dumps(list(record.to)), json.dumps(list(record.cc)),
                record.date, record.text if len(record.text) <= TEXT_INLINE else "",
                json.dumps([[a.filename, a.content_type, a.size] for a in record.attachments]),
                int(record.bounce), int(record.auto_reply), record.mail_from,
                json.dumps(list(record.rcpt_tos)), record.peer, record.raw_file, int(len(record.text) > TEXT_INLINE),
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def last_smtp_message_with(self, sha256: str) -> tuple[int, str] | None:
        """(id, received_at) of the newest SMTP message with these bytes. (One index seek: it is
        asked for every message, and nearly always finds nothing.)"""
        row = self.db.execute("SELECT id, received_at FROM messages WHERE source = 'smtp' AND sha256 = ?"
                              " ORDER BY id DESC LIMIT 1", (sha256,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def in_mailbox(self, message_db_id: int, mailboxes: Sequence[str]) -> bool:
        marks = ", ".join("?" * len(mailboxes))
        return self.db.execute(f"SELECT 1 FROM mailbox_messages WHERE message_id = ? AND mailbox IN ({marks})",
                               (message_db_id, *mailboxes)).fetchone() is not None

    def received_again(self, message_db_id: int) -> None:
        """Within a transaction the caller holds."""
        self.db.execute("UPDATE messages SET times_received = times_received + 1 WHERE id = ?", (message_db_id,))

    def insert_comments(self, message_db_id: int, targets: Sequence[CommentTarget]) -> tuple[int, ...]:
        """Within a transaction the caller holds. At most one comment per task and message."""
        ids: list[int] = []
        for target in targets:
            cur = self.db.execute(
                "INSERT INTO comments (task_id, message_id, routed_by, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (task_id, message_id) DO NOTHING",
                (target.task_id, message_db_id, json.dumps(list(target.routed_by)), now()),
            )
            if cur.rowcount:
                assert cur.lastrowid is not None
                ids.append(cur.lastrowid)
                self._add_event(ORG_OF_TASK, target.task_id, "comment.created", cur.lastrowid)
            if target.assign_to is not None:
                # The user of the task's own organisation (the writer acts for the file's by
                # default, and a rule of another organisation's assigns to its users); one gone
                # since the rule was checked leaves the task as it is: the mail is stored anyway.
                self.db.execute(
                    "UPDATE tasks SET assignee_id = coalesce((SELECT u.id FROM users u WHERE u.login = ? AND u.org_id ="
                    " (SELECT p.org_id FROM projects p WHERE p.id = tasks.project_id)), assignee_id) WHERE id = ?",
                    (target.assign_to, target.task_id))
        return tuple(ids)

    def message_header_id(self, message_db_id: int) -> str | None:
        """The Message-ID (without brackets) of a stored message."""
        row = self.db.execute("SELECT message_id FROM messages WHERE id = ?", (message_db_id,)).fetchone()
        if row is None:
            raise NotFound(f"no message {message_db_id}")
        return None if row[0] is None else str(row[0])

    def comment_of(self, task_id: int, message_db_id: int) -> int | None:
        """The id of the comment that holds this message in this task (deleted or not)."""
        row = self.db.execute("SELECT id FROM comments WHERE task_id = ? AND message_id = ?",
                              (task_id, message_db_id)).fetchone()
        return None if row is None else int(row[0])

    def raw_message(self, message_db_id: int) -> bytes:
        row = self.db.execute("SELECT raw, raw_file FROM messages WHERE id = ?", (message_db_id,)).fetchone()
        if row is None:
            raise NotFound(f"no message {message_db_id}")
        if not row[1]:
            return bytes(row[0])
        try:
            return self.files.read(row[1])
        except OSError as exc:
            raise StoreError(f"message {message_db_id}: its file {self.files.folder / row[1]} cannot be read:"
                             f" {exc.strerror or exc}") from None

    def sweep_raw_files(self, older_than: float = 24 * 3600) -> int:
        """Remove message files no row names (left by a crash before their commit)."""
        referenced = (name for (name,) in self.db.execute("SELECT raw_file FROM messages WHERE raw_file IS NOT NULL"))
        return self.files.sweep(referenced, older_than)

    _COMMENT_SELECT = """
        SELECT c.id, c.task_id, c.message_id AS message_db_id, m.direction, m.message_id, m.subject,
               m.from_addr, m.from_name, m.to_addrs, m.cc_addrs, m.date, m.text, m.text_from_raw, m.attachments,
               m.source, c.routed_by, m.bounce, m.auto_reply, c.created_at, c.deleted_at, m.times_received
        FROM comments c JOIN messages m ON m.id = c.message_id
    """

    def list_comments(self, task_id: int, include_deleted: bool = False) -> list[Comment]:
        self.get_task(task_id)
        where = "" if include_deleted else " AND c.deleted_at IS NULL"
        rows = self.db.execute(self._COMMENT_SELECT + " WHERE c.task_id = ?" + where + " ORDER BY c.id",
                               (task_id,))
        return [self._comment(r) for r in rows]

    def comments_page(self, task_id: int, before: int | None, since: str | None, limit: int) -> list[Comment]:
        """Up to `limit` of the task's comments, newest first: older than comment `before` (the
        page before), created at `since` or later (ISO 8601); deleted ones left out."""
        where, args = self._page(task_id, before, since, limit)
        return [self._comment(r) for r in self.db.execute(self._COMMENT_SELECT + where, args)]

    def comment_keys_page(self, task_id: int, before: int | None, since: str | None,
                          limit: int) -> list[tuple[int, int]]:
        """(id, times_received) of the comments of comments_page, in its order: which of them a
        cache of renderings holds (api/rendered_comments.py) is known without reading them."""
        where, args = self._page(task_id, before, since, limit)
        cursor = self.db.cursor()
        cursor.row_factory = None  # (plain tuples: the page's hot path)
        return cursor.execute("SELECT c.id, m.times_received FROM comments c JOIN messages m ON m.id = c.message_id"
                              + where, args).fetchall()

    def _page(self, task_id: int, before: int | None, since: str | None,
              limit: int) -> tuple[str, tuple[int | str, ...]]:
        self.get_task(task_id)  # (NotFound: another organisation's, or none)
        where, args = " WHERE c.task_id = ? AND c.deleted_at IS NULL", list[int | str]([task_id])
        if before is not None:
            where += " AND c.id < ?"
            args.append(before)
        if since is not None:
            where += " AND c.created_at >= ?"
            args.append(since)
        return where + " ORDER BY c.id DESC LIMIT ?", (*args, limit)

    def comments_by_id(self, ids: Sequence[int]) -> list[Comment]:
        """The organisation's comments of `ids` (deleted ones too), in no particular order."""
        where, args = self._scoped("(SELECT p.org_id FROM tasks t JOIN projects p ON p.id = t.project_id"
                                   " WHERE t.id = c.task_id)")
        rows = self.db.execute(self._COMMENT_SELECT + f" WHERE c.id IN ({','.join('?' * len(ids))}) AND {where}",
                               (*ids, *args))
        return [self._comment(r) for r in rows]

    def get_comment(self, comment_id: int) -> Comment:
        where, args = self._scoped("(SELECT p.org_id FROM tasks t JOIN projects p ON p.id = t.project_id"
                                   " WHERE t.id = c.task_id)")
        row = self.db.execute(self._COMMENT_SELECT + f" WHERE c.id = ? AND {where}", (comment_id, *args)).fetchone()
        if row is None:
            raise NotFound(f"no comment {comment_id}")
        return self._comment(row)

    def _comment(self, row: sqlite3.Row) -> Comment:
        text = row["text"]
        if row["text_from_raw"]:
            text = parse_message(self.raw_message(row["message_db_id"])).text
        return _comment(row, text)

    def delete_comment(self, comment_id: int) -> Comment:
        """Delete a comment, leaving a tombstone so the same message never returns to that task."""
        with self.transaction() as db:
            comment = self.get_comment(comment_id)
            if comment.deleted_at is not None:
                raise NotFound(f"comment {comment_id} is already deleted")
            db.execute("UPDATE comments SET deleted_at = ? WHERE id = ?", (now(), comment_id))
        return self.get_comment(comment_id)

    # --- the reply index: Message-IDs of mail sent from tasks -----------------------------

    def register_sent(self, message_id: str, task_id: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO sent_messages (message_id, task_id) VALUES (?, ?)",
                       (message_id, task_id))

    def task_of_sent(self, message_ids: Sequence[str]) -> int | None:
        """The task that sent the first of `message_ids` we have on record."""
        for message_id in message_ids:
            row = self.db.execute("SELECT task_id FROM sent_messages WHERE message_id = ?", (message_id,)).fetchone()
            if row is not None:
                return int(row[0])
        return None

    def tasks_of_message_ids(self, message_ids: Sequence[str]) -> list[int]:
        """Tasks in which a message with one of these Message-IDs is a (live) comment, first match first."""
        found: list[int] = []
        for message_id in message_ids:
            for row in self.db.execute(
                    "SELECT c.task_id FROM messages m JOIN comments c ON c.message_id = m.id"
                    " WHERE m.message_id = ? AND c.deleted_at IS NULL ORDER BY c.id", (message_id,)):
                if row[0] not in found:
                    found.append(int(row[0]))
            if found:
                break
        return found

    def task_exists(self, task_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone() is not None

    # --- settings -----------------------------------------------------------------------------

    def setting(self, name: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_setting(self, name: str, value: bytes) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO settings (name, value) VALUES (?, ?)"
                       " ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))

    def secret(self, name: str) -> bytes:
        """A random 32-byte key made on first use and kept in the store (e.g. reply tokens)."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return bytes(row[0])
            value = secrets.token_bytes(32)
            db.execute("INSERT INTO settings (name, value) VALUES (?, ?)", (name, value))
            return value


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3 runs one at a time inside our transaction)."""
    code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())  # no "--" in our SQL strings
    return [statement.strip() for statement in code.split(";") if statement.strip()]


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"], login=row["login"], name=row["name"], is_owner=bool(row["is_owner"]),
        has_password=bool(row["has_password"]), personal_task_id=row["personal_task_id"], org_id=row["org_id"],
    )


def _task(row: sqlite3.Row) -> Task:
    return Task(
        id=row["id"], project=row["project"], title=row["title"], assignee=row["assignee"],
        kind=row["kind"], source_key=row["source_key"], opened_by_rule=row["opened_by_rule"],
    )


def _comment(row: sqlite3.Row, text: str) -> Comment:
    # By position, in _COMMENT_SELECT's order: sqlite3.Row finds a name by comparing it with each
    # column's, and by name this took 12 us a comment, three quarters of a page of 50's reading.
    (comment_id, task_id, message_db_id, direction, message_id, subject, from_addr, from_name, to_addrs, cc_addrs,
     date, _text, _text_from_raw, attachments, source, routed_by, bounce, auto_reply, created_at, deleted_at,
     times_received) = row
    return Comment(
        id=comment_id, task_id=task_id, message_db_id=message_db_id, direction=direction, message_id=message_id,
        subject=subject, from_addr=from_addr, from_name=from_name, to=_strings(to_addrs), cc=_strings(cc_addrs),
        date=date, text=text,
        attachments=() if attachments == "[]" else tuple(Attachment(f, t, s) for f, t, s in json.loads(attachments)),
        source=source, routed_by=_strings(routed_by), bounce=bool(bounce), auto_reply=bool(auto_reply),
        created_at=created_at, deleted_at=deleted_at, times_received=times_received,
    )


def _strings(value: str) -> tuple[str, ...]:
    """A JSON list of strings (addresses, rule names), most often empty."""
    return () if value == "[]" else tuple(json.loads(value))
