"""A gateway's password: given in the configuration, or read from its file (e.g. a systemd credential)."""

from __future__ import annotations

from ..config.model import Gateway
from .imap import FetchError


def gateway_password(gateway: Gateway) -> str:
    if gateway.password is not None:
        return gateway.password
    if gateway.password_file is None:
        raise FetchError("password", "no password or password_file")
    try:
        return gateway.password_file.read_text("utf-8").rstrip("\r\n")
    except OSError as exc:
        raise FetchError("password", f"{gateway.password_file}: {exc.strerror}") from None
