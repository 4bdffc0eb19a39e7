"""Requests from the command line to the running daemon that are not configuration (which is
the file): for now, forgetting the failed logins of a client address.

The command writes a request into the store's settings and sends SIGUSR1; the daemon carries
it out and writes the answer under the request's id, which the command waits for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .json_record import JsonRecord

REQUEST = "control.request"  # the store's settings rows
ANSWER = "control.answer"


@dataclass(frozen=True, slots=True)
class ControlRequest(JsonRecord):
    id: str
    unblock: list[str] = field(default_factory=list)  # client addresses whose failed logins are forgotten


@dataclass(frozen=True, slots=True)
class ControlAnswer(JsonRecord):
    id: str
    cleared: dict[str, int] = field(default_factory=dict)  # address -> failure records forgotten
