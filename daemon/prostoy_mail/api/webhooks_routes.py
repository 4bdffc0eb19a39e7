"""An organisation's webhooks (api/webhooks.py delivers to them). Who: the admin and the owner.
The secret is write-only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response

from ..store.ports import Webhook
from .auth import organisation_for
from .models import WebhookIn, WebhookOut, WebhookPatch
from .routes import Context, Who

router = APIRouter(prefix="/api/v1")


def _iso(unix: float | None) -> str | None:
    return None if not unix else datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "types": list(hook.types), "state": hook.state,
            "delivered_through": hook.delivered_through, "attempts": hook.attempts,
            "next_attempt": _iso(hook.next_attempt), "failing_since": _iso(hook.failing_since),
            "last_error": hook.last_error, "created_at": hook.created_at}


@router.get("/organisations/{slug}/webhooks", response_model=list[WebhookOut], tags=["webhooks"],
            description="Who: the admin and the owner.")
async def list_webhooks(slug: str, who: Who, context: Context) -> list[dict[str, Any]]:
    organisation = organisation_for(context, who, slug, "owner")
    return [webhook_json(h) for h in context.reader.list_webhooks(organisation.id)]


@router.post("/organisations/{slug}/webhooks", response_model=WebhookOut, status_code=201, tags=["webhooks"],
             description="Who: the admin and the owner. It gets the organisation's events from now on, in order, "
                         "at least once: POST with X-Prostoy-Event-Id, X-Prostoy-Timestamp and X-Prostoy-Signature "
                         "(sha256=HMAC-SHA256 under the secret of \"TIMESTAMP.BODY\").")
async def create_webhook(slug: str, body: WebhookIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    hook = await context.writer.run(lambda store: store.add_webhook(organisation.id, body.url, body.secret,
                                                                    [str(t) for t in body.types]))
    return webhook_json(hook)


@router.get("/organisations/{slug}/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"],
            description="Who: the admin and the owner.")
async def get_webhook(slug: str, webhook_id: int, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    return webhook_json(context.reader.webhook(organisation.id, webhook_id))


@router.patch("/organisations/{slug}/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"],
              description="Who: the admin and the owner. A failing webhook is tried again at once.")
async def change_webhook(slug: str, webhook_id: int, body: WebhookPatch, who: Who, context: Context
                         ) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    types = None if body.types is None else [str(t) for t in body.types]
    hook = await context.writer.run(lambda store: store.change_webhook(organisation.id, webhook_id, body.url,
                                                                       body.secret, types))
    return webhook_json(hook)


@router.delete("/organisations/{slug}/webhooks/{webhook_id}", status_code=204, tags=["webhooks"],
               description="Who: the admin and the owner.")
async def delete_webhook(slug: str, webhook_id: int, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    await context.writer.run(lambda store: store.remove_webhook(organisation.id, webhook_id))
    return Response(status_code=204)
