"""What each object looks like to the outside: the command line's `--json` and the management
API's bodies, one function per kind, so the two never differ. The field names are a public
contract (README, "`--json` fields"): fields may be added, never renamed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .config.model import Config, Endpoint, Gateway, Mailbox, Rule, Server
from .store.ports import Comment, Organisation, OutboundEntry, Task, User

GATEWAY_FLAGS = ("forwarding", "keep_on_server", "upload_sent", "mark_read", "delete_on_server_when_deleted")

def user_json(user: User) -> dict[str, Any]:
    return {"login": user.login, "name": user.name, "owner": user.is_owner,
            "has_password": user.has_password, "personal_task": user.personal_task_id}


def task_json(task: Task) -> dict[str, Any]:
    return {"id": task.id, "project": task.project, "title": task.title, "assignee": task.assignee,
            "kind": task.kind, "source": task.source}


def comment_json(comment: Comment) -> dict[str, Any]:
    return {
        "id": comment.id, "task": comment.task_id, "direction": comment.direction,
        "message_id": comment.message_id, "subject": comment.subject, "from": comment.from_addr,
        "from_name": comment.from_name, "to": list(comment.to), "cc": list(comment.cc),
        "date": comment.date, "text": comment.text,
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size}
                        for a in comment.attachments],
        "source": comment.source, "routed_by": list(comment.routed_by), "bounce": comment.bounce,
        "auto_reply": comment.auto_reply, "created_at": comment.created_at, "deleted": comment.deleted_at is not None,
        "times_received": comment.times_received,
    }


def rule_json(position: int, rule: Rule) -> dict[str, Any]:
    scope = "gateway" if rule.gateway else "mailbox" if rule.mailbox else "global"
    return {
        "position": position, "name": rule.name, "scope": scope, "gateway": rule.gateway,
        "mailbox": rule.mailbox, "subject": list(rule.subject), "senders": list(rule.senders),
        "recipients": list(rule.recipients), "action": rule.action, "task": rule.task, "project": rule.project,
        "assign_to": rule.assign_to, "delete_after": rule.delete_after, "stop": rule.stop,
        "editable_by_owner": rule.editable_by_owner,
    }


def gateway_json(gateway: Gateway, config: Config, task_id: int | None) -> dict[str, Any]:
    return {
        "email": gateway.email, "server": gateway.server, "protocol": gateway.protocol, "login": gateway.login,
        "smtp_login": gateway.smtp_login or gateway.login, "same_smtp_login": gateway.smtp_login is None,
        "personal_for": gateway.personal_for,
        **{flag: getattr(gateway, flag) for flag in GATEWAY_FLAGS},
        "import_since": gateway.import_since.isoformat() if gateway.import_since else None,
        "password_from": "file" if gateway.password_file else "config",
        "task": task_id,
    }


def server_json(server: Server, config: Config) -> dict[str, Any]:
    def ep(e: Endpoint | None) -> str | None:
        return None if e is None else str(e)

    return {
        "name": server.name, "imap": ep(server.imap), "pop3": ep(server.pop3), "smtp": ep(server.smtp),
        "verify_certificate": server.verify_certificate, "ssl": server.ssl, "security": server.security,
        "files_sent_mail": server.files_sent_mail, "preset": server.preset,
        "used_by": [g.email for g in config.gateways if g.server == server.name],
    }


def entry_json(entry: OutboundEntry) -> dict[str, Any]:
    return {
        "id": entry.id, "state": entry.state, "created_at": entry.created_at, "sender": entry.sender,
        "envelope_from": entry.envelope_from, "route": entry.route, "task": entry.task_id,
        "submitted_by": entry.submitted_by, "attempts": entry.attempts,
        "next_attempt": _when(entry.next_attempt) if entry.state == "queued" else None,
        "expires_at": _when(entry.expires_at), "last_error": entry.last_error, "sent_folder": entry.sent_folder,
        "recipients": [{"address": r.address, "state": r.state, "reply": r.reply, "local": r.local}
                       for r in entry.recipients],
    }


def mailbox_json(mailbox: Mailbox, config: Config, task_id: int | None) -> dict[str, Any]:
    return {"login": mailbox.login, "address": mailbox.address(config.daemon.domain), "owner": mailbox.owner,
            "kind": "personal" if mailbox.owner else "corporate", "task": task_id, "users": list(mailbox.users)}


def organisation_json(organisation: Organisation, counts: dict[str, int]) -> dict[str, Any]:
    """`counts`: users, projects, tasks (the store's), mailboxes, gateways, rules (its settings')."""
    return {
        "slug": organisation.slug, "name": organisation.name, "owner": organisation.owner,
        "file_managed": organisation.file_managed, "domains": list(organisation.domains),
        "users": counts["users"], "mailboxes": counts["mailboxes"], "gateways": counts["gateways"],
        "rules": counts["rules"], "projects": counts["projects"], "tasks": counts["tasks"],
    }


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")
