"""Changing an organisation's settings through the API: operations/ run in a store job for an
organisation that lives in the store, then the daemon applies the change at once.

The file-declared organisation's settings are the file's (its admin edits them there, or with
the command line): the API answers 409 for them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..config.edit import SettingsDocument
from ..config.model import Config, LimitSettings
from ..config.organisation import OrganisationDocument, organisation_config
from ..operations.workspace import record_settings_change, validate_settings
from ..store.ports import Organisation
from ..store.roles import SettingsStore
from .context import ApiContext
from .problems import ApiError

T = TypeVar("T")


def file_managed(organisation: Organisation) -> ApiError:
    return ApiError(409, "file-managed", "Declared by the configuration file",
                    f'organisation "{organisation.slug}" is declared by the daemon\'s configuration file: change its '
                    "servers, mailboxes, gateways and rules there (or with the command line)")


@dataclass
class StoreWorkspace:
    """operations.workspace.Workspace for an organisation in the store, inside a store job
    (the store acting for it). `changed`: the change recorded by save(), for the daemon.
    `parsed`: settings read before, by what they were read from (the API's jobs run one at a
    time on the store's writer: it is theirs alone): reading an organisation's 100 rules took
    half of a change's time, twice."""

    _store: SettingsStore
    _organisation: Organisation
    _file_config: Config
    parsed: dict[bytes, Config] = field(default_factory=dict, repr=False)
    changed: int | None = None
    _config: Config | None = field(default=None, repr=False)
    _entries: dict[str, list[dict[str, Any]]] | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            self._config = (self._file_config if self._organisation.file_managed else
                            organisation_config(self._file_config, self._organisation.slug, self.entries(),
                                                self.parsed))
        return self._config

    def entries(self) -> dict[str, list[dict[str, Any]]]:
        if self._entries is None:
            self._entries = self._store.org_entries(self._organisation.id)
        return self._entries

    def file_config(self) -> Config:
        return self._file_config

    def store(self) -> SettingsStore:
        return self._store

    def organisation(self) -> Organisation:
        return self._organisation

    def limits(self, organisation: Organisation) -> LimitSettings:
        return self._file_config.limits.with_overrides(self._store.limit_overrides(organisation.id))

    def document(self) -> SettingsDocument:
        if self._organisation.file_managed:
            raise file_managed(self._organisation)
        self.config()  # (the settings must be valid before they are edited)
        org_id = self._organisation.id
        return OrganisationDocument(self._file_config, self._organisation.slug, self.entries(),
                                    lambda sections: self._store.replace_org_entries(org_id, sections), self.parsed)

    def save(self, doc: SettingsDocument) -> Config:
        store, organisation = self._store, self._organisation
        saved = doc.save(lambda config: validate_settings(config, organisation, self._file_config, store,
                                                          str(doc.path)))
        self._config, self._entries = saved, None
        self.changed = record_settings_change(store, organisation)
        return saved


PARSED = 64  # organisations' settings kept read by the API's jobs (the latest of those it changed)


def in_workspace(organisation: Organisation, file_config: Config, operation: Callable[[StoreWorkspace], T],
                 store_only: bool = False, parsed: dict[bytes, Config] | None = None
                 ) -> Callable[[SettingsStore], tuple[T, int | None]]:
    """A store job running `operation` for the organisation; its result and the change made.
    `store_only`: it changes the store alone (users), also for the file-declared organisation.
    `parsed`: StoreWorkspace.parsed, kept from one job to the next."""
    if organisation.file_managed and not store_only:
        raise file_managed(organisation)

    def job(store: SettingsStore) -> tuple[T, int | None]:
        with store.acting_for(organisation.id):
            workspace = StoreWorkspace(store, organisation, file_config, {} if parsed is None else parsed)
            try:
                return operation(workspace), workspace.changed
            finally:
                while len(workspace.parsed) > PARSED:
                    del workspace.parsed[next(iter(workspace.parsed))]

    return job


async def change_settings(context: ApiContext, organisation: Organisation,
                          operation: Callable[[StoreWorkspace], T], store_only: bool = False) -> T:
    """`operation` in a store job for the organisation; the daemon applies what it changed before
    this returns (the API's answer then says it is in effect)."""
    result, changed = await context.writer.run(in_workspace(organisation, context.config(), operation, store_only,
                                                            context.parsed_settings))
    if changed is not None:
        await context.apply(changed)
    return result
