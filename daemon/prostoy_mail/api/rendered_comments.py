"""Comments as the API sends them, each rendered once and kept.

A task's screen reads its comments again and again; reading and rendering 50 comments took
0.45 ms of a page's 0.9 (bench/api_requests.py), the framework's floor being 0.09. A
comment's JSON (views.comment_json) never changes but for `times_received` (the same
message came again); a deleted one is not sent at all. So each rendering is kept under
(id, times_received): a page is one query of those keys, the renderings it finds, and a
read of only the comments it does not find. Kept within a budget of bytes, least recently
used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

import orjson

from ..store.ports import Comment
from ..views import comment_json

BUDGET = 32 * 1024 * 1024  # bytes of JSON kept: some 50,000 comments of a typical size (0.6 KB)

Key = tuple[int, int]  # (comment id, times_received)


class CommentPages(Protocol):
    def comment_keys_page(self, task_id: int, before: int | None, since: str | None,
                          limit: int) -> list[Key]: ...
    def comments_by_id(self, ids: list[int]) -> list[Comment]: ...


class RenderedComments:
    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = budget
        self.size = 0
        self._kept: OrderedDict[Key, bytes] = OrderedDict()

    def page(self, reader: CommentPages, task_id: int, before: int | None, since: str | None, limit: int) -> bytes:
        """The page as a JSON array: what orjson.dumps([comment_json(c) for c in
        comments_page(...)]) gives (tests/unit/test_rendered_comments.py holds them equal).
        The reader acts for the organisation; NotFound for a task it does not have."""
        keys = reader.comment_keys_page(task_id, before, since, limit)
        kept, found, missing = self._kept, dict[int, bytes](), list[int]()
        for key in keys:
            rendered = kept.get(key)
            if rendered is None:
                missing.append(key[0])
            else:
                kept.move_to_end(key)
                found[key[0]] = rendered
        if missing:  # (read after the keys: one received again since is sent as it is now)
            for comment in reader.comments_by_id(missing):
                if comment.deleted_at is None:  # (deleted since)
                    found[comment.id] = self.keep(comment)
        return b"[" + b",".join(found[key[0]] for key in keys if key[0] in found) + b"]"

    def keep(self, comment: Comment) -> bytes:
        rendered = orjson.dumps(comment_json(comment))
        key = (comment.id, comment.times_received)
        if key not in self._kept:
            self._kept[key] = rendered
            self.size += len(rendered)
            while self.size > self.budget:
                self.size -= len(self._kept.popitem(last=False)[1])
        return rendered
