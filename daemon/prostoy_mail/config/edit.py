"""Editing the configuration file the admins also edit by hand.

tomlkit keeps their comments and layout; only the changed entry is rewritten. Every edit
is validated as a whole new configuration before it atomically replaces the old file
(temporary file, fsync, rename, fsync of the folder). A brand-new file is written with
tomli-w (`write_new`), which has no comments to keep.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import tomli_w
import tomlkit
from tomlkit.items import InlineTable

from ..errors import NotFound, ProstoyMailError
from .load import parse_config
from .model import Config, Endpoint

Value = str | int | bool | Endpoint | list[str] | None


class SettingsDocument(Protocol):
    """What the operations edit (operations/): the file (ConfigDocument) or an organisation's
    entries in the store (config/organisation.py's OrganisationDocument)."""

    path: Path

    def entries(self, section: str) -> list[dict[str, Any]]: ...
    def index_of(self, section: str, key: str, wanted: str) -> int: ...
    def append(self, section: str, values: Mapping[str, Value]) -> None: ...
    def update(self, section: str, index: int, values: Mapping[str, Value]) -> None: ...
    def remove(self, section: str, index: int) -> None: ...
    def move(self, section: str, index: int, new_index: int) -> None: ...
    def save(self, validate: Callable[[Config], None] | None = None) -> Config: ...


class ConfigDocument:
    """A configuration file being changed; `save()` validates and writes it.

    Entries of the arrays of tables ([[servers]], [[mailboxes]], [[gateways]], [[rules]])
    are added, removed and moved as blocks of lines, so that everything else stays
    byte-for-byte as the admin wrote it. A comment directly above an entry's header (no
    blank line between) belongs to that entry and goes with it. Every such edit is checked
    by parsing the result and comparing it with the intended data.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text("utf-8")
        if self.text and not self.text.endswith("\n"):
            self.text += "\n"

    def entries(self, section: str) -> list[dict[str, Any]]:
        value = tomllib.loads(self.text).get(section, [])
        return value if isinstance(value, list) else []

    def index_of(self, section: str, key: str, wanted: str) -> int:
        for index, entry in enumerate(self.entries(section)):
            if str(entry.get(key, "")).lower() == wanted.lower():
                return index
        raise NotFound(f'{self.path}: no [[{section}]] with {key} = "{wanted}"')

    def append(self, section: str, values: Mapping[str, Value]) -> None:
        entry = {k: v for k, v in values.items() if v is not None}
        block = _render_entry(section, entry)
        blocks = _entry_blocks(self.text, section)
        lines = self.text.splitlines(keepends=True)
        at = blocks[-1].end if blocks else len(lines)
        before = "".join(lines[:at])
        if before and not before.endswith("\n"):
            before += "\n"
        if before.strip():
            before = before.rstrip("\n") + "\n\n"
        after = "".join(lines[at:])
        expected = tomllib.loads(self.text)
        expected.setdefault(section, []).append(tomllib.loads(block)[section][0])
        self._replace(before + block + ("\n" + after.lstrip("\n") if after.strip() else ""), expected)

    def update(self, section: str, index: int, values: Mapping[str, Value]) -> None:
        doc = tomlkit.parse(self.text)
        table = doc[section][index]
        for key, value in values.items():
            if value is None:
                if key in table:
                    del table[key]
            else:
                table[key] = _item(value)
        self.text = tomlkit.dumps(doc)

    def remove(self, section: str, index: int) -> None:
        blocks = _entry_blocks(self.text, section)
        lines = self.text.splitlines(keepends=True)
        block = blocks[index]
        start, end = block.start, block.end
        while end < len(lines) and not lines[end].strip():  # the blank lines that separated it
            end += 1
        if end == len(lines):  # the last thing in the file: drop the blank lines before it instead
            while start > 0 and not lines[start - 1].strip():
                start -= 1
        elif end > block.end and start > 0 and lines[start - 1].strip():
            end -= 1  # keep one blank line between what was before and what follows
        expected = tomllib.loads(self.text)
        del expected[section][index]
        if not expected[section]:
            del expected[section]
        new_text = "".join(lines[:start] + lines[end:])
        self._replace(new_text if not start or end < len(lines) else new_text.rstrip("\n") + "\n", expected)

    def move(self, section: str, index: int, new_index: int) -> None:
        if index == new_index:
            return
        blocks = _entry_blocks(self.text, section)
        lines = self.text.splitlines(keepends=True)
        moving = lines[blocks[index].start:blocks[index].end]
        target = blocks[new_index]
        # Moving down puts the entry after the target's block, moving up before it.
        at = target.end if new_index > index else target.start
        new_lines = list(lines)
        src = blocks[index]
        if at > src.start:
            new_lines[at:at] = ["\n", *moving]
            del new_lines[src.start:src.end]
        else:
            del new_lines[src.start:src.end]
            new_lines[at:at] = [*moving, "\n"]
        expected = tomllib.loads(self.text)
        entries = expected[section]
        entries.insert(new_index, entries.pop(index))
        self._replace(_squeeze_blank_runs(self.text, "".join(new_lines)), expected)

    def _replace(self, new_text: str, expected: dict[str, Any]) -> None:
        try:
            ok = tomllib.loads(new_text) == expected
        except tomllib.TOMLDecodeError:
            ok = False
        if not ok:
            raise ProstoyMailError(
                f"{self.path}: the file's layout is too unusual to change it safely; edit it by hand"
            )
        self.text = new_text

    # --- saving -------------------------------------------------------------------------------

    def save(self, validate: Callable[[Config], None] | None = None) -> Config:
        """Validate the edited file as a whole, then atomically replace the old one."""
        config = parse_config(self.text, self.path.absolute(), str(self.path))
        if validate is not None:
            validate(config)
        atomic_write(self.path, self.text)
        return config


@dataclass(frozen=True, slots=True)
class _Block:
    start: int  # first line (attached comments above the header included)
    end: int  # one past the last line of the entry's own content


_HEADER = re.compile(r"^[ \t]*\[(\[)?[ \t]*([A-Za-z0-9_.\-]+)[ \t]*\](\])?[ \t]*(#.*)?$")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _entry_blocks(text: str, section: str) -> list[_Block]:
    """Line ranges of the [[section]] entries in the file, in order."""
    lines = text.splitlines()
    headers = [(i, m) for i, line in enumerate(lines) if (m := _HEADER.match(line))]
    blocks: list[_Block] = []
    for number, (i, m) in enumerate(headers):
        if not (m.group(1) and m.group(3) and m.group(2) == section):
            continue
        start = i
        while start > 0 and _is_comment(lines[start - 1]):
            start -= 1
        limit = headers[number + 1][0] if number + 1 < len(headers) else len(lines)
        # The next header's attached comments belong to it, not to us.
        while limit > i + 1 and _is_comment(lines[limit - 1]):
            limit -= 1
        end = limit
        # Trailing blank lines, and comment paragraphs set apart by a blank line, are not ours.
        while end > i + 1:
            last = lines[end - 1]
            if not last.strip():
                end -= 1
                continue
            if _is_comment(last):
                top = end - 1
                while top > i + 1 and _is_comment(lines[top - 1]):
                    top -= 1
                if top > i + 1 and not lines[top - 1].strip():
                    end = top
                    continue
            break
        blocks.append(_Block(start, end))
    return blocks


def _squeeze_blank_runs(old: str, new: str) -> str:
    """No more than one blank line in a row where the edit joined two blocks."""
    return new if "\n\n\n" in old else re.sub(r"\n{3,}", "\n\n", new)


def _render_entry(section: str, entry: Mapping[str, Any]) -> str:
    doc = tomlkit.document()
    aot = tomlkit.aot()
    table = tomlkit.table()
    for key, value in entry.items():
        table[key] = _item(value)
    aot.append(table)
    doc.append(section, aot)
    return tomlkit.dumps(doc).lstrip("\n")


def _item(value: Value) -> Any:
    if isinstance(value, Endpoint):
        inline: InlineTable = tomlkit.inline_table()
        inline.update({"host": value.host, "port": value.port})
        return inline
    return value


def atomic_write(path: Path, text: str, mode: int | None = None) -> None:
    """Replace `path` with `text` so that a crash leaves either the old or the new file. The
    new file keeps the old one's owner, group and mode (root editing the file of a service
    that reads it as `root:prostoy-mail 0640` must not leave it `root:root`)."""
    owner: tuple[int, int] | None = None
    try:
        old = path.stat()
        owner = (old.st_uid, old.st_gid)
        if mode is None:
            mode = old.st_mode & 0o7777
    except FileNotFoundError:
        if mode is None:
            mode = 0o600
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                with contextlib.suppress(PermissionError):  # (not root: the group, if it is ours)
                    os.fchown(f.fileno(), -1 if owner[0] == os.geteuid() else owner[0], owner[1])
            os.fchmod(f.fileno(), mode)  # (after chown, which clears set-id bits)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_new(path: Path, data: Mapping[str, Any], header: str = "") -> None:
    """Write a brand-new configuration file (no comments to keep): tomli-w."""
    if path.exists():
        raise FileExistsError(f"{path}: already exists; not overwriting it")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, header + tomli_w.dumps(data), mode=0o640)
