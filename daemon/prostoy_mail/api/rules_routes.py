"""Creating, changing, moving and removing rules (operations/rules.py, as `rule ...` does).

Who: the admin and the organisation's owner, every rule. An employee may change a rule only
when it has `editable_by_owner` and belongs to their personal mailbox or gateway, and then its
conditions and actions only (not its name, scope, place or the flag); never a global rule;
never create or remove one. A rule an employee may not see is "not there" (404)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..config.model import Config, Rule
from ..errors import ProstoyMailError
from ..operations.rules import RuleChange, add_rule, edit_rule, move_rule, remove_rule
from ..store.ports import Organisation
from ..views import rule_json
from .auth import Caller, organisation_for
from .context import ApiContext
from .models import RuleIn, RuleOut, RulePatch
from .problems import ApiError, forbidden, not_found
from .routes import EVERYONE, Context, Who, task_they_see
from .settings import change_settings

router = APIRouter(prefix="/api/v1")
EMPLOYEE_MAY_CHANGE = {"subject", "senders", "recipients", "action", "task", "project", "assign_to",
                       "delete_after", "stop"}


def _change(body: RuleIn | RulePatch) -> RuleChange:
    given = body.model_fields_set
    if body.scope is not None and "scope" in given:
        implied = "gateway" if body.gateway else "mailbox" if body.mailbox else "global"
        if body.scope != implied and not (body.scope == "global" and isinstance(body, RulePatch)
                                          and not body.gateway and not body.mailbox):
            raise ApiError(422, "invalid", "Invalid value", f'scope "{body.scope}" does not go with the gateway '
                                                          "and mailbox given")
    action = body.action
    if action is None and "task" in given:
        action = "comment"
    if action == "comment" and body.task is None:
        raise ApiError(422, "invalid", "Invalid value", 'action "comment" needs the task it comments on')
    if action == "new_task" and not body.project:
        raise ApiError(422, "invalid", "Invalid value", 'action "new_task" needs the project its tasks open in')
    return RuleChange(
        gateway=body.gateway if "gateway" in given and body.gateway else None,
        mailbox=body.mailbox if "mailbox" in given and body.mailbox else None,
        make_global=body.scope == "global" and isinstance(body, RulePatch),
        subject=body.subject if "subject" in given else None, senders=body.senders if "senders" in given else None,
        recipients=body.recipients if "recipients" in given else None,
        task=str(body.task) if action == "comment" else None, new_task=body.project if action == "new_task" else None,
        ignore=action == "ignore", assign_to=(body.assign_to or "") if "assign_to" in given else None,
        delete_after=body.delete_after if "delete_after" in given else None,
        stop=body.stop if "stop" in given else None,
        editable_by_owner=body.editable_by_owner if "editable_by_owner" in given else None,
        rename=body.name if isinstance(body, RulePatch) and "name" in given else None)


def _visible_rule(who: Caller, settings: Config, name: str) -> Rule:
    """The rule, when the caller may see it (404 otherwise, as for one that does not exist)."""
    rule = settings.rule(name)
    if rule is None:
        raise not_found(f'no rule "{name}"')
    if who.role == "employee" and not _employees_own(who, settings, rule):
        raise not_found(f'no rule "{name}"')
    return rule


def _employees_own(who: Caller, settings: Config, rule: Rule) -> bool:
    assert who.user is not None
    login = who.user.login
    return ((rule.mailbox is not None and any(m.login == rule.mailbox and m.owner == login for m in settings.mailboxes))
            or (rule.gateway is not None and any(g.email == rule.gateway and g.personal_for == login
                                                for g in settings.gateways)))


def _task_they_see(context: ApiContext, who: Caller, organisation: Organisation, ref: str) -> None:
    with context.reader.acting_for(organisation.id):
        try:
            task = context.reader.resolve_task(ref)
        except ProstoyMailError:
            raise not_found(f'no task "{ref}"') from None
    task_they_see(context, who, organisation, context.settings_of(organisation.id), task.id, ref)


def _rule_view(context: ApiContext, organisation: Organisation, name: str) -> dict[str, Any]:
    settings = context.settings_of(organisation.id)
    for position, rule in enumerate(settings.rules, 1):
        if rule.name == name:
            return rule_json(position, rule)
    raise not_found(f'no rule "{name}"')  # (applied and gone meanwhile)


@router.post("/organisations/{slug}/rules", response_model=RuleOut, status_code=201, tags=["rules"],
             description="Who: the admin and the owner. The body has `rule list --json`'s fields; it is in "
                         "effect when the answer comes.")
async def create_rule(slug: str, body: RuleIn, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, "owner")
    change = _change(body)
    await change_settings(context, organisation,
                          lambda workspace: add_rule(workspace, body.name, change, body.position))
    return _rule_view(context, organisation, body.name)


@router.patch("/organisations/{slug}/rules/{name}", response_model=RuleOut, tags=["rules"],
              description="Who: the admin and the owner; an employee, for a rule of their personal mailbox or "
                          "gateway that has `editable_by_owner`, its conditions and actions only.")
async def change_rule(slug: str, name: str, body: RulePatch, who: Who, context: Context) -> dict[str, Any]:
    organisation = organisation_for(context, who, slug, *EVERYONE)
    rule = _visible_rule(who, context.settings_of(organisation.id), name)
    if who.role == "employee":
        if not rule.editable_by_owner:
            raise forbidden(f'rule "{name}" is not editable by its mailbox\'s owner (editable_by_owner)')
        beyond = body.model_fields_set - EMPLOYEE_MAY_CHANGE
        if beyond:
            raise forbidden(f"an employee may change a rule's conditions and actions only, not: "
                            f"{', '.join(sorted(beyond))}")
        if body.task is not None:  # (mail of theirs goes only where they may look)
            _task_they_see(context, who, organisation, str(body.task))
    change = _change(body)
    position = body.position

    def operation(workspace: Any) -> str:
        new_name = edit_rule(workspace, name, change) if change != RuleChange() else name
        if position is not None:
            move_rule(workspace, new_name, position)
        return new_name

    new_name = await change_settings(context, organisation, operation)
    return _rule_view(context, organisation, new_name)


@router.delete("/organisations/{slug}/rules/{name}", status_code=204, tags=["rules"],
               description="Who: the admin and the owner.")
async def delete_rule(slug: str, name: str, who: Who, context: Context) -> Response:
    organisation = organisation_for(context, who, slug, "owner")
    _visible_rule(who, context.settings_of(organisation.id), name)
    await change_settings(context, organisation, lambda workspace: remove_rule(workspace, name))
    return Response(status_code=204)
