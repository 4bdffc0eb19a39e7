"""Mail servers through the API (operations/servers.py). Who: the admin and the owner."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..operations.servers import ServerChange, add_server, edit_server, endpoint, remove_server
from ..views import server_json
from .auth import organisation_for
from .models import ServerIn, ServerOut, ServerPatch
from .routes import Context, Who
from .settings import change_settings

router = APIRouter(prefix="/api/v1")


def _change(body: ServerIn | ServerPatch) -> ServerChange:
    return ServerChange(imap=endpoint(body.imap) if body.imap else None,
                        pop3=endpoint(body.pop3) if body.pop3 else None,
                        smtp=endpoint(body.smtp) if body.smtp else None,
                        verify_certificate=body.verify_certificate, ssl=body.ssl, security=body.security,
                        files_sent_mail=body.files_sent_mail)


@router.post("/organisations/{slug}/servers", response_model=ServerOut, status_code=201, tags=["servers"],
             description="Who: the admin and the owner.")
async def create_server(slug: str, body: ServerIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    change = _change(body)
    server = await change_settings(context, organisation, lambda workspace: add_server(workspace, body.name, change))
    return server_json(server, context.settings_of(organisation.id))


@router.patch("/organisations/{slug}/servers/{name}", response_model=ServerOut, tags=["servers"],
              description="Who: the admin and the owner. Changing a preset makes the organisation's own entry "
                          "of that name.")
async def change_server(slug: str, name: str, body: ServerPatch, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    change = _change(body)
    server = await change_settings(context, organisation, lambda workspace: edit_server(workspace, name, change))
    return server_json(server, context.settings_of(organisation.id))


@router.delete("/organisations/{slug}/servers/{name}", status_code=204, tags=["servers"],
               description="Who: the admin and the owner. A preset cannot go; a server a gateway uses is kept "
                           "(422, naming the gateway).")
async def delete_server(slug: str, name: str, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    await change_settings(context, organisation, lambda workspace: remove_server(workspace, name))
    return Response(status_code=204)
