"""Which configuration file the running daemon applied (or refused), as it tells the command line.

The daemon writes this to its store after starting and after every reload; a command that
edits the file sends SIGHUP and waits until the state names the file it wrote (by SHA-256),
so that it can say whether the change is live, or why not.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Self

CONFIGURATION_STATE = "daemon.configuration"  # the store's settings row


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


@dataclass(frozen=True, slots=True)
class ConfigurationState(JsonRecord):
    pid: int
    generation: int  # one more with every reload that was applied
    file_sha256: str  # of the file as it is now (the refused one, after a refusal)
    applied_sha256: str  # of the text the daemon runs with
    refused: str | None  # why the last reload was refused, if it was
    path: str  # the configuration file the daemon reads
