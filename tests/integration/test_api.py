"""The management API over real HTTP: sessions, problem documents, the OpenAPI document, and
who may call what (every operation of the document, as every role)."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from prostoy_mail.auth.password_hashes import hash_password
from prostoy_mail.config.load import load_config
from prostoy_mail.daemon import Daemon
from prostoy_mail.store.ports import CommentTarget, FetchedKey, MessageRecord
from prostoy_mail.store.sqlite import SqliteStore
from tests.config_factory import LOOPBACK_ANY_PORT, config_text
from tests.sse import next_event

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-of-the-provider-0123456789"
PASSWORDS = {"ivanov": "iv-pw", "petrov": "pe-pw", "boss": "boss-pw", "clerk": "cl-pw"}
CLERKS_RULES = [{"name": f"w-{i}", "mailbox": "clerk-box", "subject": "x", "action": "comment",
                 "task": "Sales/Invoices", "editable_by_owner": True} for i in range(5)]


@dataclass
class Api:
    daemon: Daemon
    client: httpx.AsyncClient
    tokens: dict[str, str]  # role -> bearer token ("admin", "owner", "employee", "other")
    sales_task: int
    ivanov_task: int
    ids: dict[str, Any]  # made by setup(): "main_webhook", and per role "acme_webhooks", "acme_comments"

    async def login(self, login: str, password: str) -> httpx.Response:
        return await self.client.post("/api/v1/sessions", json={"login": login, "password": password})

    def as_(self, role: str) -> dict[str, str]:
        return {} if role == "none" else {"Authorization": f"Bearer {self.tokens[role]}"}


def setup(store: SqliteStore) -> tuple[int, int, dict[str, Any]]:
    store.add_user("ivanov", "Иван", hash_password(PASSWORDS["ivanov"]), is_owner=True)
    store.add_user("petrov", "Пётр", hash_password(PASSWORDS["petrov"]), is_owner=False)
    store.add_project("Sales")
    sales = store.add_task("Sales", "Invoices").id
    for number in range(1, 6):
        subject = f"invoice {number}"
        store.store_message(MessageRecord(raw=f"Subject: {subject}\r\n\r\nx\r\n".encode(), direction="in",
                                          source="smtp", subject=subject), [CommentTarget(sales, ("invoices",))])
    ivanov = store.get_user("ivanov").personal_task_id
    assert ivanov is not None
    acme = store.add_organisation("acme", "Acme").id
    with store.acting_for(acme):
        store.add_user("boss", "Boss", hash_password(PASSWORDS["boss"]), is_owner=True)
        store.add_user("clerk", "Clerk", hash_password(PASSWORDS["clerk"]), is_owner=False)
        for i in range(5):
            store.add_user(f"u-{i}", f"User {i}", None, is_owner=False)
        store.add_project("Sales")
        store.add_task("Sales", "Invoices")
    for i in range(5):
        gone = store.add_organisation(f"gone-{i}", "To be removed").id
        with store.acting_for(gone):
            store.add_user(f"gone-owner-{i}", "Owner", None, is_owner=True)
    store.replace_org_entries(acme, {"servers": [{"name": "local.test", "imap": "127.0.0.1:9", "ssl": False,
                                                  "fetch_security": "none"},
                                                 *({"name": f"srv-{i}.test", "imap": "imap.far.example:993"}
                                                   for i in range(5))],
                                     "gateways": [*({"email": f"gw-{i}@far.example", "server": "local.test",
                                                     "password": "pw", "personal_for": "clerk", "forwarding": False}
                                                    for i in range(5)),
                                                  {"email": "q@far.example", "server": "local.test", "password": "pw",
                                                   "forwarding": False}],
                                     "mailboxes": [{"login": "clerk-box", "owner": "clerk"}, {"login": "acme-desk"},
                                                   *({"login": f"w-{i}"} for i in range(5))],
                                     "rules": [*CLERKS_RULES,
                                               {"name": "locked", "mailbox": "clerk-box", "subject": "y",
                                                "action": "comment", "task": "Sales/Invoices"},
                                               {"name": "acme-global", "subject": "z", "action": "ignore",
                                                "editable_by_owner": True}]})
    hooks = [store.add_webhook(acme, f"http://127.0.0.1:9/hook{i}", "s" * 16, []).id for i in range(5)]
    for i in range(5):
        store.add_domain(f"d-{i}.example", acme)
    with store.acting_for(acme):
        acme_task = store.resolve_task("Sales/Invoices").id
        comments = [store.store_message(MessageRecord(raw=f"Subject: c{i}\r\n\r\nx\r\n".encode(), direction="in",
                                                      source="smtp", subject=f"c{i}"),
                                        [CommentTarget(acme_task, ("r",))]).comment_ids[0] for i in range(5)]
    main_hook = store.add_webhook(store.file_organisation_id(), "http://127.0.0.1:9/main", "s" * 16, []).id
    queued = []
    with store.acting_for(acme):
        store.ensure_source_task("gateway:q@far.example", "gateway", "Mail", "q@far.example", None)
        for _ in range(5):
            with store.transaction():
                sent = store.store_message(MessageRecord(raw=b"Subject: out\r\n\r\nx\r\n", direction="out",
                                                         source="smtp"), [CommentTarget(acme_task, ("task",))])
                queued.append(store.enqueue_outbound(
                    message_db_id=sent.id, task_id=acme_task, sender="acme-desk@example.test",
                    envelope_from="acme-desk@example.test", route="relay", scope="mailbox:acme-desk",
                    submitted_by="", recipients=[("x@far.example", False)], max_queue_time=3600, upload_sent=False,
                    org_id=acme))
    quarantined = [store.quarantine(FetchedKey("q@far.example", "INBOX/1", str(i)),
                                    f"Subject: q{i}\r\n\r\nx\r\n".encode(), "broken", 3) for i in range(10)]
    return sales, ivanov, {"main_webhook": main_hook, "acme_webhooks": hooks, "acme_comments": comments,
                           "acme_queue": queued, "acme_quarantine": quarantined}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    token_file = tmp_path / "admin.token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    config = tmp_path / "prostoy-mail.toml"
    config.write_text(config_text(
        listen={"smtp": LOOPBACK_ANY_PORT, "http": LOOPBACK_ANY_PORT}, smtp={"workers": 0},
        api={"admin_token_file": "admin.token"}, auth={"max_delay": 0.1, "max_failures": 5},
        mailboxes=["sales", {"login": "ivan", "owner": "ivanov"}],
        rules=[{"name": "invoices", "subject": "invoice", "action": "comment", "task": "Sales/Invoices"},
               {"name": "ivan-news", "mailbox": "ivan", "subject": "news", "action": "comment",
                "task": "Sales/Invoices", "editable_by_owner": True}]))
    store = SqliteStore(tmp_path / "store.db")
    sales, ivanov, ids = setup(store)
    store.close()
    daemon = Daemon(load_config(config))
    await daemon.start()
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port('http')}", timeout=30)
    api = Api(daemon, client, {"admin": ADMIN_TOKEN}, sales, ivanov, ids)
    try:
        for role, login in (("owner", "ivanov"), ("employee", "petrov"), ("other", "boss"), ("acme-employee", "clerk")):
            answer = await api.login(login, PASSWORDS[login])
            assert answer.status_code == 201, answer.text
            api.tokens[role] = answer.json()["token"]
        yield api
    finally:
        await client.aclose()
        await daemon.stop()


def _problem(answer: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["type"] == f"https://prostoy.biz/problems/{kind}" and body["status"] == status, body
    return body


async def test_a_session_is_had_by_login_and_password_and_ends_when_revoked(api: Api) -> None:
    wrong = await api.login("ivanov", "nope")
    assert _problem(wrong, 401, "login-failed")["detail"] == "wrong login or password"
    assert _problem(await api.login("nobody", "nope"), 401, "login-failed")["detail"] == "wrong login or password"
    answer = await api.login("ivanov", "iv-pw")
    session = answer.json()
    assert (answer.status_code, session["login"], session["organisation"], session["role"]) == (
        201, "ivanov", "main", "owner")
    mine = {"Authorization": f"Bearer {session['token']}"}
    assert (await api.client.get("/api/v1/me", headers=mine)).json() == {
        "role": "owner", "login": "ivanov", "organisation": "main"}
    store = SqliteStore(api.daemon.config.store_location())
    try:  # only the token's SHA-256 is kept
        kept = [row[0] for row in store.db.execute("SELECT token_sha256 FROM api_sessions")]
        assert session["token"] not in kept and len(kept) == 5  # (four made by the fixture)
    finally:
        store.close()
    assert (await api.client.delete("/api/v1/sessions/current", headers=mine)).status_code == 204
    _problem(await api.client.get("/api/v1/me", headers=mine), 401, "unauthenticated")
    _problem(await api.client.get("/api/v1/me"), 401, "unauthenticated")
    _problem(await api.client.get("/api/v1/me", headers={"Authorization": "Bearer made-up"}), 401,
             "unauthenticated")


async def test_bad_requests_are_problem_documents(api: Api) -> None:
    missing = await api.client.post("/api/v1/sessions", json={"login": "ivanov"})
    assert "password" in _problem(missing, 422, "invalid-request")["detail"]
    extra = await api.client.post("/api/v1/sessions", json={"login": "a", "password": "b", "role": "admin"})
    _problem(extra, 422, "invalid-request")
    _problem(await api.client.get("/api/v1/nothing-here", headers=api.as_("owner")), 404, "not-found")
    _problem(await api.client.get("/api/v1/organisations/main/tasks/abc/comments", headers=api.as_("owner")), 422,
             "invalid-request")
    taken = await api.client.post("/api/v1/organisations", headers=api.as_("admin"),
                                  json={"slug": "beta", "name": "Beta", "owner": "ivanov"})
    assert 'the login "ivanov" is taken' in _problem(taken, 422, "invalid")["detail"]
    assert (await api.client.get("/api/v1/organisations", headers=api.as_("admin"))).json()[-1]["slug"] == "main"


async def test_failed_logins_are_throttled_as_for_imap(api: Api) -> None:
    statuses = [(await api.login("petrov", "wrong")).status_code for _ in range(6)]
    assert statuses == [401, 401, 401, 401, 429, 429], statuses  # ([auth] max_failures = 5 here: the 5th blocks)
    _problem(await api.login("petrov", PASSWORDS["petrov"]), 429, "login-blocked")  # (even the right one, now)


# Who may call what: every operation of the OpenAPI document, as each role. "owner" and
# "employee" are of organisation main, "other" is acme's owner; `none`: no token.
ROLES = ("admin", "owner", "employee", "other", "none")
EXPECTED: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("GET", "/api/v1/me"): (200, 200, 200, 200, 401),
    ("GET", "/api/v1/organisations"): (200, 200, 200, 200, 401),
    ("POST", "/api/v1/organisations"): (201, 403, 403, 403, 401),
    ("GET", "/api/v1/organisations/{slug}"): (200, 200, 200, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/users"): (200, 200, 200, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/servers"): (200, 200, 200, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/mailboxes"): (200, 200, 200, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/gateways"): (200, 200, 200, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/rules"): (200, 200, 200, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/rules/{name}"): (200, 200, 404, 404, 401),  # (a global rule)
    ("GET", "/api/v1/organisations/{slug}/tasks"): (200, 200, 200, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/tasks/{task_id}/comments"): (200, 200, 200, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/events"): (200, 200, 200, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/webhooks"): (200, 200, 403, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/webhooks/{webhook_id}"): (200, 200, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/rules/explain"): (200, 200, 403, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/queue"): (200, 200, 403, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/quarantine"): (200, 200, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/tasks/{task_id}/send"): (201, 201, 201, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/tasks/{task_id}"): (200, 200, 200, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/tasks"): (201, 201, 403, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/projects"): (200, 200, 200, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/projects"): (201, 201, 403, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/domains"): (200, 200, 403, 404, 401),
    ("GET", "/api/v1/organisations/{slug}/limits"): (200, 200, 403, 404, 401),
}
NOT_BY_ROLE = {("POST", "/api/v1/sessions"), ("DELETE", "/api/v1/sessions/current")}  # (their own tests)
# Changes, in organisation acme (in the store: main's settings are the file's, 409). Roles:
# the admin, acme's owner, acme's employee (clerk, whose personal mailbox the rules w-N are
# of, editable by him), main's owner (another organisation), no token. Each role changes
# its own rule (w-0 ... w-4), so one role's success does not change what the next finds.
WRITE_ROLES = ("admin", "other", "acme-employee", "owner", "none")
WRITES: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("POST", "/api/v1/organisations/{slug}/rules"): (201, 201, 403, 404, 401),
    ("PATCH", "/api/v1/organisations/{slug}/rules/{name}"): (200, 200, 200, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}/rules/{name}"): (204, 204, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/mailboxes"): (201, 201, 403, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}/mailboxes/{login}"): (204, 204, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/servers"): (201, 201, 403, 404, 401),
    ("PATCH", "/api/v1/organisations/{slug}/servers/{name}"): (200, 200, 403, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}/servers/{name}"): (204, 204, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/gateways"): (201, 201, 403, 404, 401),
    ("PATCH", "/api/v1/organisations/{slug}/gateways/{email}"): (200, 200, 200, 404, 401),  # (clerk's own)
    ("POST", "/api/v1/organisations/{slug}/gateways/verify"): (200, 200, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/gateways/{email}/test"): (200, 200, 200, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}/gateways/{email}"): (204, 204, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/webhooks"): (201, 201, 403, 404, 401),
    ("PATCH", "/api/v1/organisations/{slug}/webhooks/{webhook_id}"): (200, 200, 403, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}/webhooks/{webhook_id}"): (204, 204, 403, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}/comments/{comment_id}"): (204, 204, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/users"): (201, 201, 403, 404, 401),
    ("PUT", "/api/v1/organisations/{slug}/users/{login}/password"): (204, 204, 403, 404, 401),  # (not clerk's own)
    ("DELETE", "/api/v1/organisations/{slug}/users/{login}"): (204, 204, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/queue/{entry_id}/retry"): (204, 204, 403, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}/queue/{entry_id}"): (204, 204, 403, 404, 401),
    ("POST", "/api/v1/organisations/{slug}/quarantine/{item_id}/retry"): (200, 200, 403, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}/quarantine/{item_id}"): (204, 204, 403, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}"): (204, 403, 403, 403, 401),  # (gone-N: an organisation each)
    ("POST", "/api/v1/organisations/{slug}/domains"): (201, 201, 403, 404, 401),
    ("DELETE", "/api/v1/organisations/{slug}/domains/{domain}"): (204, 204, 403, 404, 401),
    ("PATCH", "/api/v1/organisations/{slug}/limits"): (200, 403, 403, 404, 401),
}
BODIES = {  # (number: the role's place in WRITE_ROLES)
    ("POST", "rules"): lambda n: {"name": f"new-{n}", "action": "ignore", "subject": ["spam"]},
    ("PATCH", "rules"): lambda n: {"subject": ["changed"]},
    ("POST", "mailboxes"): lambda n: {"login": f"new-{n}"},
    ("POST", "servers"): lambda n: {"name": f"new-srv-{n}.test", "imap": "imap.far.example:993"},
    ("PATCH", "servers"): lambda n: {"ssl": False},
    ("POST", "gateways"): lambda n: {"email": f"new-gw-{n}@far.example", "server": "local.test", "password": "pw",
                                     "forwarding": False},
    ("PATCH", "gateways"): lambda n: {"mark_read": True},
    ("POST", "verify"): lambda n: {"email": "try@far.example", "server": "local.test", "password": "pw",
                                   "smtp": False},
    ("POST", "webhooks"): lambda n: {"url": f"http://127.0.0.1:9/new{n}", "secret": "s" * 16},
    ("POST", "users"): lambda n: {"login": f"new-user-{n}", "password": "new-password"},
    ("PUT", "users"): lambda n: {"password": "another-password"},
    ("PATCH", "webhooks"): lambda n: {"types": ["comment.created"]},
    ("POST", "domains"): lambda n: {"domain": f"new-{n}.example"},
    ("PATCH", "limits"): lambda n: {"rules": 600, "users": None},
}


async def test_every_operation_answers_each_role_as_the_table_says(api: Api) -> None:
    document = (await api.client.get("/api/v1/openapi.json")).json()
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert operations == set(EXPECTED) | set(WRITES) | NOT_BY_ROLE, "an operation without its row (or a stale row)"
    values = {"slug": "main", "name": "invoices", "task_id": str(api.sales_task),
              "webhook_id": str(api.ids["main_webhook"])}
    seen: dict[tuple[str, str], tuple[int, ...]] = {}
    for method, path in EXPECTED:
        url = path.format(**values)
        statuses = []
        for number, role in enumerate(ROLES):
            body: dict[str, Any] = (
                {"raw": "Subject: invoice 9\n\nhi\n"} if path.endswith("/explain")
                else {"name": f"Project {len(seen)}-{number}"} if path.endswith("/projects")
                else {"project": "Sales", "title": f"Task {number}", "assignee": "petrov"} if path.endswith("/tasks")
                else {"from": "sales@example.test", "to": ["x@far.example"], "subject": "s", "body": "b"}
                if path.endswith("/send")
                else {"slug": f"new{len(seen)}x{number}", "name": "New", "owner": f"new-owner-{len(seen)}-{number}"})
            async with api.client.stream(method, url, headers=api.as_(role),
                                         json=body if method == "POST" else None) as answer:
                statuses.append(answer.status_code)  # (the events' stream never ends: its body is not read)
                if answer.status_code >= 400:
                    assert answer.headers["content-type"] == "application/problem+json", (method, url, role)
        seen[(method, path)] = tuple(statuses)
    assert seen == EXPECTED
    written: dict[tuple[str, str], tuple[int, ...]] = {}
    for method, path in WRITES:
        statuses = []
        for number, role in enumerate(WRITE_ROLES):
            url = path.format(slug="acme" if path.count("/") > 4 else f"gone-{number}",
                              name=f"srv-{number}.test" if "/servers/" in path else f"w-{number}",
                              login=f"u-{number}" if "/users/" in path else f"w-{number}",
                              email=f"gw-{number}@far.example", domain=f"d-{number}.example",
                              webhook_id=api.ids["acme_webhooks"][number],
                              comment_id=api.ids["acme_comments"][number], entry_id=api.ids["acme_queue"][number],
                              item_id=api.ids["acme_quarantine"][number + (5 if method == "DELETE" else 0)])
            kind = [*path.split("/"), ""][5] if "verify" not in path else "verify"  # (rules, servers, ...)
            make = BODIES.get((method, kind))
            body = make(number) if make is not None else None
            answer = await api.client.request(method, url, headers=api.as_(role), json=body)
            statuses.append(answer.status_code)
            if answer.status_code >= 400:
                assert answer.headers["content-type"] == "application/problem+json", (method, url, role)
        written[(method, path)] = tuple(statuses)
    assert written == WRITES


async def test_rules_are_made_changed_moved_and_removed_live(api: Api) -> None:
    url = "/api/v1/organisations/acme/rules"
    owner = api.as_("other")  # (acme's owner)
    made = await api.client.post(url, headers=owner, json={
        "name": "invoices", "mailbox": "acme-desk", "subject": ["invoice", "счёт"], "action": "comment",
        "task": "Sales/Invoices", "position": 1})
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in ("position", "name", "scope", "mailbox", "subject", "task")} == {
        "position": 1, "name": "invoices", "scope": "mailbox", "mailbox": "acme-desk",
        "subject": ["invoice", "счёт"], "task": "Sales/Invoices"}
    # in effect when the answer came: the daemon routes by it now
    scope = api.daemon.running.intake.table.scopes["mailbox:acme-desk"] if api.daemon.running else None
    assert scope is not None and [r.name for r in scope.rules] == ["invoices"]
    moved = await api.client.patch(f"{url}/invoices", headers=owner, json={"position": 3, "name": "bills"})
    assert (moved.status_code, moved.json()["position"], moved.json()["name"]) == (200, 3, "bills"), moved.text
    assert [r["name"] for r in (await api.client.get(url, headers=owner)).json()][:4] == ["w-0", "w-1", "bills",
                                                                                          "w-2"]
    taken = await api.client.post(url, headers=owner, json={"name": "bills", "action": "ignore"})
    _problem(taken, 409, "conflict")
    no_task = await api.client.post(url, headers=owner, json={"name": "x", "action": "comment", "task": "Nope/No"})
    assert 'no task "Nope/No"' in _problem(no_task, 404, "not-found")["detail"]
    file_managed = await api.client.post("/api/v1/organisations/main/rules", headers=api.as_("admin"),
                                         json={"name": "x", "action": "ignore"})
    assert "declared by the daemon's configuration file" in _problem(file_managed, 409, "file-managed")["detail"]
    assert (await api.client.delete(f"{url}/bills", headers=owner)).status_code == 204
    assert "bills" not in [r["name"] for r in (await api.client.get(url, headers=owner)).json()]


async def test_a_mailbox_made_through_the_api_takes_mail_when_the_answer_comes(api: Api) -> None:
    url = "/api/v1/organisations/acme/mailboxes"
    made = await api.client.post(url, headers=api.as_("other"), json={"login": "Orders"})
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in ("login", "address", "kind")} == {
        "login": "orders", "address": "orders@example.test", "kind": "corporate"}

    def send() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", api.daemon.bound_port("smtp"), timeout=30) as client:
            return client.sendmail("a@far.example", ["orders@example.test"], b"Subject: first order\r\n\r\nhi\r\n")

    assert await asyncio.to_thread(send) == {}
    task = made.json()["task"]
    comments = await api.client.get(f"/api/v1/organisations/acme/tasks/{task}/comments", headers=api.as_("other"))
    assert [c["subject"] for c in comments.json()] == ["first order"]
    for login, kind, status in (("sales", "invalid-settings", 422), ("bad login!", "invalid", 422),
                                ("orders", "conflict", 409)):
        again = await api.client.post(url, headers=api.as_("other"), json={"login": login})
        _problem(again, status, kind)  # (sales: main's; a bad login; one it has)
    _problem(await api.client.delete(f"{url}/nope", headers=api.as_("other")), 404, "not-found")


async def test_an_employee_changes_conditions_and_actions_of_their_own_editable_rules_only(api: Api) -> None:
    url = "/api/v1/organisations/acme/rules"
    clerk = api.as_("acme-employee")
    assert [r["name"] for r in (await api.client.get(url, headers=clerk)).json()] == [
        "w-0", "w-1", "w-2", "w-3", "w-4", "locked"]  # (his mailbox's; never the global one)
    changed = await api.client.patch(f"{url}/w-0", headers=clerk, json={"subject": ["отчёт"], "stop": True})
    assert (changed.status_code, changed.json()["subject"], changed.json()["stop"]) == (200, ["отчёт"], True)
    for body, field in (({"name": "mine"}, "name"), ({"editable_by_owner": False}, "editable_by_owner"),
                        ({"scope": "global"}, "scope"), ({"mailbox": "acme-desk"}, "mailbox"),
                        ({"position": 1}, "position")):
        refused = await api.client.patch(f"{url}/w-1", headers=clerk, json=body)
        assert field in _problem(refused, 403, "forbidden")["detail"], body
    _problem(await api.client.patch(f"{url}/locked", headers=clerk, json={"subject": ["a"]}), 403, "forbidden")
    _problem(await api.client.patch(f"{url}/acme-global", headers=clerk, json={"subject": ["a"]}), 404,
             "not-found")
    _problem(await api.client.post(url, headers=clerk, json={"name": "n", "action": "ignore"}), 403, "forbidden")




async def test_mail_arrives_as_an_event_and_a_stream_resumes_after_its_last_event_id(api: Api) -> None:
    def send(subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", api.daemon.bound_port("smtp"), timeout=30) as client:
            client.sendmail("a@far.example", ["acme-desk@example.test"], f"Subject: {subject}\r\n\r\nhi\r\n".encode())

    url = "/api/v1/organisations/acme/events"
    async with api.client.stream("GET", url, headers=api.as_("other")) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        lines = answer.aiter_lines()
        assert await anext(lines) == ": live"
        await asyncio.to_thread(send, "first")
        first = await asyncio.wait_for(next_event(lines, "comment.created"), 10)
    assert (first["type"], first["organisation"], first["object"]["subject"]) == ("comment.created", "acme", "first")
    assert first["object"]["routed_by"] == ["fallback"] and set(first) == {"id", "type", "organisation",
                                                                           "created_at", "object"}
    await asyncio.to_thread(send, "second")  # (while no stream is open)
    await asyncio.to_thread(send, "third")
    resumed = {**api.as_("other"), "Last-Event-ID": str(first["id"])}
    async with api.client.stream("GET", url, headers=resumed) as answer:
        lines = answer.aiter_lines()
        subjects = [(await asyncio.wait_for(next_event(lines, "comment.created"), 10))["object"]["subject"]
                    for _ in range(2)]
    assert subjects == ["second", "third"]
    # main's mail is not acme's event: acme's stream stays quiet, main's hears it
    main = api.as_("owner")
    async with api.client.stream("GET", "/api/v1/organisations/main/events", headers=main) as answer:
        lines = answer.aiter_lines()
        assert await anext(lines) == ": live"
        await asyncio.to_thread(lambda: smtplib.SMTP("127.0.0.1", api.daemon.bound_port("smtp")).sendmail(
            "a@far.example", ["sales@example.test"], b"Subject: for main\r\n\r\nhi\r\n"))
        event = await asyncio.wait_for(next_event(lines, "comment.created"), 10)
    assert (event["organisation"], event["object"]["subject"]) == ("main", "for main")
    store = SqliteStore(api.daemon.config.store_location())
    try:
        kinds = store.db.execute("SELECT o.slug, count(*) FROM events e JOIN organisations o ON o.id = e.org_id"
                                 " WHERE e.type = 'comment.created' GROUP BY o.slug").fetchall()
    finally:
        store.close()
    # (main: 5 in the setup, 1 now; acme: 5 comments and 5 sent messages in the setup, 3 now)
    assert {slug: count for slug, count in kinds} == {"acme": 13, "main": 6}


async def test_an_employee_hears_of_what_they_see_only(api: Api) -> None:
    def send(to: str, subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", api.daemon.bound_port("smtp"), timeout=30) as client:
            client.sendmail("a@far.example", [to], f"Subject: {subject}\r\n\r\nhi\r\n".encode())

    async with api.client.stream("GET", "/api/v1/organisations/main/events", headers=api.as_("employee")) as answer:
        lines = answer.aiter_lines()
        assert await anext(lines) == ": live"
        await asyncio.to_thread(send, "ivan@example.test", "for ivanov alone")  # (ivanov's personal mailbox)
        await asyncio.to_thread(send, "sales@example.test", "for everyone")
        event = await asyncio.wait_for(next_event(lines, "comment.created"), 10)
    assert event["object"]["subject"] == "for everyone"  # (the personal one was not told to petrov)


async def test_an_employee_sees_what_imap_shows_them(api: Api) -> None:
    def names(rows: list[dict[str, Any]], key: str) -> set[str]:
        return {row[key] for row in rows}

    async def get(role: str, what: str) -> list[dict[str, Any]]:
        answer = await api.client.get(f"/api/v1/organisations/main/{what}", headers=api.as_(role))
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = answer.json()
        return rows

    assert names(await get("owner", "mailboxes"), "login") == {"sales", "ivan"}
    assert names(await get("employee", "mailboxes"), "login") == {"sales"}  # (ivan is ivanov's personal one)
    owner_tasks = {t["id"] for t in await get("owner", "tasks")}
    employee_tasks = {t["id"] for t in await get("employee", "tasks")}
    assert api.ivanov_task in owner_tasks and api.ivanov_task not in employee_tasks
    assert api.sales_task in employee_tasks
    hidden = await api.client.get(f"/api/v1/organisations/main/tasks/{api.ivanov_task}/comments",
                                  headers=api.as_("employee"))
    _problem(hidden, 404, "not-found")
    assert names(await get("owner", "rules"), "name") == {"invoices", "ivan-news"}
    assert names(await get("employee", "rules"), "name") == set()  # (no personal mailbox: no rule of theirs)
    # another organisation's user is told of nothing: the same 404 as for one that does not exist
    for slug in ("main", "no-such-org"):
        _problem(await api.client.get(f"/api/v1/organisations/{slug}/tasks", headers=api.as_("other")), 404,
                 "not-found")
    assert [o["slug"] for o in (await api.client.get("/api/v1/organisations", headers=api.as_("other"))).json()] \
        == ["acme"]


async def test_a_pasted_message_is_explained_and_nothing_stored(api: Api) -> None:
    raw = "From: buh@client.ru\nTo: sales@example.test\nSubject: invoice 12\n\npay\n"
    answer = await api.client.post("/api/v1/organisations/main/rules/explain", headers=api.as_("owner"),
                                   json={"raw": raw})
    assert answer.status_code == 200, answer.text
    explained = answer.json()
    assert (explained["subject"], explained["from"], explained["through"]) == (
        "invoice 12", "buh@client.ru", ["mailbox:sales"])
    assert [(c["rule"], c["matched"]) for c in explained["rules"]] == [("invoices", True)]
    assert [(t["ref"], t["routed_by"]) for t in explained["lands_in"]] == [("Sales/Invoices", ["invoices"])]
    comments = await api.client.get(f"/api/v1/organisations/main/tasks/{api.sales_task}/comments",
                                    headers=api.as_("owner"), params={"limit": 500})
    assert "invoice 12" not in [c["subject"] for c in comments.json()]


async def test_comments_come_newest_first_in_pages(api: Api) -> None:
    url = f"/api/v1/organisations/main/tasks/{api.sales_task}/comments"
    first = (await api.client.get(url, params={"limit": 2}, headers=api.as_("owner"))).json()
    assert [c["subject"] for c in first] == ["invoice 5", "invoice 4"]
    assert set(first[0]) >= {"id", "task", "direction", "subject", "from", "routed_by", "created_at", "deleted"}
    second = (await api.client.get(url, params={"limit": 2, "before": first[-1]["id"]},
                                   headers=api.as_("owner"))).json()
    assert [c["subject"] for c in second] == ["invoice 3", "invoice 2"]
    later = (await api.client.get(url, params={"since": "2100-01-01T00:00:00Z"}, headers=api.as_("owner"))).json()
    assert later == []


async def test_the_openapi_document_says_who_may_call_each_operation(api: Api) -> None:
    document = (await api.client.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation.get("description", "").startswith("Who:"), (method, path)
            if path != "/api/v1/sessions":
                assert "401" in operation["responses"], (method, path)
    assert "password" not in document["components"]["schemas"]["OrganisationOut"]["properties"]


async def test_an_own_domain_takes_mail_from_the_answer_and_goes_when_its_mailboxes_have(api: Api) -> None:
    owner, base = api.as_("other"), "/api/v1/organisations/acme"  # (acme's owner)

    def send(to: str) -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", api.daemon.bound_port("smtp"), timeout=30) as client:
            return client.sendmail("a@far.example", [to], b"Subject: to our own domain\r\n\r\nhi\r\n")

    added = await api.client.post(f"{base}/domains", headers=owner, json={"domain": "Shop.Acme.Example"})
    assert added.status_code == 201 and added.json() == {"domain": "shop.acme.example", "org": "acme"}
    _problem(await api.client.post("/api/v1/organisations/main/domains", headers=api.as_("owner"),
                                   json={"domain": "shop.acme.example"}), 422, "invalid")  # (acme's already)
    _problem(await api.client.post(f"{base}/domains", headers=owner, json={"domain": "example.test"}), 422, "invalid")
    box = await api.client.post(f"{base}/mailboxes", headers=owner, json={"login": "orders@shop.acme.example"})
    assert box.status_code == 201, box.text
    assert await asyncio.to_thread(send, "orders@shop.acme.example") == {}
    comments = await api.client.get(f"{base}/tasks/{box.json()['task']}/comments", headers=owner)
    assert [c["subject"] for c in comments.json()] == ["to our own domain"]
    kept = _problem(await api.client.delete(f"{base}/domains/shop.acme.example", headers=owner), 409, "conflict")
    assert "still has mailboxes (orders@shop.acme.example)" in kept["detail"]
    assert (await api.client.delete(f"{base}/mailboxes/orders@shop.acme.example", headers=owner)).status_code == 204
    assert (await api.client.delete(f"{base}/domains/shop.acme.example", headers=owner)).status_code == 204
    assert "shop.acme.example" not in [d["domain"] for d in (await api.client.get(f"{base}/domains",
                                                                                 headers=owner)).json()]
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await asyncio.to_thread(send, "orders@shop.acme.example")


async def test_limits_set_by_the_admin_hold_for_the_owner(api: Api) -> None:
    url, owner = "/api/v1/organisations/acme/limits", api.as_("other")
    rules_now = len((await api.client.get("/api/v1/organisations/acme/rules", headers=owner)).json())
    lowered = await api.client.patch(url, headers=api.as_("admin"), json={"rules": rules_now})
    assert lowered.status_code == 200 and lowered.json()["rules"] == {"limit": rules_now, "own": True,
                                                                       "used": rules_now}
    over = await api.client.post("/api/v1/organisations/acme/rules", headers=owner,
                                 json={"name": "one-more", "action": "ignore", "subject": ["x"]})
    assert "raise it with: prostoy-mail org limits acme --rules N" in _problem(over, 409, "over-limit")["detail"]
    _problem(await api.client.patch(url, headers=owner, json={"rules": 1000}), 403, "forbidden")
    _problem(await api.client.patch(url, headers=api.as_("admin"), json={"rules": -1}), 422, "invalid-request")
    back = await api.client.patch(url, headers=api.as_("admin"), json={"rules": None})
    assert back.json()["rules"]["own"] is False and back.json()["rules"]["limit"] == 500
    assert (await api.client.get(url, headers=owner)).json() == back.json()


async def test_projects_and_tasks_are_made_for_the_owner(api: Api) -> None:
    base, owner = "/api/v1/organisations/acme", api.as_("other")
    project = await api.client.post(f"{base}/projects", headers=owner, json={"name": "Support"})
    assert project.status_code == 201 and project.json()["name"] == "Support"
    _problem(await api.client.post(f"{base}/projects", headers=owner, json={"name": "Support"}), 409, "conflict")
    task = await api.client.post(f"{base}/tasks", headers=owner,
                                 json={"project": "Support", "title": "Refunds", "assignee": "clerk"})
    assert task.status_code == 201, task.text
    assert (await api.client.get(f"{base}/tasks/{task.json()['id']}", headers=owner)).json() == task.json()
    assert task.json()["assignee"] == "clerk" and task.json()["project"] == "Support"
    _problem(await api.client.post(f"{base}/tasks", headers=owner, json={"project": "Nope", "title": "x"}),
             404, "not-found")
    _problem(await api.client.get(f"{base}/tasks/{api.sales_task}", headers=owner), 404, "not-found")  # (main's)
