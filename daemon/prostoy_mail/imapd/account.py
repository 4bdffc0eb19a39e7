"""A logged-in user's IMAP account: the folders they see (`folders.py`), each selectable."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.mail import imap4
from zope.interface import implementer

from ..config.model import Config
from ..store.ports import User
from .folders import Folder, folders_for
from .view import FolderContext, FolderView


class _Info:
    """LIST's view of a folder: its flags and delimiter."""

    def __init__(self, flags: list[str]) -> None:
        self.flags = flags

    def getFlags(self) -> list[str]:
        return self.flags

    def getHierarchicalDelimiter(self) -> str:
        return "/"


@implementer(imap4.IAccount, imap4.INamespacePresenter)
class Account:
    def __init__(self, user: User, context: FolderContext, config: Callable[[], Config]) -> None:
        self.user = user
        self.context = context
        self.config = config

    def folders(self) -> list[Folder]:
        return folders_for(self.user, self.config(), self.context.reader.list_tasks())

    def _find(self, name: str | bytes) -> Folder | None:
        text = name.decode("imap4-utf-7") if isinstance(name, bytes) else name
        if text.upper() == "INBOX":
            text = "INBOX"
        return next((f for f in self.folders() if f.name == text), None)

    # --- IAccount ----------------------------------------------------------------------------

    def listMailboxes(self, ref: str | bytes, wildcard: str | bytes) -> list[tuple[str, _Info]]:
        ref_text = ref.decode("imap4-utf-7") if isinstance(ref, bytes) else ref
        pattern = wildcard.decode("imap4-utf-7") if isinstance(wildcard, bytes) else wildcard
        names: dict[str, _Info] = {}
        for folder in self.folders():
            parts = folder.name.split("/")
            for depth in range(1, len(parts)):  # "Tasks", "Tasks/Sales": there, but not selectable
                names.setdefault("/".join(parts[:depth]), _Info(["\\Noselect", "\\HasChildren"]))
            names[folder.name] = _Info(["\\HasNoChildren", *([folder.special_use] if folder.special_use else [])])
        regexp = _wildcard(ref_text + pattern)
        return [(name, info) for name, info in names.items() if regexp.match(name)]

    def select(self, name: str | bytes, readwrite: int = 1) -> FolderView | None:
        folder = self._find(name)
        if folder is None:
            return None
        return FolderView(self.context, self.user.id, folder.key, bool(readwrite) and folder.writable,
                          self.user.login)

    def isSubscribed(self, name: str | bytes) -> bool:
        return self._find(name) is not None

    def subscribe(self, name: str | bytes) -> bool:
        return True

    def unsubscribe(self, name: str | bytes) -> bool:
        return True

    def addMailbox(self, name: str | bytes, mbox: Any = None) -> None:
        raise imap4.MailboxException("folders are the CRM's mailboxes and tasks; they cannot be created here")

    def create(self, pathspec: str | bytes) -> None:
        self.addMailbox(pathspec)

    def delete(self, name: str | bytes) -> None:
        raise imap4.MailboxException("folders are the CRM's mailboxes and tasks; they cannot be deleted here")

    def rename(self, oldname: str | bytes, newname: str | bytes) -> None:
        raise imap4.MailboxException("folders are the CRM's mailboxes and tasks; they cannot be renamed here")

    # --- INamespacePresenter ------------------------------------------------------------------

    def getPersonalNamespaces(self) -> list[list[str]]:
        return [["", "/"]]

    def getSharedNamespaces(self) -> None:
        return None

    def getOtherNamespaces(self) -> None:
        return None


def _wildcard(pattern: str) -> re.Pattern[str]:
    """IMAP LIST wildcards: `*` anything, `%` anything but the delimiter."""
    out = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern)
    return re.compile(f"^{out}$", re.IGNORECASE if pattern.upper().startswith("INBOX") else 0)
