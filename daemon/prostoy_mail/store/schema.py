"""Versioned schema migrations. Migration N brings the schema from version N-1 to N.

Plain SQL that PostgreSQL also understands where it can; the SQLite-specific pragmas live
in `sqlite.py`. Never edit a released migration: append a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: organisation, users, projects, tasks, raw messages, comments, settings
    """
    CREATE TABLE organisations (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        owner_id INTEGER
    );
    INSERT INTO organisations (id, name) VALUES (1, 'default');

    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL DEFAULT 1 REFERENCES organisations(id),
        login TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        password_hash TEXT,
        created_at TEXT NOT NULL
    );

    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL DEFAULT 1 REFERENCES organisations(id),
        name TEXT NOT NULL,
        UNIQUE (org_id, name)
    );

    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        title TEXT NOT NULL,
        assignee_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        kind TEXT NOT NULL CHECK (kind IN ('mailbox', 'gateway', 'personal', 'plain')),
        source_key TEXT UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE INDEX tasks_by_project ON tasks (project_id, title);

    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        source TEXT NOT NULL,
        received_at TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        raw BLOB NOT NULL,
        message_id TEXT,
        subject TEXT NOT NULL DEFAULT '',
        from_addr TEXT NOT NULL DEFAULT '',
        from_name TEXT NOT NULL DEFAULT '',
        to_addrs TEXT NOT NULL DEFAULT '[]',
        cc_addrs TEXT NOT NULL DEFAULT '[]',
        date TEXT,
        text TEXT NOT NULL DEFAULT '',
        attachments TEXT NOT NULL DEFAULT '[]',
        bounce INTEGER NOT NULL DEFAULT 0,
        auto_reply INTEGER NOT NULL DEFAULT 0,
        mail_from TEXT NOT NULL DEFAULT '',
        rcpt_tos TEXT NOT NULL DEFAULT '[]',
        peer TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX messages_by_message_id ON messages (message_id);

    -- A message is a comment in a task at most once; a deleted comment stays as a
    -- tombstone (deleted_at) so that the same message never comes back into that task.
    CREATE TABLE comments (
        id INTEGER PRIMARY KEY,
        task_id INTEGER NOT NULL REFERENCES tasks(id),
        message_id INTEGER NOT NULL REFERENCES messages(id),
        routed_by TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        deleted_at TEXT,
        UNIQUE (task_id, message_id)
    );
    CREATE INDEX comments_by_message ON comments (message_id);

    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    """,
    # 2: the reply index: Message-IDs of mail sent from tasks (registered by the outbound side)
    """
    CREATE TABLE sent_messages (
        message_id TEXT PRIMARY KEY,
        task_id INTEGER NOT NULL REFERENCES tasks(id)
    );
    """,
    # 3: fetching from gateways: what was fetched (exactly once), server-side changes still to
    # do, each gateway's position and health, and messages that could not be stored
    """
    CREATE TABLE fetched (
        gateway TEXT NOT NULL,
        folder TEXT NOT NULL,            -- IMAP: "INBOX/<UIDVALIDITY>"; POP3: "pop3"
        uid TEXT NOT NULL,               -- IMAP UID or POP3 UIDL
        message_id INTEGER REFERENCES messages(id),
        server_action TEXT NOT NULL DEFAULT '' CHECK (server_action IN ('', 'seen', 'delete')),
        action_done INTEGER NOT NULL DEFAULT 1,
        fetched_at TEXT NOT NULL,
        PRIMARY KEY (gateway, folder, uid)
    );
    CREATE INDEX fetched_pending ON fetched (gateway, action_done);
    CREATE INDEX fetched_by_message ON fetched (message_id);
    CREATE INDEX messages_by_source_sha ON messages (source, sha256);

    CREATE TABLE gateway_state (
        gateway TEXT PRIMARY KEY,
        folder TEXT,                     -- the IMAP folder and UIDVALIDITY the position is for
        last_uid INTEGER NOT NULL DEFAULT 0,
        last_success TEXT,
        last_error TEXT,
        last_error_at TEXT,
        next_attempt TEXT,
        failures INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        gateway TEXT NOT NULL,
        folder TEXT NOT NULL,
        uid TEXT NOT NULL,
        raw BLOB NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (gateway, folder, uid)
    );
    """,
    # 4: the outbound spool: messages submitted for sending, each recipient's state, and the
    # copy to append to a gateway's Sent folder
    """
    CREATE TABLE outbound (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),  -- the bytes to send, as sent
        task_id INTEGER REFERENCES tasks(id) ON DELETE SET NULL,
        sender TEXT NOT NULL,            -- the address it is sent as (From)
        envelope_from TEXT NOT NULL,     -- MAIL FROM towards the next server
        route TEXT NOT NULL,             -- "relay", or "gateway:<email>"
        scope TEXT NOT NULL,             -- the sender's mailbox or gateway ("mailbox:sales")
        submitted_by TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        expires_at REAL NOT NULL,        -- unix time: retried until then, bounced after
        next_attempt REAL NOT NULL,      -- unix time
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed', 'dropped')),
        sent_folder TEXT NOT NULL DEFAULT '' CHECK (sent_folder IN ('', 'waiting', 'pending', 'done', 'failed')),
        sent_folder_attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX outbound_due ON outbound (state, next_attempt);
    CREATE INDEX outbound_sent_folder ON outbound (sent_folder);

    CREATE TABLE outbound_recipients (
        outbound_id INTEGER NOT NULL REFERENCES outbound(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        local INTEGER NOT NULL DEFAULT 0,  -- a mailbox of our domain: delivered through the intake
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'dropped')),
        reply TEXT,                        -- the last answer about this recipient
        updated_at TEXT,
        PRIMARY KEY (outbound_id, address)
    );
    """,
    # 5: IMAP for mail clients: the mail of each domain mailbox (its folder), and each user's
    # flags per folder and UID (a mailbox folder's UIDs are message ids, a task folder's comment ids)
    """
    CREATE TABLE mailbox_messages (
        mailbox TEXT NOT NULL,           -- the domain mailbox's login
        message_id INTEGER NOT NULL REFERENCES messages(id),
        deleted_at TEXT,                 -- expunged from the mailbox by a mail client
        PRIMARY KEY (mailbox, message_id)
    );

    CREATE TABLE imap_flags (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        folder TEXT NOT NULL,            -- "mailbox:<login>" or "task:<id>"
        uid INTEGER NOT NULL,
        flags TEXT NOT NULL DEFAULT '',  -- space-separated
        PRIMARY KEY (user_id, folder, uid)
    );

    -- SMTP mail stored before this version, by the mailboxes of its envelope recipients
    -- (SQLite's json_each; a PostgreSQL store starts at this version and needs no back-fill)
    INSERT OR IGNORE INTO mailbox_messages (mailbox, message_id)
        SELECT DISTINCT lower(substr(r.local, 1, CASE WHEN instr(r.local, '+') > 0
                                                      THEN instr(r.local, '+') - 1 ELSE length(r.local) END)),
               r.id
        FROM (SELECT m.id, substr(j.value, 1, instr(j.value, '@') - 1) AS local
              FROM messages m, json_each(m.rcpt_tos) j
              WHERE m.direction = 'in' AND m.source = 'smtp' AND instr(j.value, '@') > 0) r;
    """,
    # 6: big raw messages as files beside the store (raw_files.py); `raw` is then empty
    """
    ALTER TABLE messages ADD COLUMN raw_file TEXT;
    """,
    # 7: a long comment text is not kept twice (in `raw` and in `text`): it is parsed from the
    # raw message when read (parsing is a pure function of the bytes)
    """
    ALTER TABLE messages ADD COLUMN text_from_raw INTEGER NOT NULL DEFAULT 0;
    """,
    # 8: the same bytes again over SMTP within [smtp] duplicate_window are stored once, counted here
    """
    ALTER TABLE messages ADD COLUMN times_received INTEGER NOT NULL DEFAULT 1;
    """,
    # 9: tasks that `new_task` rules open (kind 'conversation'): the rule and the message that
    # opened each (one task per message and rule, whatever delivers it again), when and for
    # which sender (the hourly limit), and the addresses that take part in the conversation.
    # The tasks table is rebuilt for its new kind: SQLite cannot change a CHECK in place.
    """
    CREATE TABLE tasks_rebuilt (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id),
        title TEXT NOT NULL,
        assignee_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
        kind TEXT NOT NULL CHECK (kind IN ('mailbox', 'gateway', 'personal', 'plain', 'conversation')),
        source_key TEXT UNIQUE,
        created_at TEXT NOT NULL
    );
    INSERT INTO tasks_rebuilt (id, project_id, title, assignee_id, kind, source_key, created_at)
        SELECT id, project_id, title, assignee_id, kind, source_key, created_at FROM tasks;
    DROP TABLE tasks;
    ALTER TABLE tasks_rebuilt RENAME TO tasks;
    CREATE INDEX tasks_by_project ON tasks (project_id, title);

    CREATE TABLE conversations (
        task_id INTEGER PRIMARY KEY REFERENCES tasks(id),
        rule TEXT NOT NULL,
        opened_by TEXT NOT NULL,         -- the first message: its Message-ID, else "sha256:<hash>"
        sender TEXT NOT NULL,            -- its sender's address (lower case)
        opened_at TEXT NOT NULL,
        UNIQUE (rule, opened_by)
    );
    CREATE INDEX conversations_by_sender ON conversations (sender, opened_at);

    CREATE TABLE conversation_participants (
        task_id INTEGER NOT NULL REFERENCES tasks(id),
        address TEXT NOT NULL,           -- lower case: the first sender, and whom mail from the task went to
        PRIMARY KEY (task_id, address)
    );
    """,
    # 10: organisations as the hosting model names them: a slug (unique), whether the
    # configuration file declares it (one may; today's store is that one), and their own mail
    # domains (each owned by one organisation; the shared domain by none)
    """
    ALTER TABLE organisations ADD COLUMN slug TEXT;
    ALTER TABLE organisations ADD COLUMN file_managed INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE organisations ADD COLUMN created_at TEXT;
    UPDATE organisations SET slug = 'main', file_managed = 1 WHERE id = 1;
    CREATE UNIQUE INDEX organisations_by_slug ON organisations (slug);
    CREATE INDEX users_by_org ON users (org_id);

    CREATE TABLE domains (
        domain TEXT PRIMARY KEY,         -- lower case, IDNA (ASCII) form
        org_id INTEGER NOT NULL REFERENCES organisations(id),
        created_at TEXT NOT NULL
    );
    """,
    # 11: the change log running daemons watch: a command that changes settings appends a row
    # and waits for the daemons to say they applied it (no signal: anyone who may write the
    # store may make a change live); the newest rows are kept
    """
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        org_id INTEGER,                  -- whose settings changed (NULL: the daemon's own file)
        what TEXT NOT NULL,              -- "configuration": read the configuration file again
        at REAL NOT NULL                 -- unix time of the commit
    );
    """,
    # 12: an organisation's own limits (NULL: [limits] of the file), and what the hourly
    # sending limit counts: submitted messages by time
    """
    CREATE TABLE org_limits (
        org_id INTEGER PRIMARY KEY REFERENCES organisations(id),
        mailboxes INTEGER,
        gateways INTEGER,
        users INTEGER,
        rules INTEGER,
        outbound_per_hour INTEGER
    );
    CREATE INDEX outbound_by_time ON outbound (created_at);
    """,
    # 13: the settings of organisations that live in the store: their mailboxes and rules,
    # each entry as the configuration file would hold it (JSON), in their order
    """
    CREATE TABLE org_entries (
        org_id INTEGER NOT NULL REFERENCES organisations(id),
        section TEXT NOT NULL CHECK (section IN ('servers', 'mailboxes', 'gateways', 'rules')),
        position INTEGER NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (org_id, section, position)
    );
    """,
    # 14: whose each outbound message and each quarantined message is: the queue and the
    # quarantine shown per organisation, its hourly sending counted without a join, and the
    # runner's turns taken per organisation (fair queueing). Existing rows: their task's
    # organisation, else the file-declared one.
    """
    ALTER TABLE outbound ADD COLUMN org_id INTEGER NOT NULL DEFAULT 0;
    UPDATE outbound SET org_id = coalesce(
        (SELECT p.org_id FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.id = outbound.task_id),
        (SELECT id FROM organisations WHERE file_managed = 1 ORDER BY id LIMIT 1), 1);
    CREATE INDEX outbound_by_org ON outbound (org_id, created_at);
    ALTER TABLE quarantine ADD COLUMN org_id INTEGER NOT NULL DEFAULT 0;
    UPDATE quarantine SET org_id = coalesce(
        (SELECT p.org_id FROM tasks t JOIN projects p ON p.id = t.project_id
         WHERE t.source_key = 'gateway:' || quarantine.gateway),
        (SELECT id FROM organisations WHERE file_managed = 1 ORDER BY id LIMIT 1), 1);
    """,
    # 15: who has a mailbox login or a gateway address, found by an index: a change of one
    # organisation checks its own names without reading every organisation's entries
    # (the expression is organisations.ENTRY_NAME, which the queries use word for word)
    """
    CREATE INDEX org_entries_by_name ON org_entries (section,
        lower(json_extract(entry, CASE section WHEN 'mailboxes' THEN '$.login' ELSE '$.email' END)));
    """,
    # 16: the management API's sessions: a user's bearer token, kept only as its SHA-256 (a
    # copy of the store gives no way in), until it expires or is revoked (the row goes)
    """
    CREATE TABLE api_sessions (
        token_sha256 TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX api_sessions_by_user ON api_sessions (user_id);
    """,
    # 17: events, each written in the same transaction as its cause (a comment stored, a
    # gateway's state changed, a message quarantined, an outbound message's outcome): the API's
    # event stream and webhooks read them in order, by id. A comment or outbound message is
    # named by its id (the API shows it as it is); the other kinds carry their object in `data`.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL,
        type TEXT NOT NULL
            CHECK (type IN ('comment.created', 'gateway.state', 'message.quarantined', 'outbound.state')),
        object_id INTEGER,
        data TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX events_by_org ON events (org_id, id);
    ALTER TABLE gateway_state ADD COLUMN state TEXT;
    ALTER TABLE gateway_state ADD COLUMN failed_step TEXT;
    """,
    # 18: webhooks: an organisation's URLs that get its events, in order, at least once. Each
    # keeps its place in the event log (`delivered_through`): moved on only after the receiver
    # answered 2xx, so a crash at any moment repeats an event, never skips one.
    """
    CREATE TABLE webhooks (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL REFERENCES organisations(id),
        url TEXT NOT NULL,
        secret TEXT NOT NULL,
        types TEXT NOT NULL,                 -- JSON: the event types it gets ([]: every type)
        created_at TEXT NOT NULL,
        delivered_through INTEGER NOT NULL,  -- the last event delivered (or not of its types)
        attempts INTEGER NOT NULL DEFAULT 0, -- tries of the next event so far
        next_attempt REAL NOT NULL DEFAULT 0,
        failing_since REAL,                  -- unix time of the first failure in a row
        state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'failing')),
        last_error TEXT
    );
    CREATE INDEX webhooks_by_org ON webhooks (org_id);
    """,
    # 19: a task's comments newest first, a page at a time (the API's task screen): read from
    # this index, not sorted from all the task's comments (a task of 10,000 comments: each page
    # sorted all 10,000)
    """
    CREATE INDEX comments_by_task ON comments (task_id, id);
    """,
)
# Migrations that rebuild a table others refer to: run with foreign keys off (SQLite's own
# procedure, https://www.sqlite.org/lang_altertable.html), checked before their commit.
REBUILDS = frozenset({9})

SCHEMA_VERSION = len(MIGRATIONS)
