"""Users, and the organisations themselves, through the API (operations/users.py; the store's
removal of an organisation, its gateways stopped first)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response

from ..auth.password_hashes import hash_password
from ..operations.users import add_user, remove_user
from ..views import user_json
from .auth import admin_only, organisation_for
from .models import PasswordIn, UserIn, UserOut
from .problems import forbidden, not_found
from .routes import EVERYONE, Context, Who
from .settings import change_settings

router = APIRouter(prefix="/api/v1")


@router.post("/organisations/{slug}/users", response_model=UserOut, status_code=201, tags=["users"],
             description="Who: the admin and the owner. A login is unique across the installation.")
async def create_user(slug: str, body: UserIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    password = await asyncio.to_thread(hash_password, body.password) if body.password else None
    user = await change_settings(
        context, organisation,
        lambda workspace: add_user(workspace, body.login, body.name or body.login, password, body.owner),
        store_only=True)
    return user_json(user)


@router.delete("/organisations/{slug}/users/{login}", status_code=204, tags=["users"],
               description="Who: the admin and the owner. Not the owner; not a user the settings still name "
                           "(409, naming where). Their personal task and its mail stay.")
async def delete_user(slug: str, login: str, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    await change_settings(context, organisation, lambda workspace: remove_user(workspace, login), store_only=True)
    return Response(status_code=204)


@router.put("/organisations/{slug}/users/{login}/password", status_code=204, tags=["users"],
            description="Who: the admin and the owner, anyone's; an employee, their own. Their sessions end.")
async def set_password(slug: str, login: str, body: PasswordIn, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, *EVERYONE)
    if who.role == "employee" and (who.user is None or who.user.login != login):
        raise forbidden("an employee may change their own password only")
    with context.reader.acting_for(organisation.id):
        if context.reader.find_user(login) is None:
            raise not_found(f'no user "{login}"')
    hashed = await asyncio.to_thread(hash_password, body.password)

    await context.acting_for(organisation.id, lambda store: store.set_password(login, hashed))
    return Response(status_code=204)


@router.delete("/organisations/{slug}", status_code=204, tags=["organisations"],
               description="Who: the admin. Its gateways are stopped first; then everything it owns goes (users, "
                           "projects, tasks, comments, domains, webhooks). The file-declared one cannot go (409).")
async def delete_organisation(slug: str, who: Who, context: Context) -> Response:
    admin_only(who)
    organisation = organisation_for(context, who, slug)
    if organisation.file_managed:
        from .settings import file_managed

        raise file_managed(organisation)

    def settings_gone(store: Any) -> int:
        store.replace_org_entries(organisation.id, {})
        return int(store.record_change("organisation", organisation.id))

    await context.apply(await context.writer.run(settings_gone))  # (its watchers stop before its data goes)

    def removed(store: Any) -> int:
        store.remove_organisation(organisation.id)
        return int(store.record_change("organisation", organisation.id))

    await context.apply(await context.writer.run(removed))
    return Response(status_code=204)
