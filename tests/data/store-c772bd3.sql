-- A store made by prostoy-mail c772bd3 (schema version 7): `init`, two users (ivanov the owner),
-- project Sales with task Invoices, mailbox sales, one stored message and one sent Message-ID.
BEGIN TRANSACTION;
CREATE TABLE comments (
        id INTEGER PRIMARY KEY,
        task_id INTEGER NOT NULL REFERENCES tasks(id),
        message_id INTEGER NOT NULL REFERENCES messages(id),
        routed_by TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        deleted_at TEXT,
        UNIQUE (task_id, message_id)
    );
INSERT INTO "comments" VALUES(1,3,1,'["invoices"]','2026-12-06T01:20:45+00:00',NULL);
CREATE TABLE fetched (
        gateway TEXT NOT NULL,
        folder TEXT NOT NULL,            
        uid TEXT NOT NULL,               
        message_id INTEGER REFERENCES messages(id),
        server_action TEXT NOT NULL DEFAULT '' CHECK (server_action IN ('', 'seen', 'delete')),
        action_done INTEGER NOT NULL DEFAULT 1,
        fetched_at TEXT NOT NULL,
        PRIMARY KEY (gateway, folder, uid)
    );
CREATE TABLE gateway_state (
        gateway TEXT PRIMARY KEY,
        folder TEXT,                     
        last_uid INTEGER NOT NULL DEFAULT 0,
        last_success TEXT,
        last_error TEXT,
        last_error_at TEXT,
        next_attempt TEXT,
        failures INTEGER NOT NULL DEFAULT 0
    );
CREATE TABLE imap_flags (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        folder TEXT NOT NULL,            
        uid INTEGER NOT NULL,
        flags TEXT NOT NULL DEFAULT '',  
        PRIMARY KEY (user_id, folder, uid)
    );
CREATE TABLE mailbox_messages (
        mailbox TEXT NOT NULL,           
        message_id INTEGER NOT NULL REFERENCES messages(id),
        deleted_at TEXT,                 
        PRIMARY KEY (mailbox, message_id)
    );
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
    , raw_file TEXT, text_from_raw INTEGER NOT NULL DEFAULT 0);
INSERT INTO "messages" VALUES(1,'in','smtp','2026-12-06T01:20:45+00:00','934fb589eb82c25a993793466197f0cc899035d2ae4463e067e911835f648111',74,X'46726F6D3A206140636C69656E742E72750D0A5375626A6563743A20696E766F69636520310D0A4D6573736167652D49443A203C6F6C643140636C69656E743E0D0A0D0A626F64790D0A','old1@client','invoice 1','a@client.ru','','[]','[]',NULL,'body','[]',0,0,'','[]','',NULL,0);
CREATE TABLE organisations (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        owner_id INTEGER
    );
INSERT INTO "organisations" VALUES(1,'default',1);
CREATE TABLE outbound (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id),  
        task_id INTEGER REFERENCES tasks(id) ON DELETE SET NULL,
        sender TEXT NOT NULL,            
        envelope_from TEXT NOT NULL,     
        route TEXT NOT NULL,             
        scope TEXT NOT NULL,             
        submitted_by TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        expires_at REAL NOT NULL,        
        next_attempt REAL NOT NULL,      
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed', 'dropped')),
        sent_folder TEXT NOT NULL DEFAULT '' CHECK (sent_folder IN ('', 'waiting', 'pending', 'done', 'failed')),
        sent_folder_attempts INTEGER NOT NULL DEFAULT 0
    );
CREATE TABLE outbound_recipients (
        outbound_id INTEGER NOT NULL REFERENCES outbound(id) ON DELETE CASCADE,
        address TEXT NOT NULL,
        local INTEGER NOT NULL DEFAULT 0,  
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'dropped')),
        reply TEXT,                        
        updated_at TEXT,
        PRIMARY KEY (outbound_id, address)
    );
CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL DEFAULT 1 REFERENCES organisations(id),
        name TEXT NOT NULL,
        UNIQUE (org_id, name)
    );
INSERT INTO "projects" VALUES(1,1,'Personal');
INSERT INTO "projects" VALUES(2,1,'Sales');
INSERT INTO "projects" VALUES(3,1,'Mail');
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
CREATE TABLE sent_messages (
        message_id TEXT PRIMARY KEY,
        task_id INTEGER NOT NULL REFERENCES tasks(id)
    );
INSERT INTO "sent_messages" VALUES('sent1@prostoy',3);
CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
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
INSERT INTO "tasks" VALUES(1,1,'Иван Иванов',1,'personal','personal:ivanov','2026-12-06T01:20:40+00:00');
INSERT INTO "tasks" VALUES(2,1,'petrov',2,'personal','personal:petrov','2026-12-06T01:20:41+00:00');
INSERT INTO "tasks" VALUES(3,2,'Invoices',2,'plain',NULL,'2026-12-06T01:20:41+00:00');
INSERT INTO "tasks" VALUES(4,3,'sales@example.test',NULL,'mailbox','mailbox:sales','2026-12-06T01:20:41+00:00');
CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        org_id INTEGER NOT NULL DEFAULT 1 REFERENCES organisations(id),
        login TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        password_hash TEXT,
        created_at TEXT NOT NULL
    );
INSERT INTO "users" VALUES(1,1,'ivanov','Иван Иванов',NULL,'2026-12-06T01:20:40+00:00');
INSERT INTO "users" VALUES(2,1,'petrov','petrov',NULL,'2026-12-06T01:20:41+00:00');
CREATE INDEX tasks_by_project ON tasks (project_id, title);
CREATE INDEX messages_by_message_id ON messages (message_id);
CREATE INDEX comments_by_message ON comments (message_id);
CREATE INDEX fetched_pending ON fetched (gateway, action_done);
CREATE INDEX fetched_by_message ON fetched (message_id);
CREATE INDEX messages_by_source_sha ON messages (source, sha256);
CREATE INDEX outbound_due ON outbound (state, next_attempt);
CREATE INDEX outbound_sent_folder ON outbound (sent_folder);
COMMIT;
PRAGMA user_version = 7;
