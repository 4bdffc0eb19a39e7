"""The framework's floor for bench/api_requests.py: a FastAPI app with one hello-world endpoint,
served exactly as the daemon serves its API (api/server.py's HttpListener: uvicorn's protocol
with httptools, on uvloop), in a process of its own. GET /hello: {"ok": true}; GET /same: the
bytes of file BODY as application/json (the very answer the daemon gave, sent from memory: the
framework's floor for an answer that size); GET /api/v1/organisations/{slug}/tasks/{id}/comments:
those bytes from a route declared as the daemon's is (its path, query and header parameters
and dependencies), doing nothing: the framework's floor for that route.

    .venv/bin/python bench/hello_api.py PORT [BODY]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datetime import datetime
from typing import Annotated

import uvloop
from fastapi import Depends, FastAPI, Query, Request, Response

from prostoy_mail.api.server import HttpListener
from prostoy_mail.listeners import bind


async def caller(request: Request) -> str:
    return request.headers.get("authorization", "")


async def context(request: Request) -> object:
    return request.app.state


async def main(port: int, body: bytes) -> None:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/same")
    async def same() -> Response:
        return Response(body, media_type="application/json")

    @app.get("/api/v1/organisations/{slug}/tasks/{task_id}/comments")
    async def comments(slug: str, task_id: int, who: Annotated[str, Depends(caller)],
                       state: Annotated[object, Depends(context)],
                       before: Annotated[int | None, Query(ge=1)] = None,
                       since: Annotated[datetime | None, Query()] = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
        return Response(body, media_type="application/json")

    await HttpListener.open(app, await bind("127.0.0.1", port), None)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), Path(sys.argv[2]).read_bytes() if len(sys.argv) > 2 else b"{}"))
