"""The SQLite task store: migrations, users and their personal tasks, messages and comments."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from prostoy_mail.errors import Conflict, Invalid, NotFound
from prostoy_mail.store.ports import CommentTarget, FetchedKey, MessageRecord
from prostoy_mail.store.schema import SCHEMA_VERSION
from prostoy_mail.store.sqlite import SqliteStore, StoreError


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "store.db")
    yield s
    s.close()


def test_a_new_store_is_migrated_to_the_current_schema(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "sub" / "store.db")
    assert store.schema_version() == SCHEMA_VERSION
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    again = SqliteStore(tmp_path / "sub" / "store.db")  # reopening migrates nothing twice
    assert again.schema_version() == SCHEMA_VERSION
    again.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this prostoy-mail understands"):
        SqliteStore(path)


def test_a_store_that_cannot_be_opened_is_reported(tmp_path: Path) -> None:
    (tmp_path / "store.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        SqliteStore(tmp_path / "store.db")


def test_every_user_has_a_personal_task(store: SqliteStore) -> None:
    user = store.add_user("ivanov", "Иван Иванов", "hash", is_owner=True)
    task = store.get_task(user.personal_task_id or 0)
    assert (task.kind, task.assignee, task.title, task.project) == ("personal", "ivanov", "Иван Иванов", "Personal")
    assert user.is_owner and user.has_password
    with pytest.raises(Conflict, match="already has an owner"):
        store.add_user("petrov", "Пётр", None, is_owner=True)
    with pytest.raises(Conflict, match="already exists"):
        store.add_user("ivanov", "again", None, is_owner=False)


def test_removing_a_user_keeps_their_tasks_unassigned(store: SqliteStore) -> None:
    store.add_user("boss", "Boss", None, is_owner=True)
    user = store.add_user("petrov", "Пётр", None, is_owner=False)
    store.remove_user("petrov")
    assert store.get_task(user.personal_task_id or 0).assignee is None
    with pytest.raises(Conflict, match="owner"):
        store.remove_user("boss")
    with pytest.raises(NotFound):
        store.remove_user("petrov")


def test_tasks_are_found_by_id_or_project_and_title(store: SqliteStore) -> None:
    store.add_project("Sales")
    task = store.add_task("Sales", "Invoices / 2026")
    assert store.resolve_task(str(task.id)) == task
    assert store.resolve_task("Sales/Invoices / 2026") == task
    with pytest.raises(NotFound, match='no task "Sales/Nope"'):
        store.resolve_task("Sales/Nope")
    store.add_task("Sales", "Invoices / 2026")
    with pytest.raises(Conflict, match="names several tasks"):
        store.resolve_task("Sales/Invoices / 2026")
    with pytest.raises(NotFound, match='no project "Nope"'):
        store.add_task("Nope", "x")


def test_a_source_task_is_made_once_and_follows_its_owner(store: SqliteStore) -> None:
    store.add_user("ivanov", "Иван", None, is_owner=False)
    first = store.ensure_source_task("mailbox:sales", "mailbox", "Mail", "sales@example.test", None)
    again = store.ensure_source_task("mailbox:sales", "mailbox", "Mail", "sales@example.test", "ivanov")
    assert first.id == again.id and again.assignee == "ivanov" and again.kind == "mailbox"


def record(raw: bytes = b"Subject: hi\r\n\r\nhello\r\n") -> MessageRecord:
    return MessageRecord(raw=raw, direction="in", source="smtp", subject="hi", text="hello")


def test_a_message_is_stored_once_and_is_a_comment_at_most_once_per_task(store: SqliteStore) -> None:
    store.add_project("P")
    a, b = store.add_task("P", "a"), store.add_task("P", "b")
    raw = b"Subject: hi\r\n\r\nbody \xff\x00 bytes\r\n"
    stored = store.store_message(record(raw), [CommentTarget(a.id, ("r1",)), CommentTarget(b.id, ("r2",)),
                                               CommentTarget(a.id, ("r3",))])
    assert len(stored.comment_ids) == 2
    assert store.raw_message(stored.id) == raw  # byte-exact
    assert store.db.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    [comment] = store.list_comments(a.id)
    assert comment.routed_by == ("r1",) and comment.text == "hello"


def test_a_deleted_comment_leaves_a_tombstone(store: SqliteStore) -> None:
    store.add_project("P")
    task = store.add_task("P", "t")
    stored = store.store_message(record(), [CommentTarget(task.id, ("fallback",))])
    deleted = store.delete_comment(stored.comment_ids[0])
    assert deleted.deleted_at is not None
    assert store.list_comments(task.id) == []
    assert [c.id for c in store.list_comments(task.id, include_deleted=True)] == [deleted.id]
    # the same message routed to the task again does not come back
    assert store.insert_comments(stored.id, [CommentTarget(task.id, ("fallback",))]) == ()
    with pytest.raises(NotFound, match="already deleted"):
        store.delete_comment(deleted.id)


def test_a_failed_transaction_leaves_nothing_half_stored(store: SqliteStore) -> None:
    store.add_project("P")
    task = store.add_task("P", "t")
    with pytest.raises(sqlite3.IntegrityError):
        store.store_message(record(), [CommentTarget(task.id, ("r",)), CommentTarget(9999, ("r",))])
    assert store.db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert store.db.execute("SELECT count(*) FROM comments").fetchone()[0] == 0


def test_secrets_are_made_once(store: SqliteStore) -> None:
    key = store.secret("reply")
    assert len(key) == 32 and store.secret("reply") == key and store.secret("other") != key


def test_an_older_store_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    """A store made by the first schema version is brought up to date on open."""
    from prostoy_mail.store.schema import MIGRATIONS
    from prostoy_mail.store.sqlite import _statements

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for statement in _statements(MIGRATIONS[0]):
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO projects (name) VALUES ('Kept')")
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.schema_version() == SCHEMA_VERSION > 1
    assert [p.name for p in store.list_projects()] == ["Kept"]
    task = store.add_task("Kept", "t")
    store.register_sent("m1@x", task.id)  # the table migration 2 added
    assert store.task_of_sent(["other@x", "m1@x"]) == task.id
    store.close()


def test_message_files_that_no_row_names_are_swept_once_old(store: SqliteStore) -> None:
    """A crash between writing a big message's file and committing its row leaves a file that
    nothing names; the sweep at start removes it once old, and never a file a row names."""
    import os
    import time

    raw = b"Subject: big\r\n\r\n" + b"x" * 100 + b"\r\n"
    named = store.files.write(raw).name
    with store.transaction():
        message_db_id = store.insert_message(MessageRecord(raw=raw, direction="in", source="smtp", raw_file=named))
    orphan_old, orphan_young = store.files.write(b"old").name, store.files.write(b"young").name
    hour_ago = time.time() - 3600
    for name in (named, orphan_old):
        os.utime(store.files.folder / name, (hour_ago, hour_ago))
    assert store.sweep_raw_files(older_than=600) == 1
    assert sorted(p.name for p in store.files.folder.iterdir()) == sorted([named, orphan_young])
    assert store.raw_message(message_db_id) == raw
    assert store.db.execute("SELECT length(raw) FROM messages WHERE id = ?", (message_db_id,)).fetchone()[0] == 0


def test_only_names_the_store_made_are_read(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="not a message file name"):
        store.files.read("../store.db")


def test_a_long_comment_text_is_parsed_from_the_raw_message_not_stored_twice(store: SqliteStore) -> None:
    from prostoy_mail.mail.parse import TEXT_INLINE, parse_message

    store.add_project("P")
    task = store.add_task("P", "T")
    texts = {}
    for name, lines in (("short", 3), ("long", TEXT_INLINE // 10)):
        raw = f"Subject: {name}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".encode() + \
            "".join(f"строка {i}\r\n" for i in range(lines)).encode()
        parsed = parse_message(raw)
        with store.transaction():
            message_db_id = store.insert_message(MessageRecord(raw=raw, direction="in", source="smtp",
                                                               subject=name, text=parsed.text))
            store.insert_comments(message_db_id, [CommentTarget(task.id, ("fallback",))])
        texts[name] = parsed.text
    stored = dict(store.db.execute("SELECT subject, length(text) FROM messages"))
    assert stored == {"short": len(texts["short"]), "long": 0}
    assert len(texts["long"]) > TEXT_INLINE
    assert {c.subject: c.text for c in store.list_comments(task.id)} == texts


def test_a_missing_message_file_is_a_clear_store_error(store: SqliteStore) -> None:
    raw = b"Subject: big\r\n\r\nbody\r\n"
    name = store.files.write(raw).name
    with store.transaction():
        message_db_id = store.insert_message(MessageRecord(raw=raw, direction="in", source="smtp", raw_file=name))
    (store.files.folder / name).unlink()
    with pytest.raises(StoreError, match=f"message {message_db_id}: its file .*{name} cannot be read: No such file"):
        store.raw_message(message_db_id)


def test_sqlite_and_disk_errors_become_the_stores_own() -> None:
    import errno
    import sqlite3

    from prostoy_mail.store.ports import StoreFull, StoreUnavailable
    from prostoy_mail.store.sqlite import store_error

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    assert isinstance(store_error(full), StoreFull) and store_error(full).__cause__ is full
    assert isinstance(store_error(OSError(errno.ENOSPC, "No space left")), StoreFull)
    assert type(store_error(OSError(errno.EIO, "I/O error"))) is StoreUnavailable
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    assert type(store_error(busy)) is StoreUnavailable
    other = ValueError("a bug")
    assert store_error(other) is other  # not the store's failing: as it is


def test_a_store_of_version_8_keeps_its_tasks_comments_and_references_through_the_tasks_rebuild(
        tmp_path: Path) -> None:
    """Migration 9 rebuilds `tasks` (a new kind): with foreign keys off, as SQLite's procedure
    says; every row and every reference to a task survives, and the new kind is allowed."""
    from prostoy_mail.store.schema import MIGRATIONS
    from prostoy_mail.store.sqlite import _statements

    path = tmp_path / "v8.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys=ON")
    for script in MIGRATIONS[:8]:
        for statement in _statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 8")
    db.execute("INSERT INTO projects (name) VALUES ('Old')")
    db.execute("INSERT INTO tasks (project_id, title, kind, created_at) VALUES (1, 'Kept', 'plain', 'x')")
    db.execute("INSERT INTO messages (direction, source, received_at, sha256, size, raw) VALUES "
               "('in', 'smtp', 'x', 'h', 1, x'00')")
    db.execute("INSERT INTO comments (task_id, message_id, created_at) VALUES (1, 1, 'x')")
    db.execute("INSERT INTO sent_messages (message_id, task_id) VALUES ('m@x', 1)")
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    assert [(t.ref, t.kind) for t in store.list_tasks()] == [("Old/Kept", "plain")]
    assert [c.task_id for c in store.list_comments(1)] == [1] and store.task_of_sent(["m@x"]) == 1
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # on again
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    with store.transaction():
        opened = store.open_conversation("support", "first@client", "Client@Far.Example", 1, "Kept", None)
    assert store.get_task(opened).kind == "conversation" and store.get_task(opened).title == "Kept (2)"
    with pytest.raises(sqlite3.IntegrityError), store.transaction():  # references are still enforced
        store.db.execute("INSERT INTO comments (task_id, message_id, created_at) VALUES (999, 1, 'x')")
    store.close()


def test_conversations_in_the_store(store: SqliteStore) -> None:
    project = store.add_project("Support")
    store.add_user("petrov", "Petrov", None, False)
    with store.transaction():
        task_id = store.open_conversation("support", "first@client", "Client@Far.Example", project.id,
                                          "Заказ", "petrov")
        message = store.insert_message(MessageRecord(raw=b"x", direction="in", source="smtp",
                                                     message_id="first@client", from_addr="client@far.example"))
        store.insert_comments(message, [CommentTarget(task_id, ("support",))])
    task = store.get_task(task_id)
    assert (task.kind, task.source, task.assignee, task.ref) == ("conversation", "rule:support", "petrov",
                                                                 "Support/Заказ")
    assert store.conversation_opened_by("support", "first@client") == task_id
    assert store.conversation_opened_by("other-rule", "first@client") is None
    assert store.conversations_opened_for("client@far.example", "2000-01-01") == 1
    assert store.conversations_opened_for("client@far.example", "2999-01-01") == 0
    # the first sender takes part; a stranger quoting the Message-ID does not
    assert store.conversation_in_thread(["nope@x", "first@client"], "CLIENT@far.example") == task_id
    assert store.conversation_in_thread(["first@client"], "stranger@elsewhere.example") is None
    with store.transaction():
        store.add_participants(task_id, ["Colleague@Far.Example"])
    assert store.conversation_in_thread(["first@client"], "colleague@far.example") == task_id
    # participants are for conversations only
    plain = store.add_task("Support", "Plain")
    with store.transaction():
        store.add_participants(plain.id, ["x@y.z"])
    assert store.db.execute("SELECT count(*) FROM conversation_participants WHERE task_id = ?",
                            (plain.id,)).fetchone()[0] == 0
    # a deleted comment no longer threads
    store.delete_comment(store.list_comments(task_id)[0].id)
    assert store.conversation_in_thread(["first@client"], "client@far.example") is None


# --- organisations -------------------------------------------------------------------------------


def test_a_store_becomes_the_file_declared_organisation(store: SqliteStore) -> None:
    [main] = store.list_organisations()
    assert (main.slug, main.file_managed, store.org_id) == ("main", True, main.id)
    renamed = store.reconcile_file_organisation("acme-hq", "Acme HQ")
    assert (renamed.id, renamed.slug, renamed.name) == (main.id, "acme-hq", "Acme HQ")
    store.add_organisation("beta", "Beta")
    with pytest.raises(Invalid, match='"beta" is the slug of an organisation in the store'):
        store.reconcile_file_organisation("beta", "Taken")
    assert store.organisation_by_id(main.id).slug == "acme-hq"  # nothing half-changed


def test_each_organisation_sees_only_its_own_directory(store: SqliteStore) -> None:
    main = store.org_id
    beta = store.add_organisation("beta", "Beta").id
    for org in (main, beta):  # the same names in both
        with store.acting_for(org):
            store.add_project("Sales")
            store.add_task("Sales", "Invoices")
    store.add_user("ivanov", "Ivanov", None, True)
    with store.acting_for(beta):
        store.add_user("petrov", "Petrov", None, True)
        with pytest.raises(Invalid, match='the login "ivanov" is taken'):
            store.add_user("ivanov", "Another Ivanov", None, False)
        beta_task = store.resolve_task("Sales/Invoices")
        assert [u.login for u in store.list_users()] == ["petrov"] and store.find_user("ivanov") is None
        assert {t.ref for t in store.list_tasks()} == {"Sales/Invoices", "Personal/Petrov"}
    main_task = store.resolve_task("Sales/Invoices")
    assert main_task.id != beta_task.id
    with pytest.raises(NotFound):
        store.get_task(beta_task.id)  # another organisation's task, by id: not there
    assert [p.name for p in store.list_projects()] == ["Personal", "Sales"]
    assert store.find_user("petrov") is None and [u.login for u in store.list_users()] == ["ivanov"]
    assert store.get_user("ivanov").is_owner  # each organisation its own owner
    with store.acting_for(beta):
        beta_comment = store.store_message(MessageRecord(raw=b"x", direction="in", source="smtp"),
                                           [CommentTarget(beta_task.id, ("r",))]).comment_ids[0]
    with pytest.raises(NotFound):
        store.delete_comment(beta_comment)  # another organisation's comment, by id: not there
    with store.acting_for(None):  # the daemon: every organisation, by ids
        assert store.get_task(beta_task.id).ref == "Sales/Invoices"
        assert {u.login for u in store.list_users()} == {"ivanov", "petrov"}
    assert {t.ref for t in store.list_tasks(org_id=beta)} == {"Sales/Invoices", "Personal/Petrov"}  # (IMAP's way)


def test_removing_an_organisation_removes_what_it_owns_and_nothing_else(store: SqliteStore) -> None:
    beta = store.add_organisation("beta", "Beta").id
    store.add_project("Sales")
    kept = store.add_task("Sales", "Kept")
    with store.acting_for(beta):
        store.add_user("petrov", "Petrov", None, True)
        store.add_project("Sales")
        gone = store.add_task("Sales", "Gone")
    store.add_domain("beta.example", beta)
    shared = store.store_message(MessageRecord(raw=b"shared", direction="in", source="smtp"),
                                 [CommentTarget(kept.id, ("r",)), CommentTarget(gone.id, ("r",))])
    only_beta = store.store_message(MessageRecord(raw=b"only beta", direction="in", source="smtp"),
                                    [CommentTarget(gone.id, ("r",))])
    with pytest.raises(Conflict, match="declared by the configuration file"):
        store.remove_organisation(store.file_organisation_id())
    removed = store.remove_organisation(beta)
    assert removed == {"comments": 2, "tasks": 2, "projects": 2, "users": 1, "domains": 1, "messages": 1}
    assert [c.message_db_id for c in store.list_comments(kept.id)] == [shared.id]
    assert store.db.execute("SELECT count(*) FROM messages WHERE id = ?", (only_beta.id,)).fetchone()[0] == 0
    assert [o.slug for o in store.list_organisations()] == ["main"] and store.list_domains() == []
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_domain_belongs_to_one_organisation(store: SqliteStore) -> None:
    beta = store.add_organisation("beta", "Beta").id
    store.add_domain("beta.example", beta)
    with pytest.raises(Invalid, match="a domain of another organisation"):
        store.add_domain("beta.example", store.file_organisation_id())
    with pytest.raises(Conflict):
        store.add_domain("beta.example", beta)
    assert store.list_domains() == [("beta.example", "beta")]
    assert store.organisation("beta").domains == ("beta.example",)
    with pytest.raises(Invalid, match='no organisation "gamma"'):
        store.organisation("gamma")
    with pytest.raises(Invalid, match="is not a slug"):
        store.add_organisation("Bad Slug", "x")


def test_a_store_made_by_c772bd3_becomes_the_file_organisation_with_everything_it_had(tmp_path: Path) -> None:
    """tests/data/store-c772bd3.sql: a store as the code of c772bd3 made it (schema version 7)."""
    path = tmp_path / "store.db"
    db = sqlite3.connect(path)
    db.executescript((Path(__file__).parents[1] / "data" / "store-c772bd3.sql").read_text("utf-8"))
    assert db.execute("PRAGMA user_version").fetchone()[0] == 7
    db.close()
    store = SqliteStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    [main] = store.list_organisations()
    assert (main.slug, main.file_managed, main.owner) == ("main", True, "ivanov")
    assert {u.login: u.is_owner for u in store.list_users()} == {"ivanov": True, "petrov": False}
    invoices = store.resolve_task("Sales/Invoices")
    assert (invoices.assignee, invoices.kind) == ("petrov", "plain")
    assert [(c.subject, c.routed_by) for c in store.list_comments(invoices.id)] == [("invoice 1", ("invoices",))]
    assert store.task_of_sent(["sent1@prostoy"]) == invoices.id
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    store.close()


def _queue(store: SqliteStore, task_id: int, org_id: int, sender: str) -> int:
    with store.transaction():
        stored = store.store_message(MessageRecord(raw=b"Subject: x\r\n\r\nx\r\n", direction="out", source="smtp"),
                                     [CommentTarget(task_id, ("task",))])
        return store.enqueue_outbound(message_db_id=stored.id, task_id=task_id, sender=sender, envelope_from=sender,
                                      route="relay", scope="mailbox:x", submitted_by="", recipients=[("a@b.c", False)],
                                      max_queue_time=3600, upload_sent=False, org_id=org_id)


def test_the_outbound_queue_takes_organisations_in_turns_and_shows_each_its_own(store: SqliteStore) -> None:
    main = store.file_organisation_id()
    beta = store.add_organisation("beta", "Beta").id
    store.add_project("Sales")
    main_task = store.add_task("Sales", "Out")
    with store.acting_for(beta):
        store.add_project("Sales")
        beta_task = store.add_task("Sales", "Out")
    flood = [_queue(store, main_task.id, main, "flood@example.test") for _ in range(5)]
    beta_one = _queue(store, beta_task.id, beta, "beta@example.test")
    # one organisation's five queued before the other's one: a pass of three still takes the other's
    assert [e.id for e in store.due_outbound(time.time() + 1, limit=3)] == [flood[0], beta_one, flood[1]]
    with store.acting_for(beta):
        assert [e.id for e in store.list_outbound()] == [beta_one]
        with pytest.raises(NotFound):
            store.get_outbound(flood[0])
        assert store.retry_outbound() == 1  # its own only
        with pytest.raises(NotFound):
            store.drop_outbound(flood[0])
    assert [e.id for e in store.list_outbound()] == flood
    assert store.outbound_since(beta, "2000-01-01") == 1 and store.outbound_since(main, "2000-01-01") == 5


def test_the_quarantine_shows_each_organisation_its_own(store: SqliteStore) -> None:
    beta = store.add_organisation("beta", "Beta").id
    store.ensure_source_task("gateway:main@far.example", "gateway", "Mail", "main@far.example", None)
    with store.acting_for(beta):
        store.ensure_source_task("gateway:beta@far.example", "gateway", "Mail", "beta@far.example", None)
    main_item = store.quarantine(FetchedKey("main@far.example", "INBOX/1", "7"), b"raw", "broken", 3)
    beta_item = store.quarantine(FetchedKey("beta@far.example", "INBOX/1", "7"), b"raw", "broken", 3)
    with store.acting_for(beta):
        assert [q.id for q in store.list_quarantine()] == [beta_item]
        with pytest.raises(NotFound):
            store.quarantined_raw(main_item)
        with pytest.raises(NotFound):
            store.drop_quarantined(main_item)
    assert [q.id for q in store.list_quarantine()] == [main_item]


def test_old_events_go_but_not_the_newest_nor_what_an_active_webhook_owes(store: SqliteStore) -> None:
    store.add_project("Sales")
    task = store.add_task("Sales", "Invoices").id
    hook = store.add_webhook(store.file_organisation_id(), "http://127.0.0.1:9/h", "s" * 16, [])  # (from now on)
    for number in range(6):
        store.store_message(MessageRecord(raw=f"Subject: {number}\r\n\r\nx\r\n".encode(), direction="in",
                                          source="smtp", subject=str(number)), [CommentTarget(task, ("r",))])
    ids = [e.id for e in store.events_after(0)]
    assert len(ids) == 6
    store.webhook_delivered(hook.id, ids[2])  # (it has had the first three)
    later = "2999-01-01T00:00:00+00:00"
    with store.transaction():
        assert store.prune_events(later, limit=2) == 2  # (a batch at a time)
    with store.transaction():
        assert store.prune_events(later) == 1  # (not the 4th: the webhook owes it)
    assert [e.id for e in store.events_after(0)] == ids[3:]
    store.webhook_delivered(hook.id, ids[5])
    with store.transaction():
        assert store.prune_events("2000-01-01T00:00:00+00:00") == 0  # (none that old)
        assert store.prune_events(later) == 2  # (never the newest)
    assert [e.id for e in store.events_after(0)] == ids[5:]
    store.store_message(MessageRecord(raw=b"Subject: new\r\n\r\nx\r\n", direction="in", source="smtp"),
                        [CommentTarget(task, ("r",))])
    assert store.latest_event_id() == ids[5] + 1  # (ids are never given again)


def test_a_rule_of_an_organisation_in_the_store_assigns_to_its_own_user(store: SqliteStore) -> None:
    """The writer acts for the file's organisation; mail routed by another organisation's rule
    assigns that organisation's user (a browser test found it quarantined: 'no user')."""
    acme = store.add_organisation("acme", "Acme").id
    with store.acting_for(acme):
        store.add_user("clerk", "Clerk", None, is_owner=False)
        store.add_project("Sales")
        task = store.add_task("Sales", "Invoices").id
    store.add_user("clerk-of-main", "Main's", None, is_owner=False)
    for assign_to, expected in (("clerk", "clerk"), ("clerk-of-main", "clerk"), ("gone", "clerk")):
        store.store_message(MessageRecord(raw=f"Subject: {assign_to}\r\n\r\nx\r\n".encode(), direction="in",
                                          source="smtp"), [CommentTarget(task, ("r",), assign_to)])
        with store.acting_for(acme):
            assert store.get_task(task).assignee == expected  # (another organisation's or no user: kept)


def test_a_gateways_states_are_events_only_when_they_change(store: SqliteStore) -> None:
    store.add_project("Mail")
    store.ensure_source_task("gateway:g@far.example", "gateway", "Mail", "g@far.example", None)  # (whose it is)
    store.record_connecting("g@far.example")
    store.record_connecting("g@far.example")  # (no change: no event)
    store.record_success("g@far.example")
    store.record_failure("g@far.example", "connect: refused", "2999-01-01T00:00:00+00:00", "connect")
    store.record_connecting("g@far.example")
    store.record_success("g@far.example", steady=True)
    assert [(e.data or {}).get("state") for e in store.events_after(0)] == [
        "connecting", "idle", "error", "connecting", "idle"]
    assert store.gateway_state("g@far.example").state == "idle"  # type: ignore[union-attr]
