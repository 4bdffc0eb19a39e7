"""The one path of every message into the store: SMTP (the daemon's sessions and the SMTP
workers') and fetching hand their messages here, and mail clients' submissions too.

It alone decides where a message is parsed: an SMTP worker parses a small message itself
(Delivery.parsed); a big spooled one is parsed here, in a thread, one at a time (parsed whole
it takes several times its size in memory, and in the store's writer every other message
would wait for its commit); a fetched one by its watcher; anything else in the intake, on the
writer. It counts what was routed where (metrics, the daemon's STATUS line).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING

from .config.model import Config
from .delivery import Delivery
from .intake import Accepted, Inbound, Intake, parse_spooled
from .outbound.submit import enqueue_now
from .provisioning import mailbox_source_key
from .routing.router import Decision
from .sending_policy import SendingPolicy, Submission
from .store.raw_files import RawFiles
from .store.roles import OutboundSpool, StoreJobs

if TYPE_CHECKING:
    from .metrics import Metrics


_KINDS = {"reply": "reply", "conversation": "conversation", "fallback": "fallback"}  # (else a rule's name)


class MailFunnel:
    def __init__(self, intake: Intake, spool: StoreJobs[OutboundSpool], files: RawFiles, metrics: Metrics,
                 config: Callable[[], Config], sending_policy: Callable[[], SendingPolicy],
                 sent: Callable[[], None]) -> None:
        self.intake = intake
        self.spool = spool
        self.files = files
        self.metrics = metrics
        self.config = config  # (the running configuration, as reloads replace it)
        self.sending_policy = sending_policy
        self.sent = sent  # tells the outbound runner there is mail to send
        self.big_parses = asyncio.Semaphore(1)
        self.today = date.today()
        self.routed_today = 0
        self.last_task_id: int | None = None

    async def deliver(self, delivery: Delivery) -> str:
        """A message from an SMTP session: stored and routed; its queue id for the 250."""
        parsed = delivery.parsed
        if delivery.spooled is not None and parsed is None:
            async with self.big_parses:
                parsed = await asyncio.to_thread(parse_spooled, self.files, delivery.spooled, delivery.mail_from)
        inbound = Inbound(
            raw=delivery.raw, source="smtp",
            scopes=tuple(dict.fromkeys(mailbox_source_key(r.login) for r in delivery.recipients)),
            rcpt_tos=tuple(r.address for r in delivery.recipients), mail_from=delivery.mail_from,
            peer=delivery.peer,
            address_tokens=tuple((r.login, r.token) for r in delivery.recipients if r.token),
            spooled=delivery.spooled, parsed=parsed,
        )
        accepted = await self.intake.accept(inbound)
        self._count_routed("smtp", inbound.scopes, accepted.decision)
        return str(accepted.message_db_id)

    async def accept_fetched(self, inbounds: list[Inbound]) -> list[Accepted | Exception]:
        """A batch fetched from a gateway (each already parsed by its watcher)."""
        results = await self.intake.accept_many(inbounds)
        for inbound, result in zip(inbounds, results, strict=True):
            if isinstance(result, Accepted) and not result.duplicate:
                self._count_routed("gateway", inbound.scopes, result.decision)
        return results

    async def submit(self, submission: Submission) -> int:
        """A message from a mail client (or `task send`) into the outbound spool; its queue id."""
        intake, config, policy, table = self.intake, self.config(), self.sending_policy(), self.intake.rules().table
        queued = await self.spool.run(
            lambda store: enqueue_now(store, intake.tokens, table, config, policy, submission))
        self.sent()
        return queued.entry_id

    def _count_routed(self, via: str, scopes: Sequence[str], decision: Decision) -> None:
        """Per organisation the message came to, and by kinds of routing (never by address or
        rule name: metrics.py)."""
        kinds = {_KINDS.get(name, "declined" if ": no new task" in name else "rule") for name in decision.rule_hits}
        if decision.ignored_by is not None:
            kinds.add("ignored")
        for organisation in self.intake.rules().table.organisations_of(scopes):
            self.metrics.accepted.labels(organisation, via).inc()
            for kind in kinds:
                self.metrics.routed.labels(organisation, kind).inc()
        if date.today() != self.today:
            self.today, self.routed_today = date.today(), 0
        self.routed_today += 1
        if decision.targets:
            self.last_task_id = decision.targets[0].task_id
