"""The FastAPI application: routes, problem documents, the OpenAPI document's place."""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from .context import ApiContext
from .directory_routes import router as directory_router
from .gateways_routes import router as gateways_router
from .mail_routes import router as mail_router
from .mailboxes_routes import router as mailboxes_router
from .page import page_files
from .problems import PROBLEM_RESPONSES, install
from .routes import router
from .rules_routes import router as rules_router
from .servers_routes import router as servers_router
from .users_routes import router as users_router
from .webhooks_routes import router as webhooks_router

OPENAPI_URL = "/api/v1/openapi.json"
ROUTERS = (mail_router, router, directory_router, rules_router, mailboxes_router, gateways_router, servers_router,
           webhooks_router, users_router)


def build_app(context: ApiContext) -> FastAPI:
    app = FastAPI(title="prostoy-mail management API", version=__version__, openapi_url=OPENAPI_URL,
                  docs_url=None, redoc_url=None, responses=PROBLEM_RESPONSES,
                  description="The mail service of the Prostoy.biz CRM. Authorization: Bearer TOKEN on every call "
                              "(POST /api/v1/sessions gives a user's; the provider's admin token is in "
                              "[api] admin_token_file). Errors are RFC 9457 problem documents.")
    app.state.context = context
    install(app)
    for each in ROUTERS:
        app.include_router(each)
    app.mount("/", page_files(), name="page")  # (last: /api/v1 is the routers')
    return app
