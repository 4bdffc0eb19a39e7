"""Dataclasses kept as JSON in the store's settings rows (what the daemon and the command line
tell each other: config_state.py, control_request.py)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Self


class JsonRecord:
    """A dataclass written to (and read from) a settings row of the store as JSON."""

    __slots__ = ()

    def to_json(self) -> bytes:
        record: Any = self
        return json.dumps(asdict(record)).encode()

    @classmethod
    def from_json(cls, data: bytes | None) -> Self | None:
        """None when there is none, or it is not one (written by another version)."""
        try:
            return None if data is None else cls(**json.loads(data))
        except (ValueError, TypeError):
            return None
