"""`upload_sent`: a copy of mail sent through a gateway, appended to its Sent folder over IMAP.

The folder is the one the server marks `\\Sent` (RFC 6154 SPECIAL-USE), else the first of
the usual names (`Sent`, `Отправленные`, `[Gmail]/Sent Mail`, ...), else a new `Sent`. A
copy whose Message-ID is already in the folder is not appended again, so a retry after
a lost answer does not file it twice.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
import time
from collections.abc import Callable

from ..config.model import Config
from .errors import FetchError
from .imap import ImapConnection, _quote
from .secrets import gateway_password
from .watcher import tls_of

USUAL_NAMES = ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "[Gmail]/Sent Mail", "Отправленные",
               "INBOX.Sent", "INBOX/Sent")
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (?P<name>.+)$')


def decode_folder_name(name: str) -> str:
    """IMAP's modified UTF-7 (RFC 3501 5.1.3) to text: `&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-` -> Отправленные."""
    def piece(match: re.Match[str]) -> str:
        body = match[1]
        if not body:
            return "&"
        return ("+" + body.replace(",", "/") + "-").encode("ascii").decode("utf-7")
    return re.sub(r"&([A-Za-z0-9+,]*)-", piece, name)


def find_sent_folder(imap: imaplib.IMAP4) -> str | None:
    """The raw (encoded) name of the Sent folder, or None when the server has none."""
    status, data = imap.list('""', "*")
    if status != "OK":
        raise FetchError("list", str(data))
    folders: list[tuple[str, str]] = []  # (raw name, decoded name)
    for line in data:
        if not isinstance(line, bytes):
            continue
        match = _LIST_LINE.match(line)
        if match is None:
            continue
        raw = match["name"].decode("utf-8", "replace")
        if raw.startswith('"') and raw.endswith('"'):
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if b"\\sent" in match["flags"].lower():
            return raw
        folders.append((raw, decode_folder_name(raw)))
    for usual in USUAL_NAMES:
        for raw, decoded in folders:
            if decoded.casefold() == usual.casefold():
                return raw
    return None


def append_to_sent(config: Config, gateway_email: str, raw: bytes, message_id: str | None) -> str:
    """Append `raw` (marked \\Seen) to the gateway's Sent folder; returns the folder. Blocking."""
    gateway = config.gateway(gateway_email)
    if gateway is None:
        raise FetchError("settings", f"gateway {gateway_email} is no longer configured")
    server = config.server(gateway.server)
    if server is None or server.imap is None:
        raise FetchError("settings", f"server {gateway.server} has no IMAP endpoint")
    connection = ImapConnection.open(server.imap, tls_of(server), gateway.login, gateway_password(gateway))
    imap = connection.imap
    try:
        folder = find_sent_folder(imap)
        if folder is None:
            folder = "Sent"
            imap.create(folder)
        if message_id is not None and _holds(imap, folder, message_id):
            return folder
        status, data = imap.append(_quote(folder), r"(\Seen)", imaplib.Time2Internaldate(time.time()), raw)
        if status != "OK":
            raise FetchError("append", str(data))
        return folder
    finally:
        connection.close()


def _holds(imap: imaplib.IMAP4, folder: str, message_id: str) -> bool:
    status, _ = imap.select(_quote(folder), readonly=True)
    if status != "OK":
        return False
    status, data = imap.uid("SEARCH", "HEADER", "Message-ID", f'"<{message_id}>"')
    return status == "OK" and bool(data and data[0] and data[0].split())


class SentFolderUploader:
    """The outbound runner's `upload_sent`: append in a thread, on the configuration of the moment."""

    def __init__(self, settings_of: Callable[[str], Config]) -> None:
        self.settings_of = settings_of  # a gateway's organisation's settings in effect, by its address

    async def __call__(self, gateway_email: str, raw: bytes, message_id: str | None) -> None:
        await asyncio.to_thread(append_to_sent, self.settings_of(gateway_email), gateway_email, raw, message_id)
