"""What the rest of prostoy-mail needs from a task store (SQLite now, PostgreSQL later).

Records are frozen values; `TaskStore` is the one interface. Nothing outside `store/`
knows which database is behind it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..mail.parse import AttachmentInfo

Attachment = AttachmentInfo  # what the parser finds is what the store keeps

TaskKind = Literal["mailbox", "gateway", "personal", "plain", "conversation"]
Direction = Literal["in", "out"]
PERSONAL_PROJECT = "Personal"


class StoreUnavailable(Exception):
    """The store as a whole is failing (its disk full, I/O errors, locked, read-only), not this
    one message: wait and retry everything; never quarantine a message for it. What the
    adapter raises (or answers a job with) instead of its database's own errors."""


class StoreFull(StoreUnavailable):
    """The store's disk (or its size limit) is full: SMTP says 452 4.3.1."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    login: str
    name: str
    is_owner: bool
    has_password: bool
    personal_task_id: int | None
    org_id: int = 1  # the organisation the user belongs to


@dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    slug: str
    name: str
    owner: str | None  # the owner's login
    file_managed: bool  # declared by the configuration file (which wins for it)
    domains: tuple[str, ...] = ()  # its own mail domains


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    project: str
    title: str
    assignee: str | None  # a user login
    kind: TaskKind
    source_key: str | None  # "mailbox:sales", "gateway:x@y.ru", "personal:ivanov"
    opened_by_rule: str | None = None  # a conversation: the `new_task` rule that opened it

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.title}"

    @property
    def source(self) -> str | None:
        """Where the task comes from: its mailbox, gateway or user, or "rule:<name>"."""
        return self.source_key or (f"rule:{self.opened_by_rule}" if self.opened_by_rule else None)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message as the intake hands it to the store: raw bytes and what was parsed from them."""

    raw: bytes
    direction: Direction
    source: str  # "smtp", or the gateway's e-mail
    message_id: str | None = None
    subject: str = ""
    from_addr: str = ""
    from_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: str | None = None  # ISO 8601
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    bounce: bool = False
    auto_reply: bool = False
    mail_from: str = ""  # SMTP envelope sender
    rcpt_tos: tuple[str, ...] = ()  # SMTP envelope recipients
    peer: str = ""  # SMTP client address, or the external server
    raw_file: str | None = None  # the message is in this file of the store's RawFiles: keep it there
    # of the whole message, when `raw` holds only its start (a message spooled to its file as it arrived)
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class CommentTarget:
    task_id: int
    routed_by: tuple[str, ...]  # rule names, "reply" or "fallback"
    assign_to: str | None = None  # a rule's "assign to": the task is reassigned


@dataclass(frozen=True, slots=True)
class Comment:
    id: int
    task_id: int
    message_db_id: int
    direction: Direction
    message_id: str | None
    subject: str
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: str | None
    text: str
    attachments: tuple[Attachment, ...]
    source: str
    routed_by: tuple[str, ...]
    bounce: bool
    auto_reply: bool
    created_at: str
    deleted_at: str | None = None
    times_received: int = 1  # the same bytes came again within [smtp] duplicate_window: stored once


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    comment_ids: tuple[int, ...] = field(default=())


ServerAction = Literal["", "seen", "delete"]


@dataclass(frozen=True, slots=True)
class FetchedKey:
    """A fetched message's identity on its server."""

    gateway: str
    folder: str  # IMAP: "INBOX/<UIDVALIDITY>"; POP3: "pop3"
    uid: str  # IMAP UID or POP3 UIDL


@dataclass(frozen=True, slots=True)
class GatewayState:
    gateway: str
    folder: str | None
    last_uid: int
    last_success: str | None
    last_error: str | None
    last_error_at: str | None
    next_attempt: str | None
    failures: int
    state: str | None = None  # idle, error, auth_failed (None: not yet checked)
    failed_step: str | None = None  # where the last failure was (dns, connect, tls, login, ...)


@dataclass(frozen=True, slots=True)
class Event:
    """Something an organisation hears of (the API's events and webhooks)."""

    id: int
    org_id: int
    type: str  # comment.created, gateway.state, message.quarantined, outbound.state
    object_id: int | None  # the comment's or outbound message's id
    data: dict[str, Any] | None  # the object itself, for the other kinds
    created_at: str


@dataclass(frozen=True, slots=True)
class Webhook:
    """An organisation's receiver of its events."""

    id: int
    org_id: int
    url: str
    secret: str  # (write-only to the outside: never shown)
    types: tuple[str, ...]  # the event types it gets (empty: every type)
    created_at: str
    delivered_through: int  # its place in the event log
    attempts: int  # tries of the next event so far
    next_attempt: float  # unix time
    failing_since: float | None
    state: str  # active, failing (it has failed for [api] webhook_failing_after seconds)
    last_error: str | None


@dataclass(frozen=True, slots=True)
class QuarantinedMessage:
    id: int
    gateway: str
    folder: str
    uid: str
    size: int
    error: str
    attempts: int
    created_at: str


OutboundState = Literal["queued", "sent", "failed", "dropped"]
RecipientState = Literal["pending", "delivered", "failed", "dropped"]
SentFolderState = Literal["", "waiting", "pending", "done", "failed"]


@dataclass(frozen=True, slots=True)
class OutboundRecipient:
    address: str
    local: bool  # a mailbox of our own domain: delivered through the intake
    state: RecipientState
    reply: str | None  # the last answer about this recipient ("250 2.0.0 Ok", "550 5.1.1 ...")


@dataclass(frozen=True, slots=True)
class OutboundEntry:
    """A message in the outbound spool."""

    id: int
    message_db_id: int
    task_id: int | None
    sender: str
    envelope_from: str
    route: str  # "relay", or "gateway:<email>"
    scope: str  # the sender's mailbox or gateway
    submitted_by: str
    created_at: str
    expires_at: float  # unix time
    next_attempt: float  # unix time
    attempts: int
    last_error: str | None
    state: OutboundState
    sent_folder: SentFolderState
    recipients: tuple[OutboundRecipient, ...]
    sent_folder_attempts: int = 0
    org_id: int = 0  # whose: the organisation of the task it was sent from

    def pending(self) -> list[OutboundRecipient]:
        return [r for r in self.recipients if r.state == "pending"]


@dataclass(frozen=True, slots=True)
class FolderItem:
    """A message of an IMAP folder (a domain mailbox, a task, Sent), as the IMAP server lists it."""

    uid: int
    message_db_id: int
    size: int
    received_at: str  # ISO 8601, the internal date
    subject: str
    from_addr: str
    to: str  # JSON lists, for SEARCH
    cc: str
    date: str | None


class TaskStore(Protocol):
    # schema
    def schema_version(self) -> int: ...
    def close(self) -> None: ...

    # organisations: the one the configuration file declares (its slug and name, as the file
    # says), those in the store with their entries; the connection acting for one of them
    def reconcile_file_organisation(self, slug: str, name: str) -> Organisation: ...
    def file_organisation_id(self) -> int: ...
    def list_organisations(self) -> list[Organisation]: ...
    def org_entries(self, org_id: int) -> dict[str, list[dict[str, Any]]]: ...
    def source_task_owners(self, kind: str, among: Collection[str] | None = None) -> dict[str, int]: ...
    def domain_owners(self) -> dict[str, int]: ...
    def counts(self, org_id: int) -> dict[str, int]: ...
    def organisation_slugs(self) -> dict[int, str]: ...
    def organisation_by_id(self, org_id: int) -> Organisation: ...
    def org_entry_names(self, section: str, among: Collection[str] | None = None) -> list[tuple[str, int]]: ...
    def acting_for(self, org_id: int | None) -> AbstractContextManager[None]: ...

    # users
    def add_user(self, login: str, name: str, password_hash: str | None, is_owner: bool) -> User: ...
    def get_user(self, login: str) -> User: ...
    def find_user(self, login: str) -> User | None: ...
    def list_users(self) -> list[User]: ...
    def set_password(self, login: str, password_hash: str | None) -> None: ...
    def password_hash(self, login: str) -> str | None: ...
    def remove_user(self, login: str) -> None: ...

    # projects and tasks
    def add_project(self, name: str) -> Project: ...
    def list_projects(self) -> list[Project]: ...
    def find_project(self, name: str) -> Project | None: ...
    def add_task(self, project: str, title: str, assignee: str | None = None,
                 kind: TaskKind = "plain", source_key: str | None = None) -> Task: ...
    def ensure_source_task(self, source_key: str, kind: TaskKind, project: str, title: str,
                           assignee: str | None) -> Task: ...
    def task_for_source(self, source_key: str) -> Task | None: ...
    def get_task(self, task_id: int) -> Task: ...
    def resolve_task(self, ref: str) -> Task: ...
    def list_tasks(self) -> list[Task]: ...
    def assign_task(self, task_id: int, login: str | None) -> None: ...

    # messages and comments
    def store_message(self, record: MessageRecord, targets: Sequence[CommentTarget]) -> StoredMessage: ...
    def raw_message(self, message_db_id: int) -> bytes: ...
    def list_comments(self, task_id: int, include_deleted: bool = False) -> list[Comment]: ...
    def get_comment(self, comment_id: int) -> Comment: ...
    def delete_comment(self, comment_id: int) -> Comment: ...

    # the reply index
    def register_sent(self, message_id: str, task_id: int) -> None: ...
    def task_of_sent(self, message_ids: Sequence[str]) -> int | None: ...
    def task_exists(self, task_id: int) -> bool: ...

    # settings kept in the store (e.g. the key that signs reply tokens)
    def secret(self, name: str) -> bytes: ...
