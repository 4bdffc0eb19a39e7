"""Which configuration file the running daemon applied (or refused), as it tells the command line.

The daemon writes this to its store after starting and after every reload; a command that
edits the file records a change in the store's change log and waits until the state names
that change and the file it wrote (by SHA-256),
so that it can say whether the change is live, or why not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .json_record import JsonRecord

CONFIGURATION_STATE = "daemon.configuration"  # the store's settings row


@dataclass(frozen=True, slots=True)
class ConfigurationState(JsonRecord):
    pid: int
    generation: int  # one more with every reload that was applied
    file_sha256: str  # of the file as it is now (the refused one, after a refusal)
    applied_sha256: str  # of the text the daemon runs with
    refused: str | None  # why the last reload was refused, if it was
    path: str  # the configuration file the daemon reads
    reloads: int = 0  # reloads this daemon has carried out, applied or refused (a waiting command sees its own)
    change_id: int = 0  # the newest change of the store's change log this daemon has taken up
    applied_at: float = 0.0  # unix time this state was reached (for the benchmark of live changes)
    # organisations in the store whose settings the daemon could not apply (slug -> why)
    organisations_refused: dict[str, str] = field(default_factory=dict)
