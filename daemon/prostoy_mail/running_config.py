"""What one configuration means to the running daemon, built whole and swapped in one step.

A reload builds a new RunningConfig from the new file (its rules resolved against the store,
the SMTP listeners' policy, the sending policy) while the old one goes on serving; only when
the new one is complete and its listeners are open does the daemon replace its reference.
Every collaborator reads the configuration in effect through a reader the daemon hands it
(`lambda: daemon.running.smtp`, ...), never a copy patched in place: a message or a session
sees one generation whole, never half of two.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config.model import Config
from .intake import IntakeRules
from .provisioning import build_routing_table
from .sending_policy import SendingPolicy
from .smtp.inbound import Policy
from .store.ports import TaskStore


@dataclass(frozen=True, slots=True)
class RunningConfig:
    generation: int  # 1 at start, one more with every reload applied; the SMTP workers acknowledge it
    config: Config
    intake: IntakeRules  # the rules resolved to task ids, the duplicate window
    smtp: Policy  # what inbound SMTP sessions accept (the daemon's and the workers')
    sending: SendingPolicy  # who may send as whom (submission, the outbound spool)

    @classmethod
    def build(cls, config: Config, store: TaskStore, generation: int) -> RunningConfig:
        """Raises ConfigError when a rule names a task or user the store does not have (a job for
        the store's writer: it reads the store)."""
        store.reconcile_file_organisation(config.organisation.slug, config.organisation.display_name)
        table = build_routing_table(config, store)
        return cls(generation, config, IntakeRules(table, config.smtp.duplicate_window), Policy.of(config),
                   SendingPolicy.of(config))
