"""The configuration as values: frozen dataclasses, no I/O.

`load.py` builds these from the TOML file; everything else only reads them.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Literal

Security = Literal["none", "ssl", "starttls"]
SECURITY_CHOICES: tuple[Security, ...] = ("none", "ssl", "starttls")
Protocol = Literal["imap", "pop3"]
PROTOCOL_CHOICES: tuple[Protocol, ...] = ("imap", "pop3")
Action = Literal["comment", "new_task", "ignore"]
ACTION_CHOICES: tuple[Action, ...] = ("comment", "new_task", "ignore")
LISTENER_NAMES = ("smtp", "submission", "submissions", "imap", "imaps", "http")  # http: the management API


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    domain: str = "prostoy.biz"
    store: str = "/var/lib/prostoy-mail/store.db"  # a SQLite path, or a postgresql:// URL later
    hostname: str = "mx.prostoy.biz"
    mail_project: str = "Mail"  # project that holds the tasks of mailboxes and gateways


@dataclass(frozen=True, slots=True)
class Listen:
    smtp: Endpoint | None = None
    submission: Endpoint | None = None
    submissions: Endpoint | None = None
    imap: Endpoint | None = None
    imaps: Endpoint | None = None
    http: Endpoint | None = None  # the management API (api/): loopback, or behind the CRM's proxy; else with [tls]
    metrics: Endpoint | None = None  # Prometheus metrics over HTTP (keep it on loopback)

    def items(self) -> list[tuple[str, Endpoint]]:
        return [(n, e) for n in LISTENER_NAMES if (e := getattr(self, n)) is not None]


@dataclass(frozen=True, slots=True)
class Tls:
    cert: Path | None = None
    key: Path | None = None


def is_loopback(host: str) -> bool:
    """Only this machine reaches it (127.0.0.0/8, ::1, "localhost")."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def default_smtp_workers() -> int:
    """One SMTP worker process per CPU this process may run on (at most 8); none on one CPU,
    where they would only add the cost of handing messages over."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cpus, 8) if cpus > 1 else 0


@dataclass(frozen=True, slots=True)
class SmtpLimits:
    """Bounds of the inbound SMTP listener; each is configurable under [smtp]."""

    max_message_size: int = 35 * 1024 * 1024
    max_recipients: int = 100
    max_line_length: int = 8192
    max_connections_per_ip: int = 20
    max_connections: int = 1000
    session_timeout: float = 600.0  # whole session, seconds
    idle_timeout: float = 300.0  # between commands, seconds
    max_errors: int = 10  # rejected commands before 421
    # from the third rejected command on, each further rejection waits error_delay x (errors - 2) s
    error_delay: float = 1.0
    # the same bytes for the same mailbox again within this many seconds (a sender's retry after
    # a lost 250) are answered 250 and stored once; 0: off
    duplicate_window: float = 86400.0
    greeting_delay: float = 0.0  # seconds before the greeting; a client talking before it is refused (554)
    # processes serving the sessions, beside the daemon's own (0: sessions in the daemon's process)
    workers: int = field(default_factory=lambda: default_smtp_workers())


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """How gateways are fetched; each is configurable under [fetch]."""

    idle_renew: float = 60.0  # seconds an IDLE lasts before it is renewed (and local changes applied)
    poll_interval: float = 60.0  # seconds between checks of a server without IDLE, and for POP3
    backoff_initial: float = 5.0  # seconds after a first failure; doubled each time
    backoff_max: float = 900.0
    max_attempts: int = 3  # tries to store a message before it is quarantined
    timeout: float = 60.0  # seconds for any one response of the server (a stalled server is given up on)
    # Whether the servers of organisations that live in the store may be on loopback, private or
    # link-local addresses (the file's organisation's always may): else a tenant could make the
    # daemon probe the provider's own network, and read the answers in "Test" (public_address.py).
    private_servers: bool = False


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """[imap]: the IMAP server for mail clients (listen.imap, listen.imaps)."""

    max_connections: int = 10_000  # sessions at once; one more is told BYE (descriptors: the unit's LimitNOFILE)
    max_connections_per_ip: int = 20  # from one client address (an office behind NAT: raise it)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """[api]: the management API on [listen] http."""

    admin_token_file: Path | None = None  # the provider's admin token (a systemd credential); None: no admin
    session_lifetime: float = 12 * 3600.0  # seconds a user's bearer token from POST /sessions is good for
    webhook_failing_after: float = 24 * 3600.0  # seconds of failed tries before a webhook is marked failing
    webhook_retry_initial: float = 5.0  # seconds before a failed POST is tried again, doubling ...
    webhook_retry_max: float = 3600.0  # ... up to this (with jitter)
    # seconds an event is kept for streams resuming with Last-Event-ID and for webhooks (one an
    # active webhook has not delivered stays until it has)
    event_retention: float = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Password logins (SMTP submission, IMAP); each is configurable under [auth]."""

    delay_after: int = 3  # failed logins from one address before each further try is slowed
    max_delay: float = 8.0  # seconds, at most, that a try is slowed (doubling from 1)
    max_failures: int = 10  # failed logins from one address before it is refused for block_time
    failure_window: float = 900.0  # seconds after which failures are forgotten
    block_time: float = 900.0  # seconds an address is refused
    max_parallel_checks: int = 4  # Argon2 verifications running at once (each costs CPU and memory)
    # Seconds a password once verified is recognised again without Argon2 (mail clients log in
    # over and over: each Argon2 check costs ~tens of ms of CPU); 0: always verify.
    verified_cache_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class OutboundSettings:
    """The outbound spool; each is configurable under [outbound]."""

    retry_initial: float = 60.0  # seconds after a first temporary failure; doubled each time
    retry_max: float = 3600.0
    max_queue_time: float = 5 * 86400.0  # seconds a message is retried before it bounces
    timeout: float = 60.0  # seconds for each step of talking to the next server
    poll_interval: float = 5.0  # seconds between looks at the spool for changes made by the command line


@dataclass(frozen=True, slots=True)
class OrganisationSettings:
    """[organisation]: the one organisation this file declares (its mailboxes, gateways, rules)."""

    slug: str = "main"
    name: str = ""  # (empty: the slug)

    @property
    def display_name(self) -> str:
        return self.name or self.slug


LIMIT_NAMES = ("mailboxes", "gateways", "users", "rules", "outbound_per_hour")


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """[limits]: what one organisation may have (and send); each may be overridden for an
    organisation in the store (`org limits`). Checked where things are added, and when mail
    is submitted (450 4.7.1 over the hourly number)."""

    mailboxes: int = 100
    gateways: int = 100
    users: int = 1000
    rules: int = 500
    outbound_per_hour: int = 2000  # messages submitted (mail clients, `task send`) in the last hour

    def with_overrides(self, overrides: dict[str, int]) -> LimitSettings:
        return replace(self, **{k: v for k, v in overrides.items() if k in LIMIT_NAMES})


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    """Routing as a whole; configurable under [routing] (a [rules] table cannot be: `[[rules]]`
    is the list of rules)."""

    # Tasks `new_task` rules may open for one sender address within an hour; more of its mail
    # goes to the fallback (a mail loop or a flood cannot fill a project with tasks).
    new_tasks_per_sender_per_hour: int = 20


@dataclass(frozen=True, slots=True)
class Relay:
    host: str
    port: int = 587
    security: Security = "starttls"
    login: str | None = None
    password: str | None = None
    password_file: Path | None = None
    verify_certificate: bool = True
    ca_file: Path | None = None  # extra certificate authorities to trust (a private CA)


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    imap: Endpoint | None = None
    pop3: Endpoint | None = None
    smtp: Endpoint | None = None
    verify_certificate: bool = True
    ssl: bool = True  # implicit TLS for fetching (IMAP/POP3); False: STARTTLS/STLS when offered
    security: Security = "none"  # SMTP: none, ssl (implicit TLS), starttls
    files_sent_mail: bool = False  # the server files SMTP mail in Sent itself (gmail.com)
    fetch_security: Security = "ssl"  # IMAP/POP3: ssl (implicit), starttls, none; from `ssl` unless given
    ca_file: Path | None = None  # extra certificate authorities to trust (a private CA)
    preset: bool = False  # shipped with prostoy-mail, not written in the config file
    public_only: bool = False  # connect to public addresses only (an organisation in the store's server)


@dataclass(frozen=True, slots=True)
class Mailbox:
    login: str
    owner: str | None = None  # a user login: a personal mailbox; None: corporate
    users: tuple[str, ...] = ()  # corporate: who may read it and send as it (empty: every user)

    def address(self, domain: str) -> str:
        """On the shared `domain`, or (a login holding "@") on an organisation's own domain."""
        return self.login if "@" in self.login else f"{self.login}@{domain}"


@dataclass(frozen=True, slots=True)
class Gateway:
    email: str
    server: str
    protocol: Protocol = "imap"
    login: str = ""
    password: str | None = None
    password_file: Path | None = None
    smtp_login: str | None = None  # None: the same login and password for SMTP
    smtp_password: str | None = None
    smtp_password_file: Path | None = None
    personal_for: str | None = None
    users: tuple[str, ...] = ()  # corporate: who may send as it and see its task (empty: every user)
    forwarding: bool = True
    keep_on_server: bool = True
    upload_sent: bool = False
    mark_read: bool = False
    delete_on_server_when_deleted: bool = False
    import_since: date | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    gateway: str | None = None
    mailbox: str | None = None
    subject: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    action: Action = "comment"
    task: str | None = None  # "Project/Task title" or a task id (action = "comment")
    project: str | None = None  # where action = "new_task" opens its tasks
    assign_to: str | None = None
    delete_after: bool = False
    stop: bool = False
    editable_by_owner: bool = False

    @property
    def is_global(self) -> bool:
        return self.gateway is None and self.mailbox is None


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    organisation: OrganisationSettings = field(default_factory=OrganisationSettings)
    listen: Listen = field(default_factory=Listen)
    tls: Tls = field(default_factory=Tls)
    smtp: SmtpLimits = field(default_factory=SmtpLimits)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    relay: Relay | None = None
    servers: tuple[Server, ...] = ()  # presets first, then the file's (a file entry replaces a preset)
    mailboxes: tuple[Mailbox, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    rules: tuple[Rule, ...] = ()
    text_sha256: str = ""  # of the file's text this was read from (the daemon tells it to the command line)

    def server(self, name: str) -> Server | None:
        return next((s for s in self.servers if s.name == name), None)

    def mailbox(self, login: str) -> Mailbox | None:
        return next((m for m in self.mailboxes if m.login == login), None)

    def gateway(self, email: str) -> Gateway | None:
        return next((g for g in self.gateways if g.email == email), None)

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def store_location(self) -> str:
        """The store setting with a relative SQLite path resolved against the config's folder."""
        store = self.daemon.store
        if "://" in store or Path(store).is_absolute():
            return store
        return str((self.path.parent / store).resolve())
