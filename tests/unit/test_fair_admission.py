"""One organisation's backlog of fetched batches does not keep another's waiting behind it."""

from __future__ import annotations

import asyncio

import pytest

from prostoy_mail.fetch.fair import FairAdmission
from prostoy_mail.intake import Accepted, Inbound

pytestmark = pytest.mark.unit


async def test_an_organisations_backlog_waits_on_its_own_turns() -> None:
    started: list[str] = []
    release = asyncio.Event()

    async def store(inbounds: list[Inbound]) -> list[Accepted | Exception]:
        started.append(inbounds[0].source)
        await release.wait()  # (the store is busy with what it holds)
        return []

    fair = FairAdmission(store, per_organisation=2)

    def batch(name: str) -> list[Inbound]:
        return [Inbound(raw=b"x", source=name, scopes=())]

    flood = [asyncio.create_task(fair("acme", batch(f"acme{i}"))) for i in range(6)]
    await asyncio.sleep(0)
    other = asyncio.create_task(fair("beta", batch("beta0")))
    for _ in range(5):
        await asyncio.sleep(0)
    # acme's third batch waits for one of its own two; beta's went straight to the store
    assert started == ["acme0", "acme1", "beta0"]
    release.set()
    await asyncio.gather(*flood, other)
    assert sorted(started) == sorted([f"acme{i}" for i in range(6)] + ["beta0"])
    assert fair._turns == {}  # (nothing in flight: nothing kept)
