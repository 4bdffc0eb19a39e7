"""What the API's handlers reach of the daemon: one object, on the app's state."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..auth.login_guard import LoginGuard
from ..config.model import Config
from ..store.roles import ApiStore, ApiWriterStore, StoreJobs
from .events import EventHub
from .rendered_comments import RenderedComments

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class ApiContext:
    reader: ApiStore  # a read connection on the event loop, acting for no organisation
    writer: StoreJobs[ApiWriterStore]  # changes, in the store writer's transactions
    guard: LoginGuard  # the same throttle and Argon2 checks as IMAP and submission
    config: Callable[[], Config]  # the configuration file in effect
    settings_of: Callable[[int], Config]  # an organisation's settings in effect, by id
    # the daemon applies a change of the store's change log now; the configuration generation in effect
    apply: Callable[[int], Awaitable[int]]
    hub: EventHub  # the events' poller: the streams of every organisation hear of new events through it
    wake_outbound: Callable[[], None]  # something was queued: the outbound runner looks at the spool now
    comments: RenderedComments = field(default_factory=RenderedComments)  # comments' JSON, rendered once
    # organisations' settings read by the API's jobs, by what they were read from (used on the
    # store writer's thread alone: api/settings.py)
    parsed_settings: dict[bytes, Config] = field(default_factory=dict, repr=False)
    _token: tuple[float, str | None] | None = field(default=None, repr=False)  # (file mtime, token)

    async def acting_for(self, org_id: int, job: Callable[[Any], T]) -> T:
        """`job(store)` on the store's writer, the store acting for the organisation."""

        def scoped(store: Any) -> T:
            with store.acting_for(org_id):
                return job(store)

        return await self.writer.run(scoped)

    def admin_token(self) -> str | None:
        """The provider's token from [api] admin_token_file (read again when the file changes);
        None: no admin token configured, or the file cannot be read (logged)."""
        path: Path | None = self.config().api.admin_token_file
        if path is None:
            return None
        try:
            mtime = path.stat().st_mtime
            if self._token is None or self._token[0] != mtime:
                token = path.read_text("utf-8").strip()
                self._token = (mtime, token if len(token) >= 16 else None)
                if self._token[1] is None:
                    log.error("api.admin_token_file %s: the token is shorter than 16 characters; not used", path)
        except OSError as exc:
            log.error("api.admin_token_file %s: %s", path, exc.strerror or exc)
            return None
        return self._token[1]
