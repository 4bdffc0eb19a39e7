"""Domain mailboxes made and removed through the API (operations/mailboxes.py).

Who: the admin and the organisation's owner. An employee may have the owner make their
personal mailbox; they do not make mailboxes themselves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..operations.mailboxes import add_mailbox, remove_mailbox
from ..views import mailbox_json
from .auth import organisation_for
from .models import MailboxIn, MailboxOut
from .problems import not_found
from .routes import Context, Who
from .settings import change_settings

router = APIRouter(prefix="/api/v1")


@router.post("/organisations/{slug}/mailboxes", response_model=MailboxOut, status_code=201, tags=["mailboxes"],
             description="Who: the admin and the owner. Its task is made at once; mail for it is taken when the "
                         "answer comes.")
async def create_mailbox(slug: str, body: MailboxIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    mailbox, task = await change_settings(
        context, organisation, lambda workspace: add_mailbox(workspace, body.login, body.owner, body.users))
    return mailbox_json(mailbox, context.settings_of(organisation.id), task.id)


@router.delete("/organisations/{slug}/mailboxes/{login}", status_code=204, tags=["mailboxes"],
               description="Who: the admin and the owner. Its task and mail stay.")
async def delete_mailbox(slug: str, login: str, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    if context.settings_of(organisation.id).mailbox(login.lower()) is None:
        raise not_found(f'no mailbox "{login}"')
    await change_settings(context, organisation, lambda workspace: remove_mailbox(workspace, login))
    return Response(status_code=204)
