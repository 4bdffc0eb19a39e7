"""Which configuration file the running daemon applied (or refused), as it tells the command line.

The daemon writes this to its store after starting and after every reload; a command that
edits the file sends SIGHUP and waits until the state names the file it wrote (by SHA-256),
so that it can say whether the change is live, or why not.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

CONFIGURATION_STATE = "daemon.configuration"  # the store's settings row


@dataclass(frozen=True, slots=True)
class ConfigurationState:
    pid: int
    generation: int  # one more with every reload that was applied
    file_sha256: str  # of the file as it is now (the refused one, after a refusal)
    applied_sha256: str  # of the text the daemon runs with
    refused: str | None  # why the last reload was refused, if it was
    path: str  # the configuration file the daemon reads

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ConfigurationState | None:
        try:
            fields = json.loads(data)
            return cls(**fields)
        except (ValueError, TypeError):
            return None
