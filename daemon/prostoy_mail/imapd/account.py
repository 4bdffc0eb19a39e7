"""A logged-in user's IMAP account: the folders they see (`folders.py`), each selectable."""

from __future__ import annotations

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
        """Only the user's organisation's: its mailboxes (`config` is its settings) and tasks."""
        return folders_for(self.user, self.config(), self.context.reader.list_tasks(org_id=self.user.org_id))

    def _find(self, name: str | bytes) -> Folder | None:
        text = name.decode("imap4-utf-7") if isinstance(name, bytes) else name
        if text.upper() == "INBOX":
            text = "INBOX"
        return next((f for f in self.folders() if f.name == text), None)

    # --- IAccount ----------------------------------------------------------------------------

    def listMailboxes(self, ref: str | bytes, wildcard: str | bytes) -> list[tuple[str, _Info]]:
        ref_text = ref.decode("imap4-utf-7") if isinstance(ref, bytes) else ref
        pattern = wildcard.decode("imap4-utf-7") if isinstance(wildcard, bytes) else wildcard
        if not pattern:  # LIST "" "": the hierarchy delimiter and the root (RFC 3501 6.3.8)
            return [("", _Info(["\\Noselect"]))]
        names: dict[str, _Info] = {}
        for folder in self.folders():
            parts = folder.name.split("/")
            for depth in range(1, len(parts)):  # "Tasks", "Tasks/Sales": there, but not selectable
                names.setdefault("/".join(parts[:depth]), _Info(["\\Noselect", "\\HasChildren"]))
            names[folder.name] = _Info(["\\HasNoChildren", *([folder.special_use] if folder.special_use else [])])
        matcher = WildcardMatcher(ref_text + pattern, longest=max(map(len, names), default=0))
        return [(name, info) for name, info in names.items() if matcher.matches(name)]

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


class WildcardMatcher:
    """IMAP LIST wildcards (`*` anything, `%` anything but the delimiter), in linear time.

    A regular expression built from the pattern backtracks: `*********z` took 7 s of the
    event loop's CPU against one folder name, 10 stars 48 s. This is a shift-and automaton
    instead: the set of pattern prefixes matched so far is one integer's bits, advanced by a
    few bit operations per character of the name, whatever the pattern. Matching is
    case-insensitive for a pattern starting with INBOX, as before.
    """

    def __init__(self, pattern: str, longest: int) -> None:
        self.folded = pattern.upper().startswith("INBOX")
        if self.folded:
            pattern = pattern.casefold()
        tokens: list[str] = []
        for char in pattern:  # runs of wildcards are one wildcard: "*%" is "*", "%%" is "%"
            if char in "*%" and tokens and tokens[-1] in "*%":
                tokens[-1] = "*" if "*" in (char, tokens[-1]) else "%"
            else:
                tokens.append(char)
        # More literal characters than the longest name has: nothing can match (and a huge
        # pattern costs nothing more).
        self.impossible = sum(t not in "*%" for t in tokens) > longest
        self.literal: dict[str, int] = {}
        self.star = self.percent = 0
        for index, token in enumerate(tokens):
            bit = 1 << index
            if token == "*":
                self.star |= bit
            elif token == "%":
                self.percent |= bit
            else:
                self.literal[token] = self.literal.get(token, 0) | bit
        self.wild = self.star | self.percent
        self.accept = 1 << len(tokens)

    def matches(self, name: str) -> bool:
        if self.impossible:
            return False
        if self.folded:
            name = name.casefold()
        state = self._closure(1)
        for char in name:
            state = ((state & self.literal.get(char, 0)) << 1) | (state & self.star) \
                | (state & self.percent if char != "/" else 0)
            if not state:
                return False
            state = self._closure(state)
        return bool(state & self.accept)

    def _closure(self, state: int) -> int:
        """A wildcard may match nothing: where it is reached, so is the position after it."""
        return state | ((state & self.wild) << 1)
