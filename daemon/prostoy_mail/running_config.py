"""What one configuration means to the running daemon, built whole and swapped in one step.

A reload builds a new RunningConfig from the new file (its rules resolved against the store,
the SMTP listeners' policy, the sending policy) while the old one goes on serving; only when
the new one is complete and its listeners are open does the daemon replace its reference.
Every collaborator reads the configuration in effect through a reader the daemon hands it
(`lambda: daemon.running.smtp`, ...), never a copy patched in place: a message or a session
sees one generation whole, never half of two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .config.model import Config
from .errors import ConfigError
from .intake import IntakeRules
from .provisioning import build_routing_table, organisation_configs, ownership_conflicts
from .sending_policy import SendingPolicy
from .smtp.inbound import Policy
from .store.ports import TaskStore


@dataclass(frozen=True, slots=True)
class RunningConfig:
    generation: int  # 1 at start, one more with every reload applied; the SMTP workers acknowledge it
    config: Config  # the configuration file: the daemon's settings, and its organisation's
    intake: IntakeRules  # the rules resolved to task ids (every organisation's), the duplicate window
    smtp: Policy  # what inbound SMTP sessions accept (the daemon's and the workers')
    sending: SendingPolicy  # who may send as whom (submission, the outbound spool)
    organisations: Mapping[int, Config] = field(default_factory=dict)  # those in the store, by id
    organisations_refused: Mapping[str, str] = field(default_factory=dict)  # slug -> why they are left out

    @classmethod
    def build(cls, config: Config, store: TaskStore, generation: int,
              parsed: dict[str, Config] | None = None) -> RunningConfig:
        """Raises ConfigError when a rule of the file names a task or user the store does not have
        (a job for the store's writer: it reads the store). An organisation in the store whose
        settings cannot be applied is left out, and said why (`organisations_refused`)."""
        store.reconcile_file_organisation(config.organisation.slug, config.organisation.display_name)
        taken = ownership_conflicts(config, store.file_organisation_id(), config, store, str(config.path))
        if taken:  # (a hand-edited file naming another organisation's mailbox or gateway)
            raise ConfigError(taken)
        organisations, refused = organisation_configs(config, store, parsed)
        table = build_routing_table(config, store, organisations)
        logins = frozenset(m.login for _, org in organisations for m in org.mailboxes)
        own_domains = frozenset(store.domain_owners())  # (the MX takes mail for these and the shared one only)
        smtp = Policy.of(config)
        has_relay = config.relay is not None
        sending = SendingPolicy.merged([SendingPolicy.of(config, store.file_organisation_id()),
                                        *(SendingPolicy.of(org_config, org_id, relay=has_relay)
                                          for org_id, org_config in organisations)])
        return cls(generation, config, IntakeRules(table, config.smtp.duplicate_window),
                   replace(smtp, mailboxes=smtp.mailboxes | logins, own_domains=own_domains),
                   replace(sending, own_domains=own_domains), dict(organisations), refused)

    def gateway_settings(self, email: str) -> Config:
        """The settings of the organisation that connects gateway `email` (its server, its
        password): a gateway's address is one organisation's in the installation."""
        for org_config in self.organisations.values():
            if org_config.gateway(email) is not None:
                return org_config
        return self.config

    def config_of(self, org_id: int, file_org: int) -> Config:
        """An organisation's settings (its mailboxes, for the IMAP folders of its users): the
        file's for the file's organisation, else its own, else none."""
        if org_id == file_org:
            return self.config
        return self.organisations.get(org_id) or replace(self.config, mailboxes=(), gateways=(), rules=())
