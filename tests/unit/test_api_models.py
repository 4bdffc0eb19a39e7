"""The API's models have exactly the command line's `--json` fields (views.py makes both)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from pydantic import BaseModel

from prostoy_mail.api import models
from prostoy_mail.config.load import parse_config
from prostoy_mail.config.model import LIMIT_NAMES
from prostoy_mail.store.ports import Comment, Organisation, Task, User
from prostoy_mail.views import (
    comment_json,
    gateway_json,
    mailbox_json,
    organisation_json,
    rule_json,
    server_json,
    task_json,
    user_json,
)
from tests.config_factory import config_text

pytestmark = pytest.mark.unit

GATEWAY_STATE = {"state", "failed_step", "last_success", "last_error", "last_error_at", "next_attempt", "failures",
                 "position"}


def fields(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def test_each_model_has_the_json_fields_of_its_kind(tmp_path: Path) -> None:
    config = parse_config(config_text(
        mailboxes=["sales"], servers=[{"name": "own.example", "imap": "imap.own.example:993"}],
        gateways=[{"email": "a@own.example", "server": "own.example", "password": "x"}],
        rules=[{"name": "r", "subject": "s", "action": "comment", "task": "1"}]), tmp_path / "pm.toml")
    user = User(1, "ivanov", "Иван", True, True, 3)
    task = Task(1, "Sales", "Invoices", None, "plain", None)
    comment = Comment(1, 1, 1, "in", None, "s", "a@b.c", "", (), (), None, "", (), "smtp", (), False, False, "t")
    organisation = Organisation(1, "main", "Main", "ivanov", True, ())
    counts = dict.fromkeys(("users", "mailboxes", "gateways", "rules", "projects", "tasks"), 0)
    assert set(user_json(user)) == fields(models.UserOut)
    assert set(task_json(task)) == fields(models.TaskOut)
    assert set(comment_json(comment)) == fields(models.CommentOut)
    assert set(rule_json(1, config.rules[0])) == fields(models.RuleOut)
    assert set(server_json(config.servers[-1], config)) == fields(models.ServerOut)
    assert set(mailbox_json(config.mailboxes[0], config, None)) == fields(models.MailboxOut)
    assert set(gateway_json(config.gateways[0], config, None)) | GATEWAY_STATE == fields(models.GatewayOut)
    assert set(organisation_json(organisation, counts)) == fields(models.OrganisationOut)
    assert fields(models.LimitsOut) == fields(models.LimitsPatch) == set(LIMIT_NAMES)
    assert all(info.annotation is models.LimitOut for info in models.LimitsOut.model_fields.values())


def test_no_route_or_dependency_hops_to_a_thread() -> None:
    """FastAPI runs a plain `def` route or dependency in its thread pool: a hop (and a tenth of a
    read's time) the API must not take. Every one is `async def` (the store's jobs go through
    its writer, not threads of FastAPI's)."""
    from typing import Any

    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    from prostoy_mail.api.app import ROUTERS

    def calls(dependant: Dependant) -> list[Any]:
        return [dependant.call, *(c for d in dependant.dependencies for c in calls(d))]

    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 40
    threaded = {f"{r.path}: {getattr(c, '__name__', c)}" for r in routes for c in calls(r.dependant)
                if c is not None and not inspect.iscoroutinefunction(c)}
    assert threaded == set()
