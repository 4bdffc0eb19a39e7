"""What the daemon and an SMTP worker process say to each other over their channel.

One frozen dataclass per message; both ends import this module and dispatch with `match`,
so a misspelt kind is a type error, not a message silently dropped. They pickle by their
fields in order (reduce_by_fields): a Deliver goes over the channel for every message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..delivery import Delivery
from ..mail.compact import reduce_by_fields
from .inbound import Policy

# --- worker -> daemon -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker has its first policy and takes listening sockets now."""

    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Handover:
    """A message to store; answered with Stored or Failed under the same request number."""

    request: int
    delivery: Delivery

    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Connections:
    """Sessions opened, closed and refused (by reason) since the last tally."""

    opened: int
    closed: int
    refused: dict[str, int] = field(default_factory=dict)

    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command refused, by reason (a metric)."""

    reason: str

    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Pong:
    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Applied:
    """The worker serves new sessions with the policy of this generation now."""

    generation: int

    __reduce__ = reduce_by_fields


FromWorker = Ready | Handover | Connections | Rejected | Pong | Applied

# --- daemon -> worker -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsePolicy:
    """What sessions accept from now on; acknowledged with Applied(generation)."""

    policy: Policy
    hostname: str
    generation: int

    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Stored:
    request: int
    queue_id: str

    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Failed:
    request: int
    reply: str  # the SMTP reply to give (451 or 452)
    reason: str  # its metric

    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Ping:
    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Unlisten:
    """Close the listening sockets of this listener number (sessions on them go on)."""

    listener: int

    __reduce__ = reduce_by_fields


@dataclass(frozen=True, slots=True)
class Stop:
    """Take no new sessions; let those in DATA finish for at most `grace` seconds; exit."""

    grace: float

    __reduce__ = reduce_by_fields


ToWorker = UsePolicy | Stored | Failed | Ping | Unlisten | Stop
