"""The framework's floor for bench/api_requests.py: a FastAPI app with one hello-world endpoint,
served exactly as the daemon serves its API (api/server.py's HttpListener: uvicorn's protocol
with httptools, on uvloop), in a process of its own.

    .venv/bin/python bench/hello_api.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvloop
from fastapi import FastAPI

from prostoy_mail.api.server import HttpListener
from prostoy_mail.listeners import bind


async def main(port: int) -> None:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, bool]:
        return {"ok": True}

    await HttpListener.open(app, await bind("127.0.0.1", port), None)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
