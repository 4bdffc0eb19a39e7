"""Sending a plain-text message from a task (`task send`, the API's tasks/{id}/send): it becomes
the task's outgoing comment, gets a signed Message-ID, and replies come back to the task."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..config.model import Config
from ..errors import Invalid, ProstoyMailError
from ..intake import REPLY_TOKEN_SECRET
from ..mail.compose import new_message
from ..mail.tokens import TaskTokens
from ..outbound.submit import Queued, enqueue_now
from ..provisioning import build_routing_table
from ..sending_policy import SendingPolicy, Submission
from ..store.roles import SendingStore

_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Outgoing:
    sender: str  # an address of the organisation's mailboxes or gateways
    to: Sequence[str]
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    subject: str = ""
    body: str = ""
    in_reply_to: str | None = None  # a Message-ID, with or without <>

    def check(self) -> None:
        """Invalid for a value that cannot go into a header (a line break would start a new
        header: a subject "hi\\r\\nBcc: x@y") or that is not an address."""
        for name, value in (("subject", self.subject), ("in_reply_to", self.in_reply_to)):
            if value and _CONTROL.search(value):
                raise Invalid(f"{name}: a header value cannot hold a line break or another control character")
        for name, addresses in (("to", self.to), ("cc", self.cc), ("bcc", self.bcc)):
            for address in addresses:
                if not _ADDRESS.fullmatch(address):
                    raise Invalid(f"{name} {address!r}: not an e-mail address (local@domain)")
        if not self.to and not self.cc and not self.bcc:
            raise Invalid("a message needs a recipient")


def send_from_task(store: SendingStore, settings: Config, file_config: Config, org_id: int, task_id: int,
                   outgoing: Outgoing, user: str = "", peer: str = "command line") -> Queued:
    """Queue the message (the store acting for `org_id`; `settings` its settings)."""
    outgoing.check()
    policy = SendingPolicy.of(settings, org_id, relay=file_config.relay is not None)
    sender = policy.sender(outgoing.sender)
    if sender is None:
        known = ", ".join(sorted(policy.senders)) or "none configured"
        raise ProstoyMailError(f"--from {outgoing.sender}: not a domain mailbox or gateway here (known: {known})")
    if user and not sender.allowed_for(user, org_id):
        raise Invalid(f"{user} may not send as {sender.address}")
    message_id = outgoing.in_reply_to.strip("<>") if outgoing.in_reply_to else None
    raw = new_message(sender=sender.address, sender_name="", to=list(outgoing.to), cc=list(outgoing.cc),
                      subject=outgoing.subject, body=outgoing.body, in_reply_to=message_id,
                      references=[message_id] if message_id else ())
    table = build_routing_table(settings, store, org_id=org_id)  # (the organisation's alone)
    tokens = TaskTokens(store.secret(REPLY_TOKEN_SECRET))
    recipients = tuple(dict.fromkeys([*outgoing.to, *outgoing.cc, *outgoing.bcc]))
    with store.transaction():
        return enqueue_now(store, tokens, table, file_config, policy,
                           Submission(raw, sender.address, recipients, user=user, peer=peer, task_id=task_id))
