"""Gateways through the API: made, changed, removed, and the Test button (on saved settings,
and on settings not saved yet). operations/gateways.py does the changes, fetch/probe.py the
Test (in a thread: it talks to the external server).

Who: the admin and the owner, every gateway. An employee may change their personal gateway's
password and options (not its server, login, owner) and press Test on it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from ..config.model import Config, Gateway
from ..fetch.probe import Step, probe_fetching, probe_sending
from ..operations.gateways import GatewayChange, add_gateway, edit_gateway, remove_gateway
from ..views import GATEWAY_FLAGS
from .auth import Caller, organisation_for
from .models import GatewayIn, GatewayOut, GatewayPatch, GatewayVerifyIn, TestOut
from .problems import forbidden, not_found
from .routes import EVERYONE, Context, Who, gateway_row
from .settings import change_settings

router = APIRouter(prefix="/api/v1")
EMPLOYEE_MAY_CHANGE = {"password", "smtp_login", "smtp_password", "same_smtp_login", "import_since", *GATEWAY_FLAGS}


def _change(body: GatewayIn | GatewayPatch) -> GatewayChange:
    given = body.model_fields_set if isinstance(body, GatewayPatch) else set(type(body).model_fields)
    return GatewayChange(
        server=body.server if "server" in given else None, protocol=body.protocol if "protocol" in given else None,
        login=body.login if "login" in given else None, password=body.password if "password" in given else None,
        smtp_login=body.smtp_login if "smtp_login" in given else None,
        smtp_password=body.smtp_password if "smtp_password" in given else None,
        same_smtp_login=bool(getattr(body, "same_smtp_login", False)),
        personal_for=body.personal_for if "personal_for" in given else None,
        flags={flag: value for flag in GATEWAY_FLAGS if flag in given and (value := getattr(body, flag)) is not None},
        import_since=body.import_since if "import_since" in given else None)


def _visible_gateway(who: Caller, settings: Config, email: str) -> Gateway:
    gateway = settings.gateway(email.lower())
    if gateway is None:
        raise not_found(f'no gateway "{email}"')
    if who.role == "employee":
        assert who.user is not None
        if gateway.personal_for != who.user.login:  # (theirs only: others' are not there)
            raise not_found(f'no gateway "{email}"')
    return gateway


async def _test(settings: Config, gateway: Gateway, smtp: bool) -> dict[str, Any]:
    server = settings.server(gateway.server)
    if server is None:
        raise not_found(f'no server "{gateway.server}"')

    def run() -> list[Step]:
        steps = probe_fetching(gateway, server)
        return steps + probe_sending(gateway, server) if smtp else steps

    steps = await asyncio.to_thread(run)
    return {"ok": all(s.ok for s in steps),
            "steps": [{"protocol": s.protocol, "step": s.step, "ok": s.ok, "detail": s.detail} for s in steps]}


@router.post("/organisations/{slug}/gateways", response_model=GatewayOut, status_code=201, tags=["gateways"],
             description="Who: the admin and the owner. The gateway fetches when the answer comes.")
async def create_gateway(slug: str, body: GatewayIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    change = _change(body)
    gateway, _task = await change_settings(context, organisation,
                                           lambda workspace: add_gateway(workspace, body.email, change))
    return gateway_row(context, context.settings_of(organisation.id), gateway)


@router.patch("/organisations/{slug}/gateways/{email}", response_model=GatewayOut, tags=["gateways"],
              description="Who: the admin and the owner; an employee, their personal gateway's password and "
                          "options. A new server or login needs the password again.")
async def change_gateway(slug: str, email: str, body: GatewayPatch, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, *EVERYONE)
    _visible_gateway(who, context.settings_of(organisation.id), email)
    if who.role == "employee":
        beyond = body.model_fields_set - EMPLOYEE_MAY_CHANGE
        if beyond:
            raise forbidden(f"an employee may change their gateway's password and options only, not: "
                            f"{', '.join(sorted(beyond))}")
    change = _change(body)
    gateway = await change_settings(context, organisation, lambda workspace: edit_gateway(workspace, email, change))
    return gateway_row(context, context.settings_of(organisation.id), gateway)


@router.delete("/organisations/{slug}/gateways/{email}", status_code=204, tags=["gateways"],
               description="Who: the admin and the owner. Its watcher stops; its task and mail stay.")
async def delete_gateway(slug: str, email: str, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    _visible_gateway(who, context.settings_of(organisation.id), email)
    await change_settings(context, organisation, lambda workspace: remove_gateway(workspace, email))
    return Response(status_code=204)


@router.post("/organisations/{slug}/gateways/verify", response_model=TestOut, tags=["gateways"],
             description="Who: the admin and the owner. The Test button on settings not saved yet: DNS, connect, "
                         "TLS, login for IMAP/POP3 (and SMTP), each step with the server's own reply.")
async def verify_gateway(slug: str, body: GatewayVerifyIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    settings = context.settings_of(organisation.id)
    email = body.email.strip().lower()
    gateway = Gateway(email=email, server=body.server.strip().lower(), protocol=body.protocol,
                      login=body.login or email, password=body.password, smtp_login=body.smtp_login,
                      smtp_password=body.smtp_password)
    return await _test(settings, gateway, body.smtp)


@router.post("/organisations/{slug}/gateways/{email}/test", response_model=TestOut, tags=["gateways"],
             description="Who: the admin and the owner; an employee, on their personal gateway. The Test button on "
                         "the saved settings, as `gateway test` does it.")
async def test_gateway(slug: str, email: str, who: Who, context: Context,
                       smtp: Annotated[bool, Query(description="also try sending (SMTP)")] = True) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, *EVERYONE)
    settings = context.settings_of(organisation.id)
    gateway = _visible_gateway(who, settings, email)
    return await _test(settings, dataclasses.replace(gateway), smtp)
