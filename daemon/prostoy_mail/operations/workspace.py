"""Where an operation works: one organisation's settings, as a document to edit, and the store.

The command line's Context is one (the file, or the store's entries of `--org`); the API
makes one inside a store job for an organisation in the store (api/settings.py). `save`
validates the edited settings whole (validate_settings) and writes them."""

from __future__ import annotations

from typing import Protocol

from ..config.edit import SettingsDocument
from ..config.model import Config, LimitSettings
from ..errors import ConfigError, OverLimit
from ..provisioning import check_references, ownership_conflicts
from ..store.ports import Organisation, TaskStore
from ..store.roles import SettingsStore


class Workspace(Protocol):
    def config(self) -> Config: ...  # the organisation's settings as they are
    def file_config(self) -> Config: ...  # the configuration file (the daemon's settings)
    def store(self) -> TaskStore: ...  # acting for the organisation
    def organisation(self) -> Organisation: ...
    def limits(self, organisation: Organisation) -> LimitSettings: ...
    def document(self) -> SettingsDocument: ...
    def save(self, doc: SettingsDocument) -> Config: ...


def validate_settings(config: Config, organisation: Organisation, file_config: Config, store: TaskStore,
                      name: str) -> None:
    """ConfigError when the organisation's edited settings name what the store does not have
    (users, tasks, projects) or what another organisation has (mailbox logins, gateways)."""
    problems = check_references(config, store, name)
    problems += ownership_conflicts(config, organisation.id, file_config, store, name)
    if problems:
        raise ConfigError(problems)


def record_settings_change(store: SettingsStore, organisation: Organisation) -> int:
    """The change the running daemons apply, in the store's change log: of the organisation's
    settings, or of the configuration file's for the file-declared one; its number."""
    if organisation.file_managed:
        return store.record_change("configuration", store.file_organisation_id())
    return store.record_change("organisation", organisation.id)


def check_limit(workspace: Workspace, name: str, count: int) -> None:
    """Refuse one more of `name` when the organisation has `count` of its limit already."""
    organisation = workspace.organisation()
    limit = getattr(workspace.limits(organisation), name)
    if count >= limit:
        raise OverLimit(f'organisation "{organisation.slug}" has {count} {name}, its limit (limits.{name}); '
                        f"raise it with: prostoy-mail org limits {organisation.slug} --{name} N")
