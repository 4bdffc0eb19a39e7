"""Fetched messages that could not be stored: tried again through the intake (`quarantine
retry`, the API's quarantine/{id}/retry)."""

from __future__ import annotations

from ..config.model import Config
from ..errors import ProstoyMailError
from ..intake import REPLY_TOKEN_SECRET, Inbound, accept_now
from ..mail.tokens import TaskTokens
from ..provisioning import build_routing_table, gateway_source_key
from ..store.roles import QuarantineStore


def retry_quarantined(store: QuarantineStore, settings: Config, org_id: int, item_id: int) -> tuple[int, list[int]]:
    """Stored now: the message's id and the tasks it went to (the store acting for `org_id`)."""
    item, raw = store.quarantined_raw(item_id)
    if settings.gateway(item.gateway) is None:
        raise ProstoyMailError(f'gateway "{item.gateway}" is no longer configured')
    table = build_routing_table(settings, store, org_id=org_id)  # (the organisation's alone)
    tokens = TaskTokens(store.secret(REPLY_TOKEN_SECRET))
    inbound = Inbound(raw=raw, source=item.gateway, scopes=(gateway_source_key(item.gateway),), peer="quarantine")
    with store.transaction():
        accepted = accept_now(store, tokens, table, inbound)
        assert accepted.message_db_id is not None
        store.release_quarantined(item.id, accepted.message_db_id)
    return accepted.message_db_id, [t.task_id for t in accepted.decision.targets]
