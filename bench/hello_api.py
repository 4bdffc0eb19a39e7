"""The framework's floor for bench/api_requests.py: a FastAPI app with one hello-world endpoint,
served exactly as the daemon serves its API (api/server.py's HttpListener: uvicorn's protocol
with httptools, on uvloop), in a process of its own. GET /hello: {"ok": true}; GET /same: the
bytes of file BODY as application/json (the very answer the daemon gave, sent from memory: the
framework's floor for an answer that size); GET /api/v1/organisations/{slug}/tasks/{id}/comments:
those bytes from a route declared as the daemon's is (its path, query and header parameters
and dependencies), doing nothing: the framework's floor for that route; with STORE, POST /write:
its JSON body stored as a row by the daemon's store writer (store/writer.py: group commit,
answered once on disk): the floor of any write that must be durable when answered.

    .venv/bin/python bench/hello_api.py PORT [BODY [STORE]]
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


async def main(port: int, body: bytes, store_path: Path | None) -> None:
    app = FastAPI()
    if store_path is not None:
        from prostoy_mail.store.sqlite import SqliteStore
        from prostoy_mail.store.writer import StoreWriter

        store = SqliteStore(store_path)
        store.db.execute("CREATE TABLE bench_writes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        writer = StoreWriter(store)

        @app.post("/write", status_code=201)
        async def write(request: Request) -> dict[str, int]:
            text = (await request.body()).decode()
            row = await writer.run(lambda s: s.db.execute("INSERT INTO bench_writes (body) VALUES (?)", (text,))
                                   .lastrowid)
            return {"id": int(row or 0)}

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
    uvloop.run(main(int(sys.argv[1]), Path(sys.argv[2]).read_bytes() if len(sys.argv) > 2 else b"{}",
                    Path(sys.argv[3]) if len(sys.argv) > 3 else None))
