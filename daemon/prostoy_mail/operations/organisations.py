"""What an organisation has, counted, and its limits (`org list/show/limits`, the API's
organisations and limits)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config.model import LIMIT_NAMES, Config
from ..errors import Invalid
from ..store.ports import Organisation
from ..store.roles import OrganisationCounts, OrganisationLimits

MAX_LIMIT = 10_000_000  # an organisation's own limit of anything


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


def limit_changes(values: Mapping[str, int | str | None],
                  label: Callable[[str], str] = str) -> dict[str, int | None]:
    """An organisation's own limits to set: a number from 0 to MAX_LIMIT, or "default" / None
    (back to [limits]). Invalid names the limit as `label` gives it (the command line: its option)."""
    changes: dict[str, int | None] = {}
    for name, value in values.items():
        if name not in LIMIT_NAMES:
            raise Invalid(f'no limit "{name}" (there are: {", ".join(LIMIT_NAMES)})')
        if value is None or value == "default":
            changes[name] = None
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_LIMIT:
            changes[name] = value
        elif isinstance(value, str) and value.isdigit() and int(value) <= MAX_LIMIT:
            changes[name] = int(value)
        else:
            raise Invalid(f'{label(name)}: "{value}" is not a number (0 to {MAX_LIMIT}) or "default"')
    return changes


def limit_rows(store: OrganisationLimits, organisation: Organisation, file_config: Config) -> dict[str, Any]:
    """Each limit: its value, whether it is the organisation's own (else [limits]'s), and what
    the organisation uses of it (of outbound_per_hour: in the last hour)."""
    own = store.limit_overrides(organisation.id)
    limits = file_config.limits.with_overrides(own)
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    used = {**organisation_counts(store, organisation, file_config),
            "outbound_per_hour": store.outbound_since(organisation.id, hour_ago)}
    return {name: {"limit": getattr(limits, name), "own": name in own, "used": used[name]} for name in LIMIT_NAMES}
