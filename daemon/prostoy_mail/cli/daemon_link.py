"""After the command line changes the configuration file: the running daemon applies it now.

Until every setting lives in the store, the file is the configuration and a running daemon
reads it again when told. An edit that left the daemon running the old file would be a trap:
mail for a new mailbox bounced with 550, a new rule ignored although `rule explain` says it
applies. So an edit finds the daemon running on the same store (instance_lock.store_holder),
records the change in the store's change log (which the daemon polls every 0.1 s), and
waits until the daemon records that it took the change up: applied, or refused, the very
file written (config_state.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config.model import Config
from ..config_state import CONFIGURATION_STATE, ConfigurationState
from ..errors import ProstoyMailError
from ..instance_lock import store_holder
from ..operations.workspace import record_settings_change
from ..store.ports import Organisation
from ..store.sqlite import SqliteStore

WAIT = 15.0  # seconds for the daemon's word
NO_DAEMON = "no daemon is running on this store: the change applies when it starts"


def apply_to_running_daemon(config: Config, store: SqliteStore, *, saved: bool = True,
                            organisation: Organisation | None = None) -> str:
    """A line saying what the running daemon did with `config` (just saved, or, with saved=False,
    to be read again as it is); ProstoyMailError when it refused it or did not answer.

    The change is recorded in the store's change log, which the daemon watches: no signal is
    sent, so a user who may write the store may make a change live."""
    lead, it = (f"saved {config.path}, but ", "it") if saved else ("", str(config.path))
    location = config.store_location()
    pid = store_holder(Path(location)) if "://" not in location else None
    if pid is None:
        return NO_DAEMON
    before = _state(store)
    if before is not None and before.path != str(config.path):
        raise ProstoyMailError(f"{lead}the running daemon (PID {pid}) reads {before.path}: "
                               "edit that file, or restart the daemon with this one")
    in_store = organisation is not None and not organisation.file_managed
    change = (record_settings_change(store, organisation) if organisation is not None
              else store.record_change("configuration", store.file_organisation_id()))
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        state = _state(store)
        if state is not None and state.pid == pid and state.change_id >= change and in_store:
            assert organisation is not None
            why = state.organisations_refused.get(organisation.slug)
            if why is not None:
                raise ProstoyMailError(f"saved, but the running daemon (PID {pid}) could not apply the settings of "
                                       f"{organisation.slug}: {why}")
            return f"the running daemon (PID {pid}) applied the change (configuration generation {state.generation})"
        if state is not None and state.pid == pid and state.change_id >= change:
            if state.refused is not None and state.file_sha256 == config.text_sha256:
                raise ProstoyMailError(f"{lead}the running daemon (PID {pid}) refused {it} and "
                                       f"runs as before: {state.refused}")
            if state.applied_sha256 == config.text_sha256:
                return (f"the running daemon (PID {pid}) applied {'the change' if saved else it}"
                        f" (configuration generation {state.generation})")
            raise ProstoyMailError(f"{lead}the file changed again meanwhile; the running daemon (PID {pid}) "
                                   f"applied that (configuration generation {state.generation})")
        if store_holder(Path(location)) != pid:
            return NO_DAEMON  # (it stopped meanwhile)
        time.sleep(0.02)
    raise ProstoyMailError(f"{lead}the running daemon (PID {pid}) did not confirm {'the change' if saved else it} "
                           f"within {WAIT:.0f} s: see its log")


def _state(store: SqliteStore) -> ConfigurationState | None:
    data = store.setting(CONFIGURATION_STATE)
    return None if data is None else ConfigurationState.from_json(data)
