"""The management API on [listen] http: the CRM's screens drive the daemon through it.

FastAPI (Starlette, pydantic) on the daemon's own event loop, served by uvicorn's HTTP
protocol (server.py). JSON under /api/v1, the OpenAPI 3.1 document at /api/v1/openapi.json
generated from the models that validate the requests, errors as RFC 9457 problem documents
(problems.py). Who may call what: auth.py; the bodies are views.py's, the command line's
`--json` fields.
"""
