"""Organisations and their own mail domains (SQLite), mixed into SqliteStore.

Everything an organisation owns hangs off it: users (`users.org_id`), projects and through
them tasks and comments, domains. One organisation may be declared by the configuration
file (`file_managed`; a store from before organisations is that one); the others live in the
store only. Removing one removes everything it owns.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection
from contextlib import AbstractContextManager
from typing import Any

import orjson

from ..errors import Conflict, Invalid, NotFound
from ..identifiers import slug_problem
from .clock import now
from .ports import Organisation

KEPT_CHANGES = 1000
# An entry's name: a mailbox's login, a gateway's address (indexed: schema migration 15)
ENTRY_NAME = "lower(json_extract(entry, CASE section WHEN 'mailboxes' THEN '$.login' ELSE '$.email' END))"


class OrganisationsMixin:
    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # SqliteStore's

    _ORG_SELECT = """
        SELECT o.id, o.slug, o.name, u.login AS owner, o.file_managed,
               (SELECT group_concat(d.domain, ' ') FROM (SELECT domain FROM domains WHERE org_id = o.id
                                                        ORDER BY domain) d) AS domains
        FROM organisations o LEFT JOIN users u ON u.id = o.owner_id
    """

    def file_organisation_id(self) -> int:
        """The organisation the configuration file declares (a store has exactly one)."""
        row = self.db.execute("SELECT id FROM organisations WHERE file_managed = 1 ORDER BY id LIMIT 1").fetchone()
        return int(row[0]) if row is not None else 1

    def reconcile_file_organisation(self, slug: str, name: str) -> Organisation:
        """The file's [organisation] slug and name, into the store (the file wins for it)."""
        with self.transaction() as db:
            own = self.file_organisation_id()
            other = db.execute("SELECT id FROM organisations WHERE slug = ? AND id != ?", (slug, own)).fetchone()
            if other is not None:
                raise Invalid(f'organisation.slug: "{slug}" is the slug of an organisation in the store; '
                              "choose another for the one this file declares")
            db.execute("UPDATE organisations SET slug = ?, name = ? WHERE id = ?", (slug, name, own))
        return self.organisation_by_id(own)

    def organisation_by_id(self, org_id: int) -> Organisation:
        row = self.db.execute(self._ORG_SELECT + " WHERE o.id = ?", (org_id,)).fetchone()
        if row is None:
            raise NotFound(f"no organisation {org_id}")
        return _organisation(row)

    def organisation(self, slug: str) -> Organisation:
        """By slug; Invalid when there is none (the command line's --org: exit status 2)."""
        row = self.db.execute(self._ORG_SELECT + " WHERE o.slug = ?", (slug,)).fetchone()
        if row is None:
            raise Invalid(f'no organisation "{slug}" (see: prostoy-mail org list)')
        return _organisation(row)

    def organisation_slugs(self) -> dict[int, str]:
        """Every organisation's id -> slug, in one query."""
        return {int(org): str(slug) for org, slug in self.db.execute("SELECT id, slug FROM organisations")}

    def list_organisations(self) -> list[Organisation]:
        return [_organisation(r) for r in self.db.execute(self._ORG_SELECT + " ORDER BY o.slug")]

    def add_organisation(self, slug: str, name: str) -> Organisation:
        problem = slug_problem(slug)
        if problem is not None:
            raise Invalid(problem)
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM organisations WHERE slug = ?", (slug,)).fetchone() is not None:
                raise Invalid(f'organisation "{slug}" already exists')
            cur = db.execute("INSERT INTO organisations (slug, name, file_managed, created_at) VALUES (?, ?, 0, ?)",
                             (slug, name, now()))
            assert cur.lastrowid is not None
            return self.organisation_by_id(cur.lastrowid)

    def remove_organisation(self, org_id: int) -> dict[str, int]:
        """Everything the organisation owns, removed in one transaction; what was removed, by kind.
        Messages that nothing else refers to go too (their files are swept later)."""
        with self.transaction() as db:
            organisation = self.organisation_by_id(org_id)
            if organisation.file_managed:
                raise Conflict(f'organisation "{organisation.slug}" is declared by the configuration file: '
                               "remove its [organisation] section (and its entries) there")
            tasks = "SELECT t.id FROM tasks t JOIN projects p ON p.id = t.project_id WHERE p.org_id = :org"
            users = "SELECT id FROM users WHERE org_id = :org"
            args = {"org": org_id}
            messages = [int(r[0]) for r in db.execute(
                f"SELECT DISTINCT message_id FROM comments WHERE task_id IN ({tasks})", args)]
            removed = {
                "comments": db.execute(f"DELETE FROM comments WHERE task_id IN ({tasks})", args).rowcount,
            }
            # what was fetched through its gateways (each gateway's address is one organisation's)
            gateways = ("SELECT substr(t.source_key, 9) FROM tasks t JOIN projects p ON p.id = t.project_id"
                        " WHERE p.org_id = :org AND t.source_key LIKE 'gateway:%'")
            for table in ("fetched", "gateway_state", "quarantine"):
                db.execute(f"DELETE FROM {table} WHERE gateway IN ({gateways})", args)
            for table in ("conversation_participants", "conversations", "sent_messages"):
                db.execute(f"DELETE FROM {table} WHERE task_id IN ({tasks})", args)
            db.execute(f"UPDATE outbound SET task_id = NULL WHERE task_id IN ({tasks})", args)
            db.execute("UPDATE organisations SET owner_id = NULL WHERE id = :org", args)
            db.execute(f"UPDATE tasks SET assignee_id = NULL WHERE assignee_id IN ({users})", args)
            removed["tasks"] = db.execute(f"DELETE FROM tasks WHERE id IN ({tasks})", args).rowcount
            removed["projects"] = db.execute("DELETE FROM projects WHERE org_id = :org", args).rowcount
            db.execute(f"DELETE FROM imap_flags WHERE user_id IN ({users})", args)
            removed["users"] = db.execute("DELETE FROM users WHERE org_id = :org", args).rowcount
            removed["domains"] = db.execute("DELETE FROM domains WHERE org_id = :org", args).rowcount
            db.execute("DELETE FROM org_limits WHERE org_id = :org", args)
            db.execute("DELETE FROM webhooks WHERE org_id = :org", args)
            db.execute("DELETE FROM events WHERE org_id = :org", args)
            db.execute("DELETE FROM org_entries WHERE org_id = :org", args)
            removed["messages"] = sum(
                db.execute("DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM comments WHERE message_id"
                           " = ?) AND NOT EXISTS (SELECT 1 FROM mailbox_messages WHERE message_id = ?) AND NOT EXISTS"
                           " (SELECT 1 FROM outbound WHERE message_id = ?) AND NOT EXISTS (SELECT 1 FROM fetched"
                           " WHERE message_id = ?)", (m, m, m, m, m)).rowcount for m in messages)
            db.execute("DELETE FROM organisations WHERE id = :org", args)
        return removed

    def counts(self, org_id: int) -> dict[str, int]:
        row = self.db.execute(
            "SELECT (SELECT count(*) FROM users WHERE org_id = :org), (SELECT count(*) FROM projects WHERE"
            " org_id = :org), (SELECT count(*) FROM tasks t JOIN projects p ON p.id = t.project_id"
            " WHERE p.org_id = :org)", {"org": org_id}).fetchone()
        return {"users": int(row[0]), "projects": int(row[1]), "tasks": int(row[2])}

    # --- settings of organisations that live in the store ----------------------------------

    def org_entries(self, org_id: int) -> dict[str, list[dict[str, Any]]]:
        """The organisation's entries by section ("mailboxes", "rules", ...), each in its order."""
        sections: dict[str, list[dict[str, Any]]] = {}
        for section, entry in self.db.execute(
                "SELECT section, entry FROM org_entries WHERE org_id = ? ORDER BY section, position", (org_id,)):
            sections.setdefault(str(section), []).append(orjson.loads(entry))
        return sections

    def replace_org_entries(self, org_id: int, sections: dict[str, list[dict[str, Any]]]) -> None:
        """The organisation's entries, all of them, as given (one transaction). Only the rows
        that change are written: one rule added among 100 is one row, not 101 (each row also
        updates the index of entries' names)."""
        with self.transaction() as db:
            old = {(str(section), int(position)): str(entry) for section, position, entry in db.execute(
                "SELECT section, position, entry FROM org_entries WHERE org_id = ?", (org_id,))}
            new = {(section, position): orjson.dumps(entry, option=orjson.OPT_SORT_KEYS, default=str).decode()
                   for section, entries in sections.items() for position, entry in enumerate(entries)}
            db.executemany("DELETE FROM org_entries WHERE org_id = ? AND section = ? AND position = ?",
                           [(org_id, *place) for place in old.keys() - new.keys()])
            db.executemany("INSERT INTO org_entries (org_id, section, position, entry) VALUES (?, ?, ?, ?)"
                           " ON CONFLICT (org_id, section, position) DO UPDATE SET entry = excluded.entry",
                           [(org_id, *place, entry) for place, entry in new.items() if old.get(place) != entry])

    def org_entry_names(self, section: str, among: Collection[str] | None = None) -> list[tuple[str, int]]:
        """(name, organisation) of every store organisation's entry of `section` ("mailboxes":
        its login; "gateways": its address), in one query; only those `among` when given (by
        the index on the name)."""
        query = (f"SELECT org_id, {ENTRY_NAME} FROM org_entries WHERE section = ?"
                 + ("" if among is None else f" AND {ENTRY_NAME} IN ({', '.join('?' * len(among))})")
                 + " ORDER BY org_id, position")
        return [(str(name), int(org)) for org, name in self.db.execute(query, (section, *(among or ())))]

    def source_task_owners(self, kind: str, among: Collection[str] | None = None) -> dict[str, int]:
        """Mailbox login (`kind` "mailbox") or gateway email ("gateway") -> the organisation whose
        task holds its mail (also after it was removed: the name stays that organisation's);
        only those `among` when given (by the index on source_key)."""
        if among is not None:
            keys = [f"{kind}:{name}" for name in among]
            return {str(key).split(":", 1)[1]: int(org) for key, org in self.db.execute(
                "SELECT t.source_key, p.org_id FROM tasks t JOIN projects p ON p.id = t.project_id"
                f" WHERE t.source_key IN ({', '.join('?' * len(keys))})", keys)}
        return {str(name): int(org) for name, org in self.db.execute(
            "SELECT substr(t.source_key, length(?) + 2), p.org_id FROM tasks t JOIN projects p ON p.id = t.project_id"
            " WHERE t.source_key LIKE ? || ':%'", (kind, kind))}

    # --- limits -------------------------------------------------------------------------------

    def limit_overrides(self, org_id: int) -> dict[str, int]:
        """The organisation's own limits (those it has), by name."""
        row = self.db.execute("SELECT mailboxes, gateways, users, rules, outbound_per_hour FROM org_limits"
                              " WHERE org_id = ?", (org_id,)).fetchone()
        if row is None:
            return {}
        names = ("mailboxes", "gateways", "users", "rules", "outbound_per_hour")
        return {name: int(value) for name, value in zip(names, row, strict=True) if value is not None}

    def set_limit_overrides(self, org_id: int, values: dict[str, int | None]) -> None:
        """Set (a number) or drop (None: back to [limits]) some of the organisation's own limits."""
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO org_limits (org_id) VALUES (?)", (org_id,))
            for name, value in values.items():
                assert name in ("mailboxes", "gateways", "users", "rules", "outbound_per_hour")
                db.execute(f"UPDATE org_limits SET {name} = ? WHERE org_id = ?", (value, org_id))

    def org_of_task(self, task_id: int) -> int:
        row = self.db.execute("SELECT p.org_id FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.id = ?",
                              (task_id,)).fetchone()
        if row is None:
            raise NotFound(f"no task {task_id}")
        return int(row[0])

    def org_of_comment(self, comment_id: int) -> int:
        """The organisation whose task holds the comment (NotFound: no such comment)."""
        row = self.db.execute("SELECT p.org_id FROM comments c JOIN tasks t ON t.id = c.task_id"
                              " JOIN projects p ON p.id = t.project_id WHERE c.id = ?", (comment_id,)).fetchone()
        if row is None:
            raise NotFound(f"no comment {comment_id}")
        return int(row[0])

    def outbound_since(self, org_id: int, since: str) -> int:
        """Messages the organisation's tasks submitted for sending since `since` (ISO time)."""
        row = self.db.execute("SELECT count(*) FROM outbound WHERE org_id = ? AND created_at >= ?",
                              (org_id, since)).fetchone()
        return int(row[0])

    # --- the change log running daemons watch ------------------------------------------------

    def record_change(self, what: str, org_id: int | None = None) -> int:
        """Append a change for the running daemons to apply; its number (they report the last
        one they applied). Only the newest KEPT_CHANGES are kept."""
        with self.transaction() as db:
            cur = db.execute("INSERT INTO changes (org_id, what, at) VALUES (?, ?, ?)", (org_id, what, time.time()))
            assert cur.lastrowid is not None
            db.execute("DELETE FROM changes WHERE id <= ?", (cur.lastrowid - KEPT_CHANGES,))
            return cur.lastrowid

    def latest_change(self) -> int:
        """The number of the newest change (0: none yet). One indexed lookup: cheap to poll."""
        row = self.db.execute("SELECT max(id) FROM changes").fetchone()
        return int(row[0] or 0)

    def changed_organisations(self, after: int, upto: int) -> set[int] | None:
        """The organisations (in the store) whose settings changes `after` < id <= `upto` are;
        None when one of them is the file's (or the daemon's own) or the log no longer has them
        all: then everything is read again."""
        rows = self.db.execute("SELECT id, org_id, what FROM changes WHERE id > ? AND id <= ? ORDER BY id",
                               (after, upto)).fetchall()
        if not rows or int(rows[0][0]) != after + 1 or len(rows) != upto - after:
            return None
        if any(what != "organisation" or org_id is None for _, org_id, what in rows):
            return None
        return {int(org_id) for _, org_id, _ in rows}

    def change_time(self, change_id: int) -> float | None:
        row = self.db.execute("SELECT at FROM changes WHERE id = ?", (change_id,)).fetchone()
        return None if row is None else float(row[0])

    # --- own domains ---------------------------------------------------------------------------

    def add_domain(self, domain: str, org_id: int) -> None:
        """`domain` (normalised by the caller) for the organisation; Invalid when another owns it."""
        with self.transaction() as db:
            owner = self.domain_owner(domain)
            if owner is not None:
                slug = self.organisation_by_id(owner).slug
                raise (Conflict(f'{domain} is already a domain of "{slug}"') if owner == org_id
                       else Invalid(f"{domain} is a domain of another organisation"))
            db.execute("INSERT INTO domains (domain, org_id, created_at) VALUES (?, ?, ?)", (domain, org_id, now()))

    def domain_owner(self, domain: str) -> int | None:
        row = self.db.execute("SELECT org_id FROM domains WHERE domain = ?", (domain,)).fetchone()
        return None if row is None else int(row[0])

    def domain_owners(self) -> dict[str, int]:
        """Every organisation's own domain -> that organisation."""
        return {str(domain): int(org) for domain, org in self.db.execute("SELECT domain, org_id FROM domains")}

    def list_domains(self) -> list[tuple[str, str]]:
        """(domain, organisation slug), by domain."""
        return [(str(r[0]), str(r[1])) for r in self.db.execute(
            "SELECT d.domain, o.slug FROM domains d JOIN organisations o ON o.id = d.org_id ORDER BY d.domain")]

    def remove_domain(self, domain: str) -> None:
        with self.transaction() as db:
            if db.execute("DELETE FROM domains WHERE domain = ?", (domain,)).rowcount == 0:
                raise NotFound(f"no domain {domain}")


def _organisation(row: sqlite3.Row) -> Organisation:
    return Organisation(int(row["id"]), str(row["slug"]), str(row["name"]), row["owner"], bool(row["file_managed"]),
                        tuple(str(row["domains"]).split()) if row["domains"] else ())



