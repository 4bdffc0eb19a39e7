"""Errors shared by every layer.

A `Problem` names where something is wrong (file and key path) and what; a
`ConfigError` carries all problems found at once, so an admin fixes them in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    key: str  # dotted key path, e.g. "gateways[2].server"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}" if self.key else f"{self.file}: {self.message}"


class ProstoyMailError(Exception):
    """Base of every error the command line reports as one clean line. `field`: the setting or
    value it is about, where it is one (the API's problem document names it; the settings page
    shows the error next to that field)."""

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConfigError(ProstoyMailError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class NotFound(ProstoyMailError):
    """A user, project, task, mailbox, gateway, server or rule that does not exist."""


class Conflict(ProstoyMailError):
    """Something that already exists, or is still in use."""


class OverLimit(ProstoyMailError):
    """An organisation is at one of its limits ([limits], or its own in the store)."""


class Invalid(ProstoyMailError):
    """Input that is not valid or names nothing (a slug, a domain, `--org` naming no
    organisation, a name another organisation holds): the command line exits with status 2."""
