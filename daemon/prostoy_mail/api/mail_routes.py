"""The dry run of the rules on a pasted message, and what is waiting: the outbound queue and
the quarantine. Who: the admin and the owner."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from ..operations.explain import explain_message
from ..operations.quarantine import retry_quarantined
from ..operations.sending import Outgoing, send_from_task
from ..outbound.submit import Queued
from ..views import entry_json
from .auth import organisation_for
from .models import ExplainIn, ExplainOut, OutboundOut, QuarantinedOut, RetriedOut, SendIn, SentOut
from .routes import EVERYONE, Context, Who, task_they_see

router = APIRouter(prefix="/api/v1")


@router.post("/organisations/{slug}/rules/explain", response_model=ExplainOut, tags=["rules"],
             description="Who: the admin and the owner. Which rules a pasted message matches and why, and where it "
                         "would land (as `rule explain`); nothing is stored.")
async def explain_rules(slug: str, body: ExplainIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    settings = context.settings_of(organisation.id)
    raw = body.raw.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")

    explained: dict[str, Any] = await context.acting_for(
        organisation.id, lambda store: explain_message(settings, store, organisation.id, raw, body.mailbox,
                                                       body.gateway))
    return explained


@router.get("/organisations/{slug}/queue", response_model=list[OutboundOut], tags=["queue"],
            description="Who: the admin and the owner. The organisation's outbound mail: what is being sent, each "
                        "recipient's state and last answer (`all`: also what was sent, failed or dropped).")
async def list_queue(slug: str, who: Who, context: Context,
                     all: Annotated[bool, Query()] = False) -> list[dict[str, Any]]:
    organisation = organisation_for(context, who, slug, "owner")
    with context.reader.acting_for(organisation.id):
        return [entry_json(e) for e in context.reader.list_outbound(include_finished=all)]


@router.get("/organisations/{slug}/quarantine", response_model=list[QuarantinedOut], tags=["queue"],
            description="Who: the admin and the owner. Fetched messages that could not be stored after "
                        "[fetch] max_attempts tries.")
async def list_quarantine(slug: str, who: Who, context: Context) -> list[dict[str, Any]]:
    organisation = organisation_for(context, who, slug, "owner")
    with context.reader.acting_for(organisation.id):
        return [{"id": q.id, "gateway": q.gateway, "folder": q.folder, "uid": q.uid, "size": q.size,
                 "error": q.error, "attempts": q.attempts, "created_at": q.created_at}
                for q in context.reader.list_quarantine()]


@router.post("/organisations/{slug}/tasks/{task_id}/send", response_model=SentOut, status_code=201, tags=["tasks"],
             description="Who: the admin and the owner; an employee, from a task they see and as an address they "
                         "may send as. The message becomes the task's outgoing comment with a signed Message-ID; "
                         "replies come back to the task. The daemon sends it at once.")
async def send(slug: str, task_id: int, body: SendIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, *EVERYONE)
    settings = context.settings_of(organisation.id)
    task_they_see(context, who, organisation, settings, task_id)
    outgoing = Outgoing(body.from_, body.to, body.cc, body.bcc, body.subject, body.body, body.in_reply_to)
    user = who.user.login if who.user is not None and not who.user.is_owner else ""
    file_config = context.config()

    queued: Queued = await context.acting_for(organisation.id, lambda store: send_from_task(
        store, settings, file_config, organisation.id, task_id, outgoing, user, "api"))
    context.wake_outbound()
    return {"id": queued.entry_id, "message_id": queued.message_id, "task": queued.task_id}


@router.post("/organisations/{slug}/queue/{entry_id}/retry", status_code=204, tags=["queue"],
             description="Who: the admin and the owner. Try a queued message now (a failed Sent-folder copy too).")
async def retry_queued(slug: str, entry_id: int, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    await context.acting_for(organisation.id, lambda store: store.retry_outbound(entry_id))
    context.wake_outbound()
    return Response(status_code=204)


@router.delete("/organisations/{slug}/queue/{entry_id}", status_code=204, tags=["queue"],
               description="Who: the admin and the owner. Stop sending a queued message (no bounce).")
async def drop_queued(slug: str, entry_id: int, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    await context.acting_for(organisation.id, lambda store: store.drop_outbound(entry_id))
    return Response(status_code=204)


@router.post("/organisations/{slug}/quarantine/{item_id}/retry", response_model=RetriedOut, tags=["queue"],
             description="Who: the admin and the owner. Store a quarantined message now, routed as if just "
                         "fetched; its tasks.")
async def retry_quarantine(slug: str, item_id: int, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    settings = context.settings_of(organisation.id)
    message, tasks = await context.acting_for(
        organisation.id, lambda store: retry_quarantined(store, settings, organisation.id, item_id))
    return {"message": message, "tasks": tasks}


@router.delete("/organisations/{slug}/quarantine/{item_id}", status_code=204, tags=["queue"],
               description="Who: the admin and the owner. Forget a quarantined message (it stays on its server).")
async def drop_quarantine(slug: str, item_id: int, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    await context.acting_for(organisation.id, lambda store: store.drop_quarantined(item_id))
    return Response(status_code=204)
