"""What went wrong talking to an external mail server."""

from __future__ import annotations


class FetchError(Exception):
    """A step of talking to the external server failed; `step` says which."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
