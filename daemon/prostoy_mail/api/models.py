"""The API's bodies as typed models: they validate what comes in and are the OpenAPI schema of
what goes out. What goes out is made by views.py (the command line's `--json`), so a field
here is exactly the `--json` field of the same name (tests/unit/test_api_models.py holds them
to it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # (a misspelt field is an error, not ignored)


class SessionIn(Strict):
    login: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    token: str
    expires_at: str  # ISO 8601
    login: str
    organisation: str  # its slug
    role: Literal["owner", "employee"]


class Me(BaseModel):
    role: Literal["admin", "owner", "employee"]
    login: str | None
    organisation: str | None


class OrganisationIn(Strict):
    slug: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=1, max_length=320, description="the owner's login (unique across the installation)")
    owner_name: str | None = Field(default=None, max_length=200)
    owner_password: str | None = Field(default=None, min_length=1, max_length=1024, description="write-only")


class OrganisationOut(BaseModel):
    slug: str
    name: str
    owner: str | None
    file_managed: bool
    domains: list[str]
    users: int
    mailboxes: int
    gateways: int
    rules: int
    projects: int
    tasks: int


class UserOut(BaseModel):
    login: str
    name: str
    owner: bool
    has_password: bool
    personal_task: int | None


class MailboxOut(BaseModel):
    login: str
    address: str
    owner: str | None
    kind: Literal["personal", "corporate"]
    task: int | None
    users: list[str]


class ServerOut(BaseModel):
    name: str
    imap: str | None
    pop3: str | None
    smtp: str | None
    verify_certificate: bool
    ssl: bool
    security: str
    files_sent_mail: bool
    preset: bool
    used_by: list[str]


class GatewayOut(BaseModel):
    email: str
    server: str
    protocol: str
    login: str
    smtp_login: str
    same_smtp_login: bool
    personal_for: str | None
    forwarding: bool
    keep_on_server: bool
    upload_sent: bool
    mark_read: bool
    delete_on_server_when_deleted: bool
    import_since: str | None
    password_from: Literal["file", "config"]
    task: int | None
    state: Literal["connecting", "idle", "error", "auth_failed"] | None  # (None: not tried yet)
    failed_step: str | None  # where the last failure was: dns, connect, tls, login, ...
    last_success: str | None
    last_error: str | None
    last_error_at: str | None
    next_attempt: str | None
    failures: int
    position: str | None


class RuleOut(BaseModel):
    position: int
    name: str
    scope: Literal["global", "mailbox", "gateway"]
    gateway: str | None
    mailbox: str | None
    subject: list[str]
    senders: list[str]
    recipients: list[str]
    action: Literal["comment", "new_task", "ignore"]
    task: str | None
    project: str | None
    assign_to: str | None
    delete_after: bool
    stop: bool
    editable_by_owner: bool


class TaskOut(BaseModel):
    id: int
    project: str
    title: str
    assignee: str | None
    kind: str
    source: str | None


class AttachmentOut(BaseModel):
    filename: str | None
    content_type: str
    size: int


class CommentOut(BaseModel):
    id: int
    task: int
    direction: Literal["in", "out"]
    message_id: str | None
    subject: str
    from_: str | None = Field(alias="from")
    from_name: str | None
    to: list[str]
    cc: list[str]
    date: str | None
    text: str
    attachments: list[AttachmentOut]
    source: str
    routed_by: list[str]
    bounce: bool
    auto_reply: bool
    created_at: str
    deleted: bool
    times_received: int

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class RuleIn(Strict):
    """A new rule, with `rule list --json`'s fields (`position`: where in the order; default last)."""

    name: str = Field(min_length=1, max_length=200)
    scope: Literal["global", "mailbox", "gateway"] | None = None  # (follows from gateway/mailbox)
    gateway: str | None = None
    mailbox: str | None = None
    subject: list[str] = Field(default_factory=list, max_length=100)
    senders: list[str] = Field(default_factory=list, max_length=100)
    recipients: list[str] = Field(default_factory=list, max_length=100)
    action: Literal["comment", "new_task", "ignore"]
    task: str | int | None = Field(default=None, description='for "comment": "Project/Title" or a task id')
    project: str | None = Field(default=None, description='for "new_task": the project its tasks open in')
    assign_to: str | None = None
    delete_after: bool = False
    stop: bool = False
    editable_by_owner: bool = False
    position: int | None = Field(default=None, ge=1)


class RulePatch(Strict):
    """What to change of a rule (fields left out stay). `name` renames it, `position` moves it,
    `scope: "global"` makes it global. An employee may change conditions and actions only."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    scope: Literal["global", "mailbox", "gateway"] | None = None
    gateway: str | None = None
    mailbox: str | None = None
    subject: list[str] | None = Field(default=None, max_length=100)
    senders: list[str] | None = Field(default=None, max_length=100)
    recipients: list[str] | None = Field(default=None, max_length=100)
    action: Literal["comment", "new_task", "ignore"] | None = None
    task: str | int | None = None
    project: str | None = None
    assign_to: str | None = None
    delete_after: bool | None = None
    stop: bool | None = None
    editable_by_owner: bool | None = None
    position: int | None = Field(default=None, ge=1)


class MailboxIn(Strict):
    """A domain mailbox: `login` alone on the shared domain (the page's "Prostoy.biz" button), or
    `login@own-domain` on one of the organisation's own domains."""

    login: str = Field(min_length=1, max_length=320)
    owner: str | None = Field(default=None, description="a personal mailbox of this user (default: corporate)")
    users: list[str] = Field(default_factory=list, max_length=1000,
                             description="corporate: only these users may read it and send as it")


class GatewayIn(Strict):
    """A new gateway (the page's "Создать шлюз"). Passwords are write-only."""

    email: str = Field(min_length=3, max_length=320)
    server: str = Field(min_length=1, max_length=200)
    protocol: Literal["imap", "pop3"] = "imap"
    login: str | None = Field(default=None, max_length=320, description="default: the e-mail address")
    password: str = Field(min_length=1, max_length=1024, description="write-only")
    smtp_login: str | None = Field(default=None, max_length=320, description="a different login for SMTP")
    smtp_password: str | None = Field(default=None, min_length=1, max_length=1024, description="write-only")
    personal_for: str | None = Field(default=None, max_length=320)
    forwarding: bool = True
    keep_on_server: bool = True
    upload_sent: bool = False
    mark_read: bool = False
    delete_on_server_when_deleted: bool = False
    import_since: str | None = Field(default=None, description="YYYY-MM-DD: older mail since then too")


class GatewayPatch(Strict):
    """What to change (fields left out stay). A new server or login needs `password` again."""

    server: str | None = Field(default=None, min_length=1, max_length=200)
    protocol: Literal["imap", "pop3"] | None = None
    login: str | None = Field(default=None, min_length=1, max_length=320)
    password: str | None = Field(default=None, min_length=1, max_length=1024, description="write-only")
    smtp_login: str | None = Field(default=None, max_length=320)
    smtp_password: str | None = Field(default=None, min_length=1, max_length=1024, description="write-only")
    same_smtp_login: bool | None = None
    personal_for: str | None = Field(default=None, max_length=320, description='"" makes it corporate')
    forwarding: bool | None = None
    keep_on_server: bool | None = None
    upload_sent: bool | None = None
    mark_read: bool | None = None
    delete_on_server_when_deleted: bool | None = None
    import_since: str | None = None


class GatewayVerifyIn(Strict):
    """Settings to try before saving them (the Test button on an unsaved form)."""

    email: str = Field(min_length=3, max_length=320)
    server: str = Field(min_length=1, max_length=200)
    protocol: Literal["imap", "pop3"] = "imap"
    login: str | None = Field(default=None, max_length=320)
    password: str = Field(min_length=1, max_length=1024, description="write-only")
    smtp_login: str | None = Field(default=None, max_length=320)
    smtp_password: str | None = Field(default=None, min_length=1, max_length=1024, description="write-only")
    smtp: bool = Field(default=True, description="also try sending (SMTP)")


class StepOut(BaseModel):
    """One step of the Test, as `gateway test` prints it: the server's own reply in `detail`."""

    protocol: str
    step: str
    ok: bool
    detail: str


class TestOut(BaseModel):
    ok: bool
    steps: list[StepOut]


class ServerIn(Strict):
    """A custom mail server (the page's "Создать сервер"): endpoints as "host:port"."""

    name: str = Field(min_length=1, max_length=253, description="its address, e.g. mail.example.org")
    imap: str | None = Field(default=None, max_length=300)
    pop3: str | None = Field(default=None, max_length=300)
    smtp: str | None = Field(default=None, max_length=300)
    verify_certificate: bool | None = None
    ssl: bool | None = Field(default=None, description="implicit TLS for IMAP/POP3 (default: yes)")
    security: Literal["none", "ssl", "starttls"] | None = Field(default=None, description="SMTP's")
    files_sent_mail: bool | None = None


class ServerPatch(Strict):
    imap: str | None = Field(default=None, max_length=300)
    pop3: str | None = Field(default=None, max_length=300)
    smtp: str | None = Field(default=None, max_length=300)
    verify_certificate: bool | None = None
    ssl: bool | None = None
    security: Literal["none", "ssl", "starttls"] | None = None
    files_sent_mail: bool | None = None


EventType = Literal["comment.created", "gateway.state", "message.quarantined", "outbound.state"]


class WebhookIn(Strict):
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://[^\s/]+", description="http(s)://...")
    secret: str = Field(min_length=16, max_length=200, description="write-only: the HMAC-SHA256 key")
    types: list[EventType] = Field(default_factory=list, description="the event types it gets (empty: every type)")


class WebhookPatch(Strict):
    url: str | None = Field(default=None, min_length=8, max_length=2000, pattern=r"^https?://[^\s/]+")
    secret: str | None = Field(default=None, min_length=16, max_length=200, description="write-only")
    types: list[EventType] | None = None


class WebhookOut(BaseModel):
    id: int
    url: str
    types: list[str]
    state: Literal["active", "failing"]
    delivered_through: int  # the last event it got (or that was not of its types)
    attempts: int  # failed tries of its next event
    next_attempt: str | None
    failing_since: str | None
    last_error: str | None
    created_at: str


class UserIn(Strict):
    login: str = Field(min_length=1, max_length=320, description="unique across the installation")
    name: str | None = Field(default=None, max_length=200)
    owner: bool = Field(default=False, description="an owner of the organisation (there is one: its owner)")
    password: str | None = Field(default=None, min_length=1, max_length=1024, description="write-only")


class PasswordIn(Strict):
    password: str = Field(min_length=8, max_length=1024, description="write-only")


class ExplainIn(Strict):
    """A raw message (as pasted: its headers and body) and, optionally, where it came through."""

    raw: str = Field(min_length=1, max_length=1 << 20)
    mailbox: str | None = Field(default=None, max_length=320)
    gateway: str | None = Field(default=None, max_length=320)


class RuleCheckOut(BaseModel):
    rule: str
    scope: str
    matched: bool
    why: list[str]


class LandingOut(BaseModel):
    task: int
    ref: str
    routed_by: list[str]
    assign_to: str | None


class OpeningOut(BaseModel):
    rule: str
    project: str
    title: str
    assign_to: str | None


class ExplainOut(BaseModel):
    """As `rule explain --json` shows it."""

    subject: str
    from_: str | None = Field(alias="from")
    message_id: str | None
    through: list[str]
    reply_to_task: int | None
    joined_by: str | None
    rules: list[RuleCheckOut]
    ignored_by: str | None
    delete_after: bool
    lands_in: list[LandingOut]
    opens: list[OpeningOut]
    bounce: bool
    auto_reply: bool

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class OutboundRecipientOut(BaseModel):
    address: str
    state: str
    reply: str | None
    local: bool


class OutboundOut(BaseModel):
    """As `queue list --json` shows a message of the outbound spool."""

    id: int
    state: str
    created_at: str
    sender: str
    envelope_from: str
    route: str
    task: int | None
    submitted_by: str
    attempts: int
    next_attempt: str | None
    expires_at: str
    last_error: str | None
    sent_folder: str
    recipients: list[OutboundRecipientOut]


class QuarantinedOut(BaseModel):
    """As `quarantine list --json` shows it."""

    id: int
    gateway: str
    folder: str
    uid: str
    size: int
    error: str
    attempts: int
    created_at: str


class SendIn(Strict):
    """A plain-text message from a task: it becomes the task's outgoing comment."""

    from_: str = Field(alias="from", min_length=3, max_length=320, description="a mailbox or gateway address")
    to: list[str] = Field(default_factory=list, max_length=100)
    cc: list[str] = Field(default_factory=list, max_length=100)
    bcc: list[str] = Field(default_factory=list, max_length=100)
    subject: str = Field(default="", max_length=1000)
    body: str = Field(default="", max_length=10 << 20)
    in_reply_to: str | None = Field(default=None, max_length=1000)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SentOut(BaseModel):
    id: int  # in the outbound queue
    message_id: str
    task: int


class RetriedOut(BaseModel):
    message: int  # the stored message's id
    tasks: list[int]  # the tasks it went to


class ProjectIn(Strict):
    name: str = Field(min_length=1, max_length=200)


class ProjectOut(BaseModel):  # (`project list --json`)
    id: int
    name: str


class TaskIn(Strict):
    project: str = Field(min_length=1, max_length=200, description="the project's name")
    title: str = Field(min_length=1, max_length=500)
    assignee: str | None = Field(default=None, max_length=320, description="a user's login")


class DomainIn(Strict):
    domain: str = Field(min_length=1, max_length=253)


class DomainOut(BaseModel):  # (`domain list --json`)
    domain: str
    org: str


class LimitOut(BaseModel):  # (`org limits --json`: one limit)
    limit: int
    own: bool = Field(description="the organisation's own; else the installation's [limits]")
    used: int = Field(description="what it has (of outbound_per_hour: sent in the last hour)")


class LimitsOut(BaseModel):
    mailboxes: LimitOut
    gateways: LimitOut
    users: LimitOut
    rules: LimitOut
    outbound_per_hour: LimitOut


class LimitsPatch(Strict):
    """A number sets the organisation's own limit; null takes it back to [limits]; a limit
    left out stays as it is."""

    mailboxes: int | None = Field(default=None, ge=0, le=10_000_000)
    gateways: int | None = Field(default=None, ge=0, le=10_000_000)
    users: int | None = Field(default=None, ge=0, le=10_000_000)
    rules: int | None = Field(default=None, ge=0, le=10_000_000)
    outbound_per_hour: int | None = Field(default=None, ge=0, le=10_000_000)
