"""Fair admission of fetched mail to the store: one organisation's gateways never crowd out
another's.

Each watcher hands its batches to the intake, and the store's writer takes jobs in the order
they come. An organisation with many gateways importing a backlog (a first import with
`import_since`, a mailbox that was offline for a day) would fill that queue, and every other
organisation's new mail would wait behind it. So at most `per_organisation` batches of one
organisation are with the store at once; the rest of its batches wait here, on their own
organisation's turn, while other organisations' batches go straight through. (A watcher has
at most PIPELINE_DEPTH batches in flight anyway; this bounds an organisation, not a gateway.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..intake import Accepted, Inbound

PER_ORGANISATION = 4  # batches of one organisation with the store at once (each up to 100 messages / 4 MiB)

Accept = Callable[[list[Inbound]], Awaitable[list[Accepted | Exception]]]


class FairAdmission:
    def __init__(self, accept: Accept, per_organisation: int = PER_ORGANISATION) -> None:
        self.accept = accept
        self.per_organisation = per_organisation
        self._turns: dict[str, asyncio.Semaphore] = {}
        self._waiting: dict[str, int] = {}

    async def __call__(self, organisation: str, inbounds: list[Inbound]) -> list[Accepted | Exception]:
        turn = self._turns.get(organisation)
        if turn is None:
            turn = self._turns[organisation] = asyncio.Semaphore(self.per_organisation)
        self._waiting[organisation] = self._waiting.get(organisation, 0) + 1
        try:
            async with turn:
                return await self.accept(inbounds)
        finally:
            self._waiting[organisation] -= 1
            if not self._waiting[organisation]:  # (none in flight: forget it, the map stays small)
                del self._waiting[organisation]
                del self._turns[organisation]
