"""An organisation's projects, tasks, own domains and limits through the API: what the command
line's `project`, `task add/show`, `domain` and `org limits` do (operations/domains.py and
operations/organisations.py hold their rules for both)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..operations.domains import check_removable, domain_name
from ..operations.organisations import limit_changes, limit_rows
from ..operations.workspace import record_settings_change
from ..store.ports import Organisation
from ..views import task_json
from .auth import organisation_for
from .models import DomainIn, DomainOut, LimitsOut, LimitsPatch, ProjectIn, ProjectOut, TaskIn, TaskOut
from .problems import not_found
from .routes import EVERYONE, Context, Who, task_they_see

router = APIRouter(prefix="/api/v1")


@router.get("/organisations/{slug}/projects", response_model=list[ProjectOut], tags=["tasks"],
            description="Who: the admin; a user of that organisation.")
async def list_projects(slug: str, who: Who, context: Context) -> list[dict[str, Any]]:
    organisation = organisation_for(context, who, slug, *EVERYONE)
    with context.reader.acting_for(organisation.id):
        return [{"id": p.id, "name": p.name} for p in context.reader.list_projects()]


@router.post("/organisations/{slug}/projects", response_model=ProjectOut, status_code=201, tags=["tasks"],
             description="Who: the admin and the owner. A name is unique in the organisation and holds no \"/\".")
async def create_project(slug: str, body: ProjectIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    project = await context.acting_for(organisation.id, lambda store: store.add_project(body.name))
    return {"id": project.id, "name": project.name}


@router.post("/organisations/{slug}/tasks", response_model=TaskOut, status_code=201, tags=["tasks"],
             description="Who: the admin and the owner. In a project that exists; `assignee`: a user's login.")
async def create_task(slug: str, body: TaskIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    task = await context.acting_for(organisation.id,
                                    lambda store: store.add_task(body.project, body.title, body.assignee))
    return task_json(task)


@router.get("/organisations/{slug}/tasks/{task_id}", response_model=TaskOut, tags=["tasks"],
            description="Who: as for the tasks (an employee: one they see over IMAP).")
async def get_task(slug: str, task_id: int, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, *EVERYONE)
    return task_json(task_they_see(context, who, organisation, context.settings_of(organisation.id), task_id))


def _domains(organisation: Organisation) -> list[dict[str, str]]:
    return [{"domain": domain, "org": organisation.slug} for domain in organisation.domains]


@router.get("/organisations/{slug}/domains", response_model=list[DomainOut], tags=["organisations"],
            description="Who: the admin and the owner. The organisation's own mail domains (the MX takes their "
                        "mail); its mailboxes there are LOGIN@DOMAIN.")
async def list_domains(slug: str, who: Who, context: Context) -> list[dict[str, str]]:
    return _domains(organisation_for(context, who, slug, "owner"))


@router.post("/organisations/{slug}/domains", response_model=DomainOut, status_code=201, tags=["organisations"],
             description="Who: the admin and the owner. Its MX pointed at this server; a domain belongs to one "
                         "organisation (409 when another has it); never the shared domain. In effect when answered.")
async def add_domain(slug: str, body: DomainIn, who: Who, context: Context) -> dict[str, str]:
    organisation = organisation_for(context, who, slug, "owner")
    domain = domain_name(body.domain, context.config().daemon.domain)

    def job(store: Any) -> int:
        store.add_domain(domain, organisation.id)
        return record_settings_change(store, organisation)

    await context.apply(await context.writer.run(job))
    return {"domain": domain, "org": organisation.slug}


@router.delete("/organisations/{slug}/domains/{domain}", status_code=204, tags=["organisations"],
               description="Who: the admin and the owner. Not while mailboxes are on it (409, naming them).")
async def remove_domain(slug: str, domain: str, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    name = domain_name(domain, context.config().daemon.domain)
    if name not in organisation.domains:
        raise not_found(f"no domain {name}")
    check_removable(name, organisation, context.settings_of(organisation.id))

    def job(store: Any) -> int:
        store.remove_domain(name)
        return record_settings_change(store, organisation)

    await context.apply(await context.writer.run(job))
    return Response(status_code=204)


@router.get("/organisations/{slug}/limits", response_model=LimitsOut, tags=["organisations"],
            description="Who: the admin and the owner. Each limit, whether it is the organisation's own, and what "
                        "it uses of it.")
async def get_limits(slug: str, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    return limit_rows(context.reader, organisation, context.config())


@router.patch("/organisations/{slug}/limits", response_model=LimitsOut, tags=["organisations"],
              description="Who: the admin. A number sets the organisation's own limit, null takes it back to the "
                          "installation's [limits]; what is over a new limit stays, and no more is added.")
async def set_limits(slug: str, body: LimitsPatch, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug)  # (another organisation's: 404; its own users: 403)
    changes = limit_changes({name: getattr(body, name) for name in body.model_fields_set})
    if changes:
        await context.writer.run(lambda store: store.set_limit_overrides(organisation.id, changes))
    return limit_rows(context.reader, organisation, context.config())
