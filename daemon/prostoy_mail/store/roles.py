"""What each caller of the store needs of it, one Protocol per role (the store's seam).

A caller is typed over its role, never over the SQLite adapter: a second adapter (PostgreSQL)
implements the same roles and no caller changes. store/sqlite.py implements them all; the
store's writer runs jobs typed over a role (`StoreJobs`). tests/memory_store.py implements
the intake's role in memory, for the intake's tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar, runtime_checkable

from .ports import CommentTarget, FetchedKey, MessageRecord, ServerAction
from .raw_files import RawFiles

T = TypeVar("T")
S_co = TypeVar("S_co", covariant=True)  # (a runner of jobs over a fuller store runs jobs over a role too)


class StoreJobs(Protocol[S_co]):
    """Runs a job (a function of the store, in one transaction of its writer) and answers once
    it is durable."""

    def run(self, fn: Callable[[S_co], T]) -> Awaitable[T]: ...


@runtime_checkable
class IntakeStore(Protocol):
    """The inbound funnel's (intake.py): a message stored once and turned into comments, what was
    fetched from where, the reply index, the same bytes seen again."""

    @property
    def files(self) -> RawFiles: ...  # where big messages' files are (spooled ones are already there)

    def transaction(self) -> AbstractContextManager[object]: ...  # a savepoint inside the writer's batch
    def in_transaction(self) -> bool: ...
    def own_error(self, exc: Exception) -> Exception: ...  # the database's error as the store's own

    def insert_message(self, record: MessageRecord) -> int: ...
    def insert_comments(self, message_db_id: int, targets: Sequence[CommentTarget]) -> tuple[int, ...]: ...
    def add_to_mailbox(self, login: str, message_db_id: int) -> None: ...

    def fetched_among(self, keys: Sequence[FetchedKey]) -> set[FetchedKey]: ...
    def record_fetched(self, key: FetchedKey, message_db_id: int | None, action: ServerAction) -> None: ...
    def advance_position(self, gateway: str, folder: str, uid: int) -> None: ...
    def message_with_hash(self, source: str, sha256: str) -> int | None: ...

    def last_smtp_message_with(self, sha256: str) -> tuple[int, str] | None: ...
    def in_mailbox(self, message_db_id: int, mailboxes: Sequence[str]) -> bool: ...
    def received_again(self, message_db_id: int) -> None: ...

    def task_of_sent(self, message_ids: Sequence[str]) -> int | None: ...
    def task_exists(self, task_id: int) -> bool: ...
