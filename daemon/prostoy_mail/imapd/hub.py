"""New mail reaches selected folders (and IDLE) within a fraction of a second of its commit.

Whatever adds mail — SMTP, a gateway, the outbound spool, the command line — commits to
the store; this looks at two indexed maxima a few times a second while any folder is
selected, and lets each selected folder append what is new.
"""

from __future__ import annotations

import asyncio
import logging

from .view import FolderContext

log = logging.getLogger(__name__)
INTERVAL = 0.2  # seconds


async def watch(context: FolderContext, interval: float = INTERVAL) -> None:
    context.last_seen = context.reader.latest_ids()
    while True:
        await asyncio.sleep(interval)
        if not context.views:
            continue
        try:
            latest = context.reader.latest_ids()
            if latest == context.last_seen:
                continue
            context.last_seen = latest
            for views in list(context.views.values()):
                for view in list(views):
                    view.refresh()
        except Exception:  # a store hiccup must not end the watching
            log.exception("imap: looking for new mail failed")
