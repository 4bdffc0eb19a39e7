"""Reading a server-sent-events stream in tests."""

from __future__ import annotations

import json
from typing import Any


async def next_event(lines: Any, kind: str) -> dict[str, Any]:
    """The next event of this type on the stream's lines (its `data` JSON)."""
    event = ""
    async for line in lines:
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: ") and event == kind:
            found: dict[str, Any] = json.loads(line[len("data: "):])
            return found
    raise AssertionError("the stream ended")
