"""One daemon per store and per listening address: the locks themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prostoy_mail.instance_lock import AddressLocks, AlreadyRunning, StoreLock, store_holder


def test_a_store_is_locked_once_and_its_holder_is_known(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    assert store_holder(store) is None
    first = StoreLock(store)
    assert store_holder(store) == os.getpid()
    with pytest.raises(AlreadyRunning, match=f"another prostoy-mail \\(PID {os.getpid()}\\) is running on the store"):
        StoreLock(store)
    first.release()
    assert store_holder(store) is None
    StoreLock(store).release()  # free again


def test_an_address_is_claimed_once_per_machine() -> None:
    mine, other = AddressLocks(), AddressLocks()
    mine.claim("smtp", "127.0.0.1", 2525)
    mine.claim("smtp", "127.0.0.1", 2525)  # again by its holder: fine
    other.claim("imap", "127.0.0.1", 0)  # port 0: the kernel picks a free one, nothing to lock
    with pytest.raises(AlreadyRunning, match=f"listen.smtp: another prostoy-mail \\(PID {os.getpid()}\\) already "
                                             "listens on 127.0.0.1:2525"):
        other.claim("smtp", "127.0.0.1", 2525)
    mine.keep_only(set())
    other.claim("smtp", "127.0.0.1", 2525)  # released: another may take it
    other.release_all()
