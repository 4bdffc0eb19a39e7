"""The intake's role of the store (store/roles.py: IntakeStore), in memory.

A second implementation of the seam, written without touching a caller: the intake's tests
run on it, so what the funnel needs of a store is exactly the role, no more."""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from prostoy_mail.store.ports import CommentTarget, FetchedKey, MessageRecord, ServerAction
from prostoy_mail.store.raw_files import RawFiles


@dataclass
class Stored:
    record: MessageRecord
    received_at: str
    times_received: int = 1


@dataclass
class Conversation:
    task_id: int
    rule: str
    opened_by: str
    sender: str
    opened_at: str
    project_id: int
    title: str
    assignee: str | None


@dataclass
class MemoryIntakeStore:
    folder: Path
    messages: dict[int, Stored] = field(default_factory=dict)
    comments: dict[int, tuple[int, int, tuple[str, ...]]] = field(default_factory=dict)  # id -> task, message, by
    mailboxes: set[tuple[str, int]] = field(default_factory=set)
    fetched: dict[FetchedKey, tuple[int | None, ServerAction]] = field(default_factory=dict)
    positions: dict[tuple[str, str], int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # Message-ID -> task
    tasks: set[int] = field(default_factory=set)
    conversations: dict[int, Conversation] = field(default_factory=dict)  # by task
    participants: set[tuple[int, str]] = field(default_factory=set)
    depth: int = 0

    @property
    def files(self) -> RawFiles:
        return RawFiles(self.folder)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[object]:
        """All or nothing, as a savepoint: the state is put back if the block raises."""
        saved = copy.deepcopy((self.messages, self.comments, self.mailboxes, self.fetched, self.positions,
                               self.tasks, self.conversations, self.participants))
        self.depth += 1
        try:
            yield self
        except BaseException:
            (self.messages, self.comments, self.mailboxes, self.fetched, self.positions,
             self.tasks, self.conversations, self.participants) = saved
            raise
        finally:
            self.depth -= 1

    def in_transaction(self) -> bool:
        return self.depth > 0

    def own_error(self, exc: Exception) -> Exception:
        return exc

    def insert_message(self, record: MessageRecord) -> int:
        number = len(self.messages) + 1
        sha256 = record.sha256 or hashlib.sha256(record.raw).hexdigest()
        self.messages[number] = Stored(replace(record, sha256=sha256), datetime.now(UTC).isoformat(timespec="seconds"))
        return number

    def insert_comments(self, message_db_id: int, targets: Sequence[CommentTarget]) -> tuple[int, ...]:
        ids = []
        for target in targets:
            if any(t == target.task_id and m == message_db_id for t, m, _ in self.comments.values()):
                continue
            number = len(self.comments) + 1
            self.comments[number] = (target.task_id, message_db_id, target.routed_by)
            ids.append(number)
        return tuple(ids)

    def add_to_mailbox(self, login: str, message_db_id: int) -> None:
        self.mailboxes.add((login, message_db_id))

    def fetched_among(self, keys: Sequence[FetchedKey]) -> set[FetchedKey]:
        return {key for key in keys if key in self.fetched}

    def record_fetched(self, key: FetchedKey, message_db_id: int | None, action: ServerAction) -> None:
        if key in self.fetched:
            raise ValueError(f"{key} fetched twice")  # (the SQLite store's primary key says the same)
        self.fetched[key] = (message_db_id, action)

    def advance_position(self, gateway: str, folder: str, uid: int) -> None:
        self.positions[(gateway, folder)] = max(self.positions.get((gateway, folder), 0), uid)

    def message_with_hash(self, source: str, sha256: str) -> int | None:
        return next((n for n, s in self.messages.items() if s.record.source == source and s.record.sha256 == sha256),
                    None)

    def last_smtp_message_with(self, sha256: str) -> tuple[int, str] | None:
        found = [(n, s.received_at) for n, s in self.messages.items()
                 if s.record.source == "smtp" and s.record.sha256 == sha256]
        return found[-1] if found else None

    def in_mailbox(self, message_db_id: int, mailboxes: Sequence[str]) -> bool:
        return any((login, message_db_id) in self.mailboxes for login in mailboxes)

    def received_again(self, message_db_id: int) -> None:
        self.messages[message_db_id].times_received += 1

    def task_of_sent(self, message_ids: Sequence[str]) -> int | None:
        return next((self.sent[m] for m in message_ids if m in self.sent), None)

    def task_exists(self, task_id: int) -> bool:
        return task_id in self.tasks

    def org_of_task(self, task_id: int) -> int:
        return 1  # (one organisation: the tests of many are over the SQLite store)

    def open_conversation(self, rule: str, opened_by: str, sender: str, project_id: int, title: str,
                          assignee: str | None) -> int:
        task_id = max([*self.tasks, 1000]) + 1
        self.tasks.add(task_id)
        taken = {c.title for c in self.conversations.values() if c.project_id == project_id}
        unique = title if title not in taken else next(f"{title} ({n})" for n in range(2, 10**6)
                                                       if f"{title} ({n})" not in taken)
        self.conversations[task_id] = Conversation(task_id, rule, opened_by, sender.lower(),
                                                   datetime.now(UTC).isoformat(timespec="seconds"), project_id,
                                                   unique, assignee)
        self.add_participants(task_id, [sender])
        return task_id

    def conversation_opened_by(self, rule: str, opened_by: str) -> int | None:
        return next((c.task_id for c in self.conversations.values() if (c.rule, c.opened_by) == (rule, opened_by)),
                    None)

    def conversations_opened_for(self, sender: str, since: str) -> int:
        return sum(1 for c in self.conversations.values() if c.sender == sender.lower() and c.opened_at >= since)

    def conversation_in_thread(self, message_ids: Sequence[str], sender: str) -> int | None:
        for message_id in message_ids:
            for task_id, message_db_id, _ in self.comments.values():
                if self.messages[message_db_id].record.message_id == message_id \
                        and (task_id, sender.lower()) in self.participants:
                    return task_id
        return None

    def add_participants(self, task_id: int, addresses: Iterable[str]) -> None:
        if task_id in self.conversations:
            self.participants |= {(task_id, a.lower()) for a in addresses if a}
