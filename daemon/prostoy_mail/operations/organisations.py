"""What an organisation has, counted (`org list/show/limits`, the API's organisations)."""

from __future__ import annotations

from ..config.model import Config
from ..store.ports import Organisation
from ..store.roles import OrganisationCounts


def settings_counts(store: OrganisationCounts, organisation: Organisation, file_config: Config) -> dict[str, int]:
    """How many mailboxes, gateways and rules it has: the file's, or its entries in the store
    (counted also while its settings are left out as not valid)."""
    if organisation.file_managed:
        return {"mailboxes": len(file_config.mailboxes), "gateways": len(file_config.gateways),
                "rules": len(file_config.rules)}
    entries = store.org_entries(organisation.id)
    return {section: len(entries.get(section, [])) for section in ("mailboxes", "gateways", "rules")}


def organisation_counts(store: OrganisationCounts, organisation: Organisation, file_config: Config) -> dict[str, int]:
    """Its users, projects and tasks, and its mailboxes, gateways and rules (views.organisation_json's)."""
    return {**store.counts(organisation.id), **settings_counts(store, organisation, file_config)}
