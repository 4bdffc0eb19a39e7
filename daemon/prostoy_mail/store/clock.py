"""Timestamps as the store keeps them: UTC, ISO 8601, to the second."""

from __future__ import annotations

import time
from datetime import UTC, datetime

_last: tuple[int, str] = (0, "")  # formatting is cached per second: it was 5% of fetching's CPU


def now() -> str:
    global _last
    second = int(time.time())
    if second != _last[0]:
        _last = (second, datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds"))
    return _last[1]
