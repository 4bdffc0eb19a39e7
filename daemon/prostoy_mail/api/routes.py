"""The endpoints: sessions, organisations and what is in one (users, servers, mailboxes,
gateways, rules, tasks and their comments). Each says who may call it (`Who:` in its
description, enforced by auth.organisation_for / admin_only)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from ..auth.login_guard import Outcome
from ..auth.password_hashes import hash_password
from ..config.model import Config, Gateway
from ..errors import NotFound, ProstoyMailError
from ..operations.organisations import organisation_counts
from ..provisioning import delete_comment as remove_comment
from ..store.ports import Event, Organisation, Task
from ..views import (
    gateway_json,
    mailbox_json,
    organisation_json,
    rule_json,
    server_json,
    task_json,
    user_json,
)
from ..visibility import may_see_gateway, may_see_mailbox, visible_tasks
from .auth import Caller, Role, admin_only, caller, context_of, organisation_for, token_digest
from .context import ApiContext
from .events import stream
from .models import (
    CommentOut,
    GatewayOut,
    MailboxOut,
    Me,
    OrganisationIn,
    OrganisationOut,
    RuleOut,
    ServerOut,
    SessionIn,
    SessionOut,
    TaskOut,
    UserOut,
)
from .problems import MEDIA_TYPE, ApiError, Problem, forbidden, not_found

router = APIRouter(prefix="/api/v1")
Who = Annotated[Caller, Depends(caller)]
EVERYONE: tuple[Role, ...] = ("owner", "employee")


async def _context(request: Request) -> ApiContext:
    # (async, as every dependency and route: FastAPI runs a plain `def` in a thread pool, a hop
    # that cost a read of 50 comments a tenth of its time; tests/unit/test_api_models.py checks)
    return context_of(request)


Context = Annotated[ApiContext, Depends(_context)]


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


# --- sessions ---------------------------------------------------------------------------------


@router.post("/sessions", response_model=SessionOut, status_code=201, tags=["sessions"],
             responses={429: {"model": Problem, "content": {MEDIA_TYPE: {}},
                              "description": "Too many failed logins from this address"}},
             description="Who: anyone with a login and password. The same throttle as IMAP and submission: "
                         "after failures from one address each try waits longer, then the login is refused "
                         "from there for a while (429).")
async def create_session(body: SessionIn, request: Request, context: Context) -> dict[str, Any]:
    address = request.client.host if request.client is not None else "unknown"
    outcome = await context.guard.check(address, body.login, body.password)
    if outcome is Outcome.BLOCKED:
        raise ApiError(429, "login-blocked", "Too many failed logins",
                       "too many failed logins from this address; try again later")
    user = context.reader.user_by_login(body.login) if outcome is Outcome.OK else None
    if user is None:
        raise ApiError(401, "login-failed", "Login failed", "wrong login or password")
    token = secrets.token_urlsafe(32)
    lifetime = context.config().api.session_lifetime
    expires = await context.writer.run(lambda store: store.add_session(user.id, token_digest(token), lifetime))
    organisation = context.reader.organisation_by_id(user.org_id)
    return {"token": token, "expires_at": _iso(expires), "login": user.login, "organisation": organisation.slug,
            "role": "owner" if user.is_owner else "employee"}


@router.delete("/sessions/current", status_code=204, tags=["sessions"],
               description="Who: a user with a session. The token stops working at once.")
async def end_session(who: Who, context: Context) -> Response:
    if who.user is None:
        raise forbidden("the admin token is not a session; change [api] admin_token_file to revoke it")
    digest = who.token_sha256
    await context.writer.run(lambda store: store.remove_session(digest))
    return Response(status_code=204)


@router.get("/me", response_model=Me, tags=["sessions"], description="Who: anyone with a token.")
async def me(who: Who, context: Context) -> dict[str, Any]:
    organisation = None if who.org_id is None else context.reader.organisation_by_id(who.org_id).slug
    return {"role": who.role, "login": who.user.login if who.user else None, "organisation": organisation}


# --- organisations -----------------------------------------------------------------------------


def _organisation_view(context: ApiContext, organisation: Organisation) -> dict[str, Any]:
    return organisation_json(organisation, organisation_counts(context.reader, organisation, context.config()))


@router.get("/organisations", response_model=list[OrganisationOut], tags=["organisations"],
            description="Who: the admin (every organisation); a user (their own).")
async def list_organisations(who: Who, context: Context) -> list[dict[str, Any]]:
    organisations = context.reader.list_organisations()
    if who.role != "admin":
        organisations = [o for o in organisations if o.id == who.org_id]
    return [_organisation_view(context, o) for o in organisations]


@router.post("/organisations", response_model=OrganisationOut, status_code=201, tags=["organisations"],
             description="Who: the admin. A new organisation (it lives in the store) and its owner.")
async def create_organisation(body: OrganisationIn, who: Who, context: Context) -> dict[str, Any]:
    admin_only(who)
    password = await asyncio.to_thread(hash_password, body.owner_password) if body.owner_password else None

    def job(store: Any) -> Organisation:
        with store.transaction():
            organisation = store.add_organisation(body.slug, body.name.strip() or body.slug)
            with store.acting_for(organisation.id):
                store.add_user(body.owner, body.owner_name or body.owner, password, True)
            return store.organisation_by_id(organisation.id)  # type: ignore[no-any-return]

    organisation = await context.writer.run(job)
    return _organisation_view(context, organisation)


@router.get("/organisations/{slug}", response_model=OrganisationOut, tags=["organisations"],
            description="Who: the admin; a user of that organisation.")
async def get_organisation(slug: str, who: Who, context: Context) -> dict[str, Any]:
    return _organisation_view(context, organisation_for(context, who, slug, *EVERYONE))


# --- what is in an organisation ------------------------------------------------------------------


def _member(context: ApiContext, who: Caller, slug: str) -> tuple[Organisation, Config]:
    organisation = organisation_for(context, who, slug, *EVERYONE)
    return organisation, context.settings_of(organisation.id)


@router.get("/organisations/{slug}/users", response_model=list[UserOut], tags=["users"],
            description="Who: the admin; a user of that organisation (colleagues are seen).")
async def list_users(slug: str, who: Who, context: Context) -> list[dict[str, Any]]:
    organisation, _ = _member(context, who, slug)
    with context.reader.acting_for(organisation.id):
        return [user_json(u) for u in context.reader.list_users()]


@router.get("/organisations/{slug}/servers", response_model=list[ServerOut], tags=["servers"],
            description="Who: the admin; a user of that organisation. `hide_unused`: only the servers a gateway "
                        "uses (the page's \"Скрыть сервера без почтовых ящиков\").")
async def list_servers(slug: str, who: Who, context: Context,
                       hide_unused: Annotated[bool, Query()] = False) -> list[dict[str, Any]]:
    _, settings = _member(context, who, slug)
    rows = [server_json(s, settings) for s in settings.servers]
    return [r for r in rows if r["used_by"]] if hide_unused else rows


@router.get("/organisations/{slug}/mailboxes", response_model=list[MailboxOut], tags=["mailboxes"],
            description="Who: the admin and the owner (every mailbox); an employee (their personal ones and the "
                        "corporate ones open to them).")
async def list_mailboxes(slug: str, who: Who, context: Context) -> list[dict[str, Any]]:
    _, settings = _member(context, who, slug)
    rows = []
    for mailbox in settings.mailboxes:
        if who.user is not None and not may_see_mailbox(who.user, mailbox):
            continue
        task = context.reader.task_for_source(f"mailbox:{mailbox.login}")
        rows.append(mailbox_json(mailbox, settings, task.id if task else None))
    return rows


@router.get("/organisations/{slug}/gateways", response_model=list[GatewayOut], tags=["gateways"],
            description="Who: the admin and the owner (every gateway); an employee (their personal ones and the "
                        "corporate ones open to them). Passwords are never shown.")
async def list_gateways(slug: str, who: Who, context: Context) -> list[dict[str, Any]]:
    _, settings = _member(context, who, slug)
    return [gateway_row(context, settings, gateway) for gateway in settings.gateways
            if who.user is None or may_see_gateway(who.user, gateway)]


def gateway_row(context: ApiContext, settings: Config, gateway: Gateway) -> dict[str, Any]:
    """A gateway as `gateway list --json` shows it, with its fetching's state."""
    task = context.reader.task_for_source(f"gateway:{gateway.email}")
    state = context.reader.gateway_state(gateway.email)
    return {**gateway_json(gateway, settings, task.id if task else None),
            "state": state.state if state else None, "failed_step": state.failed_step if state else None,
            "last_success": state.last_success if state else None,
            "last_error": state.last_error if state else None,
            "last_error_at": state.last_error_at if state else None,
            "next_attempt": state.next_attempt if state else None,
            "failures": state.failures if state else 0,
            "position": f"{state.folder} UID {state.last_uid}" if state and state.folder else None}


@router.get("/organisations/{slug}/rules", response_model=list[RuleOut], tags=["rules"],
            description="Who: the admin and the owner (every rule, in order); an employee (the rules of their "
                        "personal mailboxes and gateways; never the global ones).")
async def list_rules(slug: str, who: Who, context: Context) -> list[dict[str, Any]]:
    _, settings = _member(context, who, slug)
    rows = [rule_json(i, r) for i, r in enumerate(settings.rules, 1)]
    if who.role == "employee":
        assert who.user is not None
        login = who.user.login
        own = {m.login for m in settings.mailboxes if m.owner == login}
        own_gateways = {g.email for g in settings.gateways if g.personal_for == login}
        rows = [r for r in rows if r["mailbox"] in own or r["gateway"] in own_gateways]
    return rows


@router.get("/organisations/{slug}/rules/{name}", response_model=RuleOut, tags=["rules"],
            description="Who: as for the list.")
async def get_rule(slug: str, name: str, who: Who, context: Context) -> dict[str, Any]:
    for rule in await list_rules(slug, who, context):
        if rule["name"] == name:
            return rule
    raise not_found(f'no rule "{name}"')


@router.get("/organisations/{slug}/events", tags=["events"], response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-sent events: `id`, `event` (its type) and `data` (the event's "
                                            "JSON: id, type, organisation, created_at, object)"}},
            description="Who: the admin and the owner, every event; an employee, those of what they see (comments "
                        "and outbound mail of tasks they see, their gateways' states). A server-sent-events stream "
                        "of the organisation's events (comment.created, gateway.state, message.quarantined, "
                        "outbound.state), each written with its cause. Resumable: `Last-Event-ID` (or `?after=ID`) "
                        "gives what came after it first; without one, events from now on. A client too slow to "
                        "read them is disconnected (it resumes with its Last-Event-ID).")
async def events(slug: str, who: Who, context: Context,
                 last_event_id: Annotated[int | None, Header(ge=0)] = None,
                 after: Annotated[int | None, Query(ge=0)] = None) -> StreamingResponse:
    organisation = organisation_for(context, who, slug, *EVERYONE)
    start = last_event_id if last_event_id is not None else after
    allow = None if who.role != "employee" else partial(_employee_hears, context, who, organisation.id)
    return StreamingResponse(stream(context.hub, organisation.id, organisation.slug, start, allow),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache",
                                                                      "X-Accel-Buffering": "no"})


def _employee_hears(context: ApiContext, who: Caller, org_id: int, event: Event) -> bool:
    """Whether an employee hears of an event: of a task they see (a comment, outbound mail), of a
    gateway they see; never of the quarantine (the owner's)."""
    assert who.user is not None
    settings = context.settings_of(org_id)
    try:
        if event.type == "gateway.state" and event.data is not None:
            gateway = settings.gateway(str(event.data.get("gateway")))
            return gateway is not None and may_see_gateway(who.user, gateway)
        if event.object_id is None:
            return False
        if event.type == "comment.created":
            task_id: int | None = context.reader.get_comment(event.object_id).task_id
        elif event.type == "outbound.state":
            task_id = context.reader.get_outbound(event.object_id).task_id
        else:
            return False
        if task_id is None:
            return False
        return bool(visible_tasks(who.user, settings, [context.reader.get_task(task_id)]))
    except ProstoyMailError:  # (gone since)
        return False


def tasks_they_see(context: ApiContext, who: Caller, organisation: Organisation, settings: Config) -> list[Task]:
    """The organisation's tasks the caller sees: every one (the admin, the owner), or an
    employee's (visibility.py, as over IMAP)."""
    tasks = context.reader.list_tasks(org_id=organisation.id)
    return tasks if who.user is None else visible_tasks(who.user, settings, tasks)


def task_they_see(context: ApiContext, who: Caller, organisation: Organisation, settings: Config,
                  task_id: int, name: str | None = None) -> Task:
    """The task; 404 (as for one that does not exist) unless the caller sees it."""
    try:
        with context.reader.acting_for(organisation.id):
            task = context.reader.get_task(task_id)
    except NotFound:
        task = None
    if task is None or (who.user is not None and not visible_tasks(who.user, settings, [task])):
        raise not_found(f'no task "{name}"' if name is not None else f"no task {task_id}")
    return task


@router.get("/organisations/{slug}/tasks", response_model=list[TaskOut], tags=["tasks"],
            description="Who: the admin and the owner (every task); an employee (what they see over IMAP: not "
                        "other people's personal tasks, nor those of mailboxes and gateways closed to them).")
async def list_tasks(slug: str, who: Who, context: Context) -> list[dict[str, Any]]:
    organisation, settings = _member(context, who, slug)
    return [task_json(t) for t in tasks_they_see(context, who, organisation, settings)]


@router.get("/organisations/{slug}/tasks/{task_id}/comments", response_model=list[CommentOut], tags=["tasks"],
            description="Who: as for the tasks. Newest first; `before`: the id of the last comment of the page "
                        "before; `since`: created at this ISO 8601 time or later.")
async def list_comments(slug: str, task_id: int, who: Who, context: Context,
                        before: Annotated[int | None, Query(ge=1)] = None,
                        since: Annotated[datetime | None, Query()] = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    organisation, settings = _member(context, who, slug)
    task_they_see(context, who, organisation, settings, task_id)
    since_text = None if since is None else since.astimezone(UTC).isoformat(timespec="seconds")
    with context.reader.acting_for(organisation.id):
        page = context.comments.page(context.reader, task_id, before, since_text, limit)
    # (sent as rendered: views.comment_json's rows, held to CommentOut by tests/unit/test_api_models.py
    # and to the document by the fuzzer, not validated again on the way out)
    return Response(page, media_type="application/json")


@router.delete("/organisations/{slug}/comments/{comment_id}", status_code=204, tags=["tasks"],
               description="Who: the admin and the owner. The comment is deleted (a tombstone keeps the same "
                           "message from coming back) and, where its gateway has delete_on_server_when_deleted, "
                           "its message on the external server too (by the gateway's watcher).")
async def delete_comment(slug: str, comment_id: int, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    settings = context.settings_of(organisation.id)

    await context.acting_for(organisation.id, lambda store: remove_comment(settings, store, comment_id))
    return Response(status_code=204)
