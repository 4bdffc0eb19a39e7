"""Changing an organisation's settings through the API: operations/ run in a store job for an
organisation that lives in the store, then the daemon applies the change at once.

The file-declared organisation's settings are the file's (its admin edits them there, or with
the command line): the API answers 409 for them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..config.edit import ConfigDocument
from ..config.model import Config, LimitSettings
from ..config.organisation import OrganisationDocument, organisation_config
from ..operations.workspace import validate_settings
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
    (the store acting for it). `changed`: the change recorded by save(), for the daemon."""

    _store: SettingsStore
    _organisation: Organisation
    _file_config: Config
    changed: int | None = None
    _config: Config | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            self._config = (self._file_config if self._organisation.file_managed else
                            organisation_config(self._file_config, self._organisation.slug,
                                                self._store.org_entries(self._organisation.id)))
        return self._config

    def file_config(self) -> Config:
        return self._file_config

    def store(self) -> SettingsStore:
        return self._store

    def organisation(self) -> Organisation:
        return self._organisation

    def limits(self, organisation: Organisation) -> LimitSettings:
        return self._file_config.limits.with_overrides(self._store.limit_overrides(organisation.id))

    def document(self) -> ConfigDocument:
        if self._organisation.file_managed:
            raise file_managed(self._organisation)
        self.config()  # (the settings must be valid before they are edited)
        org_id = self._organisation.id
        return OrganisationDocument(self._file_config, self._organisation.slug, self._store.org_entries(org_id),
                                    lambda sections: self._store.replace_org_entries(org_id, sections))

    def save(self, doc: ConfigDocument) -> Config:
        store, organisation = self._store, self._organisation
        saved = doc.save(lambda config: validate_settings(config, organisation, self._file_config, store,
                                                          str(doc.path)))
        self._config = saved
        self.changed = store.record_change("organisation", organisation.id)
        return saved


def in_workspace(organisation: Organisation, file_config: Config, operation: Callable[[StoreWorkspace], T],
                 store_only: bool = False) -> Callable[[SettingsStore], tuple[T, int | None]]:
    """A store job running `operation` for the organisation; its result and the change made.
    `store_only`: it changes the store alone (users), also for the file-declared organisation."""
    if organisation.file_managed and not store_only:
        raise file_managed(organisation)

    def job(store: SettingsStore) -> tuple[T, int | None]:
        with store.acting_for(organisation.id):
            workspace = StoreWorkspace(store, organisation, file_config)
            return operation(workspace), workspace.changed

    return job


async def change_settings(context: ApiContext, organisation: Organisation,
                          operation: Callable[[StoreWorkspace], T], store_only: bool = False) -> T:
    """`operation` in a store job for the organisation; the daemon applies what it changed before
    this returns (the API's answer then says it is in effect)."""
    result, changed = await context.writer.run(in_workspace(organisation, context.config(), operation, store_only))
    if changed is not None:
        await context.apply(changed)
    return result
