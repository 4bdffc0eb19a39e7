"""A selected folder, one per session: Twisted's IMailbox over the store.

The session holds its own list of UIDs (its sequence numbers) and the user's flags; the
store is read on the event loop through a read-only connection of its own (SQLite in WAL
mode: reads never wait for the writer, and metadata reads take microseconds); changes go
through the store's writer. New mail is appended to the list by the hub (`hub.py`), and
told to the client (`* n EXISTS`, also during IDLE).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime
from typing import Any

from twisted.internet import defer
from twisted.mail import imap4
from zope.interface import implementer

from ..errors import NotFound
from ..mail.headers import header_text, message_ids
from ..store.ports import CommentTarget, FolderItem
from ..store.roles import MailboxReader, MailboxWriter
from .message import StoredMessage
from .search import SearchItem, matches

log = logging.getLogger(__name__)
FLAGS = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]
HIDDEN = {"$Expunged"}  # our own mark (a Sent message a user removed), never shown


class FolderContext:
    """What every view needs: the read connection, the writer, the hub, UIDVALIDITY."""

    def __init__(self, reader: MailboxReader, write: Callable[[Callable[[MailboxWriter], Any]], Awaitable[Any]],
                 uidvalidity: int, delete_comment: Callable[[int], Awaitable[None]]) -> None:
        self.reader = reader
        self.write = write
        self.uidvalidity = uidvalidity
        self.delete_comment = delete_comment
        self.views: dict[str, set[FolderView]] = {}
        self.last_seen = (0, 0)  # the highest message and comment ids the views know of


def _internal_date(received_at: str) -> str:
    return format_datetime(datetime.fromisoformat(received_at))


_STATUS_ITEMS = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"})  # RFC 3501 6.3.10

@implementer(imap4.IMailbox, imap4.ISearchableMailbox, imap4.ICloseableMailbox, imap4.IMessageCopier)
class FolderView:
    def __init__(self, context: FolderContext, user_id: int, folder: str, writable: bool, login: str = "") -> None:
        self.context = context
        self.login = login
        self.user_id = user_id
        self.folder = folder
        self.writable = writable
        self.items: list[FolderItem] = [] if folder.startswith("none:") else context.reader.folder_items(folder)
        self.flags = context.reader.user_flags(user_id, folder)
        self.listeners: list[Any] = []
        self._uid_list: list[int] = []

    # --- IMailboxInfo / IMailbox -----------------------------------------------------------

    def getFlags(self) -> list[str]:
        """The system flags and the keywords in use here: SELECT's FLAGS (clients reject a FETCH
        that shows a flag FLAGS did not name)."""
        keywords = {f for flags in self.flags.values() for f in flags if not f.startswith("\\") and f not in HIDDEN}
        return [*FLAGS, *sorted(keywords)]

    def getHierarchicalDelimiter(self) -> str:
        return "/"

    def getUIDValidity(self) -> int:
        return self.context.uidvalidity

    def getUIDNext(self) -> int:
        if self.folder.startswith("none:"):
            return 1
        return max(self.context.reader.folder_uidnext(self.folder), (self.items[-1].uid + 1) if self.items else 1)

    def getUID(self, message: int) -> int:
        return self.items[message - 1].uid

    def getMessageCount(self) -> int:
        return len(self.items)

    def getRecentCount(self) -> int:
        return 0

    def getUnseenCount(self) -> int:
        return sum("\\Seen" not in self.flags.get(item.uid, ()) for item in self.items)

    def first_unseen(self) -> int | None:
        return next((i for i, item in enumerate(self.items, 1) if "\\Seen" not in self.flags.get(item.uid, ())),
                    None)

    def isWriteable(self) -> bool:
        return self.writable

    def destroy(self) -> None:
        self.close()

    def close(self) -> None:
        self.context.views.get(self.folder, set()).discard(self)

    def requestStatus(self, names: list[str]) -> dict[str, int]:
        unknown = [n for n in names if n.upper() not in _STATUS_ITEMS]
        if unknown:  # (Twisted's helper raised KeyError, and then sent nothing: the client hung)
            raise imap4.IllegalClientResponse(f"unknown STATUS item {unknown[0][:40]}")
        return imap4.statusRequestHelper(self, names)  # type: ignore[no-any-return]

    def addListener(self, listener: Any) -> None:
        self.listeners.append(listener)
        self.context.views.setdefault(self.folder, set()).add(self)  # selected: new mail is told to it

    def removeListener(self, listener: Any) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners:
            self.close()

    def addMessage(self, message: Any, flags: Any = (), date: Any = None) -> defer.Deferred[int]:
        """APPEND. Only to Sent, and only a message the user sent through us: a mail client files
        its copy there after sending; that copy is the message we already have (same
        Message-ID), so nothing is stored twice. Elsewhere mail arrives by SMTP and gateways."""
        if not self.folder.startswith("sent:"):
            return defer.fail(imap4.MailboxException(
                "[CANNOT] APPEND is only for Sent: mail arrives here by SMTP and from gateways"))
        raw = message.read() if hasattr(message, "read") else bytes(message)
        ids = message_ids(header_text(BytesHeaderParser(policy=compat32).parsebytes(raw), "Message-ID"))
        uid = self.context.reader.submitted_message(self.login, ids[0]) if ids else None
        if uid is None:
            return defer.fail(imap4.MailboxException(
                "[CANNOT] only mail you sent through this server can be filed in Sent (send it by SMTP submission)"))
        wanted = {f.decode() if isinstance(f, bytes) else str(f) for f in flags}
        user, folder = self.user_id, self.folder

        def record(store: MailboxWriter) -> int:
            current = store.user_flags(user, folder).get(uid, set())
            store.set_user_flags(user, folder, {uid: (current | wanted) - {"$Expunged"}})
            return uid

        return defer.Deferred.fromFuture(asyncio.ensure_future(self.context.write(record)))

    def copy(self, message: StoredMessage) -> defer.Deferred[int]:
        """COPY into this folder: into a task, the message becomes one of its comments (filing
        mail into a task from a mail client); into a mailbox, it is added to that mailbox."""
        if not self.writable or self.folder.startswith(("none:", "sent:")):
            return defer.fail(imap4.ReadOnlyMailbox())
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._copy(message.message_db_id)))

    async def _copy(self, message_db_id: int) -> int:
        kind, key = self.folder.split(":", 1)

        def job(store: MailboxWriter) -> int:
            if kind == "task":
                ids = store.insert_comments(message_db_id, [CommentTarget(int(key), ("copy",))])
                existing = ids[0] if ids else store.comment_of(int(key), message_db_id)  # a task holds it once
                assert existing is not None
                return existing
            store.add_to_mailbox(key, message_db_id)
            return message_db_id

        return int(await self.context.write(job))

    # --- messages ---------------------------------------------------------------------------

    def _selected(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, FolderItem]]:
        """(sequence number, item) of a message set, by binary search over its ranges: a client
        fetching 5,000 messages one UID FETCH at a time must not cost 5,000 x 5,000 steps."""
        if not self.items:
            return []
        messages.last = self.items[-1].uid if uid else len(self.items)
        uids = self._uids() if uid else None
        chosen: dict[int, FolderItem] = {}
        for low, high in messages.ranges:
            low, high = min(low, high), max(low, high)
            if uids is not None:
                start, stop = bisect.bisect_left(uids, low), bisect.bisect_right(uids, high)
            else:
                start, stop = max(low, 1) - 1, min(high, len(self.items))
            for index in range(start, stop):
                chosen[index + 1] = self.items[index]
        return sorted(chosen.items())

    def _uids(self) -> list[int]:
        if not self._uid_list:  # emptied whenever items change (new mail, expunge)
            self._uid_list = [item.uid for item in self.items]
        return self._uid_list

    def _message(self, item: FolderItem) -> StoredMessage:
        reader = self.context.reader
        return StoredMessage(item.uid, item.message_db_id, item.size, _internal_date(item.received_at),
                             self.flags.setdefault(item.uid, set()),
                             lambda: reader.raw_message(item.message_db_id))

    def fetch(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, StoredMessage]]:
        return [(seq, self._message(item)) for seq, item in self._selected(messages, uid)]

    def store(self, messages: imap4.MessageSet, flags: list[str | bytes], mode: int,
              uid: bool) -> dict[int, list[str]]:
        if not self.writable:
            raise imap4.ReadOnlyMailbox()
        wanted = {f.decode() if isinstance(f, bytes) else f for f in flags}
        changed: dict[int, set[str]] = {}
        result: dict[int, list[str]] = {}
        for seq, item in self._selected(messages, uid):
            current = self.flags.setdefault(item.uid, set())
            new = current | wanted if mode == 1 else current - wanted if mode == -1 else set(wanted)
            if new != current:
                current.clear()
                current.update(new)
                changed[item.uid] = set(new)
            result[seq] = sorted(current)
        if changed:  # kept in memory at once (this session sees it); written by the writer
            user, folder = self.user_id, self.folder
            _in_background(self.context.write(lambda store: store.set_user_flags(user, folder, changed)))
        return result

    def expunge(self) -> defer.Deferred[list[int]]:
        gone = [item for item in self.items if "\\Deleted" in self.flags.get(item.uid, ())]
        return defer.Deferred.fromFuture(asyncio.ensure_future(self._expunge(gone)))

    async def _expunge(self, gone: list[FolderItem]) -> list[int]:
        if not gone or not self.writable:
            return []
        kind, key = self.folder.split(":", 1)
        if kind == "task":
            for item in gone:  # a comment: deleted as `comment delete` would (tombstone, gateway option)
                with contextlib.suppress(NotFound):  # (deleted meanwhile by another client: gone all the same)
                    await self.context.delete_comment(item.uid)
        elif kind == "sent":  # the sent message stays in its task; it just leaves this user's Sent
            user, folder = self.user_id, self.folder
            marks = {item.uid: self.flags.get(item.uid, set()) | {"$Expunged"} for item in gone}
            await self.context.write(lambda store: store.set_user_flags(user, folder, marks))
        else:
            ids = [item.message_db_id for item in gone]
            await self.context.write(lambda store: store.remove_from_mailbox(key, ids))
        uids = {item.uid for item in gone}
        for view in list(self.context.views.get(self.folder, ())):
            if view is not self:
                view.forget(uids)
        return self._remove(uids)

    def _remove(self, uids: set[int]) -> list[int]:
        """Drop these UIDs from the session; their sequence numbers, highest first (as EXPUNGE goes)."""
        sequence = [i for i, item in enumerate(self.items, 1) if item.uid in uids]
        self.items = [item for item in self.items if item.uid not in uids]
        self._uid_list = []
        return sorted(sequence, reverse=True)

    def forget(self, uids: set[int]) -> None:
        """Another session expunged these: tell this one's client."""
        for seq in self._remove(uids):
            for listener in self.listeners:
                listener.sendUntaggedResponse(b"%d EXPUNGE" % seq, isAsync=True)

    def refresh(self) -> None:
        """New mail in the folder: append it and tell the client (`* n EXISTS`)."""
        if self.folder.startswith("none:"):
            return
        above = self.items[-1].uid if self.items else 0
        new = self.context.reader.folder_items(self.folder, above)
        if new:
            self.items.extend(new)
            self._uid_list = []
            for listener in self.listeners:
                listener.newMessages(len(self.items), None)

    def search(self, query: list[Any], uid: bool) -> list[int]:
        items = [SearchItem(seq, item, self.flags.get(item.uid, set()), self._message(item))
                 for seq, item in enumerate(self.items, 1)]
        last = (len(self.items), self.items[-1].uid if self.items else 0)
        return [entry.seq for entry in items if matches(list(query), entry, last)]


def _in_background(awaitable: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(awaitable)
    task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("imap: writing flags failed: %s", task.exception())
